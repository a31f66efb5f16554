"""The prediction log behind the HTTP routes: one line per answered prediction (each batch row its own), valid
JSON with the record's fields only, the inputs as validated by the contract and nothing else a client sent; closed
files are shipped to the bucket."""

import json
from pathlib import Path
from typing import Any

import httpx
import msgspec
from prometheus_client.parser import text_string_to_metric_families

from serving.contract import Encounter
from serving.prediction_log import PredictionRecord, closed_logs, log_name, read_log_lines
from serving.tests.http_server import publish_release, running_server, service_env, wait_for
from serving.tests.published import MAX_FEATURES, build_release

RECORD_FIELDS = set(PredictionRecord.__struct_fields__)
CONTRACT_FIELDS = set(Encounter.__struct_fields__)


def lines_of(folder: Path) -> list[dict[str, Any]]:
    """Every line of every log file under `folder` (open, closed and shipped), parsed."""
    lines = []
    for path in sorted(folder.rglob("predicciones_dev*.txt")):
        data = path.read_bytes()
        assert read_log_lines(data).rejected == 0 and read_log_lines(data).truncated == 0, path
        lines += [json.loads(line) for line in data.splitlines()]
    return lines


def test_each_answered_prediction_is_one_line_with_the_contract_fields_only(tmp_path: Path) -> None:
    bucket, home = tmp_path / "bucket", tmp_path / "home"
    publish_release(bucket, build_release(n_features=MAX_FEATURES))
    sent = {"sex": "M", "age_years": 41.5, "region": "Madrid", "hpo_observed": ["HP:0001250", "HP:9999999"]}

    with running_server(service_env(home, bucket), tmp_path / "work") as server, server.client() as client:
        single = client.post("/v1/predict", json=sent, headers={"X-Request-ID": "client-chosen", "X-Patient": "p1"})
        batch = client.post("/v1/predict/batch", json={"encounters": [{}, sent, {"temperature_c": 39.1}]})
        empty = client.post("/v1/predict", json={})
        refused = [
            client.post("/v1/predict", json={**sent, "patient_name": "Ana"}),
            client.post("/v1/predict", json={"age_years": 200}),
            client.post("/v1/predict/batch", json={"encounters": [{}, {"sex": "?"}]}),
        ]

    assert [r.status_code for r in (single, batch, empty)] == [200, 200, 200]
    assert [r.status_code for r in refused] == [422, 422, 422]
    lines = lines_of(home / "serving" / "logs")
    assert len(lines) == 1 + 3 + 1
    for line in lines:
        assert set(line) == RECORD_FIELDS - {"patient_key"}  # no patient_id sent
        assert set(line["inputs"]) <= CONTRACT_FIELDS
        msgspec.convert(line, PredictionRecord)
        assert line["timestamp"].endswith("Z")
    first = lines[0]
    assert first["request_id"] == single.headers["X-Request-ID"] == single.json()["request_id"] != "client-chosen"
    assert first["inputs"] == {**sent, "age_years": 41.5}
    assert first["probabilities"] == single.json()["probabilities"]
    assert (first["predicted_class"], first["orphan_flag"], first["needs_review"]) == (
        single.json()["class"],
        single.json()["orphan_flag"],
        single.json()["needs_review"],
    )
    assert first["model_version"] == single.json()["model_version"]
    assert first["latency_ms"] > 0
    batch_id = batch.json()["request_id"]
    assert [line["request_id"] for line in lines[1:4]] == [f"{batch_id}-{i}" for i in range(3)]
    assert [line["inputs"] for line in lines[1:4]] == [{}, sent, {"temperature_c": 39.1}]
    assert lines[4]["inputs"] == {}


def test_closed_logs_are_shipped_to_the_bucket(tmp_path: Path) -> None:
    bucket, home = tmp_path / "bucket", tmp_path / "home"
    publish_release(bucket, build_release(n_features=MAX_FEATURES))
    env = service_env(home, bucket, SERVING_LOG_MAX_BYTES="1")  # a file is full after one line: closed when due

    with running_server(env, tmp_path / "work") as server, server.client() as client:
        ids = [client.post("/v1/predict", json={"age_years": age}).json()["request_id"] for age in (5, 50, 90)]
        shipped = wait_for(
            lambda: len(found := sorted((bucket / "predictions" / "env=dev").rglob("*.txt"))) == 3 and found,
            what="three closed files shipped",
        )

    logs = home / "serving" / "logs"
    assert sorted(path.name for path in (logs / "shipped").iterdir()) == [path.name for path in shipped]
    assert all(path.parent.name.startswith("dt=") for path in shipped)
    assert [json.loads(path.read_bytes())["request_id"] for path in shipped] == ids
    assert not (logs / log_name("dev")).exists() or (logs / log_name("dev")).stat().st_size == 0


def test_a_graceful_stop_closes_and_ships_the_open_file(tmp_path: Path) -> None:
    bucket, home = tmp_path / "bucket", tmp_path / "home"
    publish_release(bucket, build_release(n_features=MAX_FEATURES))
    env = service_env(home, bucket)  # default size and hour: nothing would close before the next hour

    with running_server(env, tmp_path / "work") as server, server.client() as client:
        ids = [client.post("/v1/predict", json={"age_years": age}).json()["request_id"] for age in (5, 50, 90)]
        assert not (bucket / "predictions").exists()  # still open while serving

    shipped = sorted((bucket / "predictions" / "env=dev").rglob("*.txt"))
    assert len(shipped) == 1
    assert [json.loads(line)["request_id"] for line in shipped[0].read_bytes().splitlines()] == ids
    assert not (home / "serving" / "logs" / log_name("dev")).exists()


def errors_counted(client: httpx.Client, operation: str) -> float:
    families = text_string_to_metric_families(client.get("/metrics").text)
    return sum(
        sample.value
        for family in families
        for sample in family.samples
        if sample.name == "rare_triage_serving_errors_total" and sample.labels == {"operation": operation}
    )


def test_a_failed_shipment_is_logged_counted_and_retried_while_serving_goes_on(tmp_path: Path) -> None:
    bucket, home = tmp_path / "bucket", tmp_path / "home"
    publish_release(bucket, build_release(n_features=MAX_FEATURES))
    (bucket / "predictions").write_bytes(b"not a folder: every upload under predictions/ fails\n")
    env = service_env(home, bucket, SERVING_LOG_MAX_BYTES="1")

    with running_server(env, tmp_path / "work") as server, server.client() as client:
        first = client.post("/v1/predict", json={"age_years": 5})
        wait_for(lambda: errors_counted(client, "log_ship") >= 2, what="two failed shipments counted")
        second = client.post("/v1/predict", json={"age_years": 6})
        log = server.log()

    assert (first.status_code, second.status_code) == (200, 200)
    assert "shipping to" in log and "failed" in log
    logs = home / "serving" / "logs"
    assert len(closed_logs(logs, "dev")) >= 1
    assert not (logs / "shipped").exists()


def test_a_log_that_cannot_be_written_withholds_the_prediction(tmp_path: Path) -> None:
    bucket, home = tmp_path / "bucket", tmp_path / "home"
    publish_release(bucket, build_release(n_features=MAX_FEATURES))
    (tmp_path / "not-a-folder").write_bytes(b"")
    env = service_env(home, bucket, SERVING_LOG_DIR=str(tmp_path / "not-a-folder" / "logs"))

    with running_server(env, tmp_path / "work") as server, server.client() as client:
        response = client.post("/v1/predict", json={"age_years": 5})
        counted = errors_counted(client, "prediction_log_write")
        predictions = client.get("/metrics").text
        health = client.get("/health")

    assert response.status_code == 503
    assert response.json() == {
        "detail": "the prediction log cannot be written: no prediction is returned without its log line",
        "field": None,
    }
    assert counted == 1
    assert "rare_triage_serving_predictions_total{" not in predictions
    assert health.status_code == 200
