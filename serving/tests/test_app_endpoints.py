"""Every route over real HTTP against one served version: shapes, status codes, the published decision, metrics
and the OpenAPI schema. The expected probabilities come from the same version loaded in the test process."""

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from serving.api.runtime import prepare_model
from serving.app import create_app
from serving.bucket import LocalBucket
from serving.contract import Encounter
from serving.decision import decide
from serving.model_store import LoadedModel, load_version
from serving.settings import Settings
from serving.tests.http_server import Server, publish_release, running_server, service_env
from serving.tests.published import CLASS_LABELS, MAX_FEATURES, Release, build_release

# Picked on the fixture model: a flag although another class is more probable, and one inside the review band.
FLAGGED_NOT_ARGMAX = {"hpo_observed": ["HP:0001250"]}
IN_REVIEW_BAND = {"hpo_observed": ["HP:0001945"]}
ENCOUNTERS: list[dict[str, Any]] = [
    {},
    FLAGGED_NOT_ARGMAX,
    IN_REVIEW_BAND,
    {"sex": "M", "age_years": 3, "hpo_observed": ["HP:0007359"], "temperature_c": 39.5},
    {"sex": "F", "age_years": 35, "centre_id": "C01", "region": "madrid", "consultation_type": "emergency"},
]


@pytest.fixture(scope="module")
def release() -> Release:
    return build_release(seed=0, n_features=MAX_FEATURES)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, release: Release) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("endpoints")
    publish_release(root / "bucket", release)
    env = service_env(root / "home", root / "bucket", SERVING_MAX_BATCH="4")
    with running_server(env, root / "work") as running:
        yield running


@pytest.fixture(scope="module")
def local_model(tmp_path_factory: pytest.TempPathFactory, release: Release) -> LoadedModel:
    """The same version, loaded in the test process."""
    root = tmp_path_factory.mktemp("local")
    publish_release(root / "bucket", release)
    return load_version(LocalBucket(root / "bucket"), "dev", root / "cache", prepare=prepare_model)


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client() as http:
        yield http


def metric_samples(client: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_health_is_always_alive(client: httpx.Client) -> None:
    response = client.get("/health")

    assert (response.status_code, response.json()) == (200, {"status": "alive"})


def test_ready_names_the_version_and_the_bucket(client: httpx.Client, release: Release, server: Server) -> None:
    response = client.get("/ready")

    body = response.json()
    assert response.status_code == 200
    assert (body["ready"], body["model_version"], body["source"], body["served_from_cache"]) == (
        True,
        release.version,
        "bucket",
        False,
    )
    assert server.env["RARE_TRIAGE_BUCKET_URI"] in body["detail"]
    assert body["refused"] == []


def test_model_shows_the_manifests_policy_and_provenance(client: httpx.Client, release: Release) -> None:
    response = client.get("/v1/model")

    body = response.json()
    manifest = release.manifest
    assert response.status_code == 200
    assert (body["version"], body["env"], body["source"], body["n_features"]) == (
        release.version,
        "dev",
        "bucket",
        MAX_FEATURES,
    )
    for key in ("thresholds", "needs_review", "metrics", "training_partitions", "class_labels", "hpo_release"):
        assert body[key] == manifest[key], key
    for key in ("mlflow_run_id", "mlflow_model_version", "dagster_run_id", "code_revision", "created_at"):
        assert body[key] == manifest[key], key
    assert body["onnx_sha256"] == manifest["onnx"]["sha256"]
    assert body["bucket"].endswith("bucket") and body["cache_dir"].endswith("cache")
    assert body["loaded_at"] and body["refused"] == [] and body["swaps_total"] == 1


def test_predict_answers_the_estimate_the_decision_and_the_encoding_report(
    client: httpx.Client, local_model: LoadedModel
) -> None:
    sent = {
        "sex": "F",
        "age_years": 7,
        "centre_id": "C77",
        "fever_score": 4,
        "hpo_observed": ["HP:0001250", "HP:9999999", "HP:0000005"],
        "hpo_excluded": ["HP:0002027"],
    }

    response = client.post("/v1/predict", json=sent)

    body = response.json()
    assert response.status_code == 200, body
    assert uuid.UUID(body["request_id"]).version == 4
    assert response.headers["X-Request-ID"] == body["request_id"]
    assert list(body["probabilities"]) == CLASS_LABELS
    assert sum(body["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    encoded = local_model.prepared.encoder.encode([msgspec.convert(sent, Encounter)])
    expected = local_model.predict_proba(encoded.matrix)[0]
    assert list(body["probabilities"].values()) == pytest.approx(expected.tolist(), abs=1e-6)
    assert body["hpo"] == {
        "used": ["HP:0001250", "HP:0002027"],
        "unknown": ["HP:9999999"],
        "outside": ["HP:0000005"],
    }
    assert body["unseen_categories"] == ["centre_id"]  # C77: a centre code the model never saw
    assert body["dropped_fields"] == ["fever_score"]  # no fever term observed
    assert body["model_version"] == local_model.version
    assert (body["orphan_threshold"], body["review_threshold"]) == (0.3, 0.2)
    assert "not a diagnosis" in body["disclaimer"]


@pytest.mark.parametrize("encounter", ENCOUNTERS, ids=range(len(ENCOUNTERS)))
def test_predict_applies_the_published_policy(
    client: httpx.Client, local_model: LoadedModel, encounter: dict[str, Any]
) -> None:
    body = client.post("/v1/predict", json=encounter).json()

    proba = np.asarray([[body["probabilities"][label] for label in CLASS_LABELS]])
    decided = decide(proba, local_model.prepared.policy)
    p_orphan = body["probabilities"]["orphan"]
    assert body["orphan_probability"] == p_orphan
    assert body["orphan_flag"] is (p_orphan >= 0.3) is bool(decided.orphan_flag[0])
    assert body["needs_review"] is (0.2 <= p_orphan < 0.3) is bool(decided.needs_review[0])
    assert (body["class"], body["outcome"]) == (decided.labels[0], decided.outcomes[0])
    assert (body["needs_review_reason"] is not None) is body["needs_review"]


def test_a_flag_makes_the_class_orphan_even_when_another_class_is_more_probable(client: httpx.Client) -> None:
    body = client.post("/v1/predict", json=FLAGGED_NOT_ARGMAX).json()

    assert max(body["probabilities"], key=body["probabilities"].get) != "orphan"
    assert (body["class"], body["orphan_flag"], body["needs_review"]) == ("orphan", True, False)


def test_the_review_band_is_reported_with_its_reason(client: httpx.Client) -> None:
    body = client.post("/v1/predict", json=IN_REVIEW_BAND).json()

    assert (body["orphan_flag"], body["needs_review"], body["outcome"]) == (False, True, "needs_review")
    assert body["class"] != "orphan"
    assert "review band [0.2, 0.3)" in body["needs_review_reason"]


def test_batch_answers_each_encounter_as_predict_does(client: httpx.Client) -> None:
    singles = [client.post("/v1/predict", json=encounter).json() for encounter in ENCOUNTERS[:4]]

    response = client.post("/v1/predict/batch", json={"encounters": ENCOUNTERS[:4]})

    body = response.json()
    assert response.status_code == 200, body
    assert response.headers["X-Request-ID"] == body["request_id"]
    assert body["count"] == 4
    assert [p["request_id"] for p in body["predictions"]] == [f"{body['request_id']}-{i}" for i in range(4)]
    ignored = {"request_id", "weighed_most"}  # weighed for single predictions only
    for single, row in zip(singles, body["predictions"], strict=True):
        assert {k: v for k, v in row.items() if k not in ignored} == {
            k: v for k, v in single.items() if k not in ignored
        }


def test_metrics_count_requests_predictions_and_the_served_version(client: httpx.Client, release: Release) -> None:
    route = (("method", "POST"), ("route", "/v1/predict"), ("status", "200"))
    before = metric_samples(client)

    client.post("/v1/predict", json=FLAGGED_NOT_ARGMAX)
    client.post("/v1/predict", json=IN_REVIEW_BAND)
    client.post("/v1/predict", json={"age_years": 500})

    after = metric_samples(client)

    def moved(name: str, labels: tuple[tuple[str, str], ...] = ()) -> float:
        return after.get((name, labels), 0.0) - before.get((name, labels), 0.0)

    prefix = "rare_triage_serving"
    assert moved(f"{prefix}_http_requests_total", route) == 2
    assert moved(f"{prefix}_http_request_duration_seconds_count", route) == 2
    refused = (("method", "POST"), ("route", "/v1/predict"), ("status", "422"))
    assert moved(f"{prefix}_http_requests_total", refused) == 1
    assert moved(f"{prefix}_predictions_total", (("predicted_class", "orphan"),)) == 1
    assert moved(f"{prefix}_orphan_flags_total") == 1
    assert moved(f"{prefix}_needs_review_total") == 1
    served = (("env", "dev"), ("source", "bucket"), ("version", release.version))
    assert after[(f"{prefix}_model_info", served)] == 1
    assert after[(f"{prefix}_model_ready", ())] == 1
    assert after[(f"{prefix}_model_loads_total", ())] == 1
    assert after[(f"{prefix}_model_refusals_total", ())] == 0


def test_the_openapi_schema_documents_the_routes(client: httpx.Client) -> None:
    schema = client.get("/schema/openapi.json").json()

    paths = schema["paths"]
    assert {"/health", "/ready", "/v1/predict", "/v1/predict/batch", "/v1/model", "/metrics"} <= set(paths)
    predict = paths["/v1/predict"]["post"]
    assert predict["summary"] == "Triage one encounter" and "not a diagnosis" in predict["description"]
    assert predict["requestBody"]["content"]["application/json"]["schema"]["examples"][0]["hpo_observed"]
    assert predict["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Prediction"
    }
    assert {"200", "400", "401", "413", "422", "503"} <= set(predict["responses"])
    assert "X-Request-ID" in predict["responses"]["200"]["headers"]
    assert schema["components"]["securitySchemes"]["ApiKey"]["name"] == "X-API-Key"
    assert client.get("/schema").status_code == 200
    assert "html" in client.get("/schema/swagger").headers["content-type"]


def test_apps_in_one_process_keep_their_own_metrics(tmp_path: Path) -> None:
    settings = Settings.from_env({"MODEL_ENV": "dev", "RARE_TRIAGE_HOME": str(tmp_path)})

    first, second = create_app(settings), create_app(settings)

    assert first.state["runtime"].metrics.registry is not second.state["runtime"].metrics.registry
    first.state["runtime"].metrics.predictions.labels("orphan").inc()
    sample = ("rare_triage_serving_predictions_total", {"predicted_class": "orphan"})
    assert first.state["runtime"].metrics.registry.get_sample_value(*sample) == 1
    assert second.state["runtime"].metrics.registry.get_sample_value(*sample) is None


def test_a_setting_the_service_cannot_use_stops_it_naming_the_variable(tmp_path: Path) -> None:
    refused = pytest.raises(RuntimeError, match=r"status 2:\nserving: SERVING_MAX_BATCH: 0 is below the minimum 1")

    with refused, running_server({"MODEL_ENV": "dev", "SERVING_MAX_BATCH": "0"}, tmp_path):
        pass


def test_the_schema_of_a_prediction_names_the_class_field(client: httpx.Client) -> None:
    schema = client.get("/schema/openapi.json").json()

    prediction = schema["components"]["schemas"]["Prediction"]
    assert "class" in prediction["properties"] and "predicted_class" not in prediction["properties"]
    assert json.dumps(prediction).count("disclaimer") >= 1


def test_importing_the_app_loads_nothing_of_the_platform() -> None:
    forbidden = ("rare_triage", "dagster", "sklearn", "xgboost", "imblearn", "mlflow", "pandas")
    code = (
        "import sys, serving.app, serving.__main__\n"
        f"print(sorted(name for name in sys.modules if name.split('.')[0] in {forbidden!r}))"
    )

    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)

    assert loaded.stdout.strip() == "[]"
