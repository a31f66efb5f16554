"""POST /v1/predict/fhir and /v1/predict/phenopacket over real HTTP: mapped like the Python mappers, scored like
POST /v1/predict, logged, and a document the mapping refuses is a 422 naming its JSON path."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from serving.api.exchange import BUNDLE_EXAMPLE, PHENOPACKET_EXAMPLE
from serving.fhir import encounter_from_bundle
from serving.phenopacket import case_from_phenopacket
from serving.pseudonym import LOCAL_DEVELOPMENT_HMAC_KEY, Pseudonymizer, PseudonymKey
from serving.tests.http_server import Server, publish_release, running_server, service_env
from serving.tests.published import CLASS_LABELS, MAX_FEATURES, Release, build_release

PHENOPACKETS = Path(__file__).parent / "fixtures" / "phenopackets"
PLANTED_NAME = "Ximena Quiroga-Planted"


@pytest.fixture(scope="module")
def release() -> Release:
    return build_release(seed=0, n_features=MAX_FEATURES)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, release: Release) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("exchange")
    publish_release(root / "bucket", release)
    with running_server(service_env(root / "home", root / "bucket"), root / "work") as running:
        yield running


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def _log_lines(server: Server) -> list[dict[str, Any]]:
    """Every line of the service's prediction logs (default folder under its RARE_TRIAGE_HOME)."""
    folder = Path(server.env["RARE_TRIAGE_HOME"]) / "serving" / "logs"
    files = sorted(folder.rglob("predicciones_dev*.txt"))
    return [json.loads(line) for path in files for line in path.read_text().splitlines()]


def test_a_bundle_is_scored_as_its_mapped_encounter(client: httpx.Client, server: Server) -> None:
    answer = client.post("/v1/predict/fhir", json=BUNDLE_EXAMPLE)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    encounter, report = encounter_from_bundle(BUNDLE_EXAMPLE)
    direct = client.post("/v1/predict", json=msgspec.to_builtins(encounter)).json()
    assert body["prediction"]["probabilities"] == direct["probabilities"]
    assert body["prediction"]["request_id"] == answer.headers["X-Request-ID"]
    assert body["mapping"]["resources_used"] == report.resources_used
    logged = next(line for line in _log_lines(server) if line["request_id"] == answer.headers["X-Request-ID"])
    sent = msgspec.to_builtins(encounter)
    assert sent.pop("patient_id") == "p1"  # the Bundle's Patient id: logged only as its pseudonym
    assert logged["inputs"] == sent
    assert logged["patient_key"] == Pseudonymizer(PseudonymKey(LOCAL_DEVELOPMENT_HMAC_KEY))("p1")
    assert b"p1" not in json.dumps(body).encode()


def test_a_phenopacket_is_scored_and_reports_its_mapping(client: httpx.Client, server: Server) -> None:
    document = json.loads(next(PHENOPACKETS.glob("PMID_*.json")).read_text())
    answer = client.post("/v1/predict/phenopacket", json=document)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    case, report = case_from_phenopacket(document)
    assert body["mapping"]["features_used"] == report.features_used
    assert set(body["prediction"]["probabilities"]) == set(CLASS_LABELS)
    assert abs(sum(body["prediction"]["probabilities"].values()) - 1.0) < 1e-4
    logged = next(line for line in _log_lines(server) if line["request_id"] == answer.headers["X-Request-ID"])
    assert logged["inputs"] == msgspec.to_builtins(case)


def test_the_phenopacket_example_of_the_openapi_is_answered(client: httpx.Client) -> None:
    answer = client.post("/v1/predict/phenopacket", json=PHENOPACKET_EXAMPLE)
    assert answer.status_code == 200, answer.text
    assert "HP:0001945" not in answer.json()["prediction"]["hpo"]["unknown"]


@pytest.mark.parametrize(
    ("route", "document", "field"),
    [
        ("/v1/predict/fhir", [1, 2], "$"),
        ("/v1/predict/fhir", {"resourceType": "Patient"}, "$.resourceType"),
        ("/v1/predict/phenopacket", {"phenotypicFeatures": [{"type": {"id": "HP:1"}, "excluded": "yes"}]}, None),
    ],
    ids=["not an object", "not a bundle", "bad excluded flag"],
)
def test_a_refused_document_is_a_422_naming_its_path(
    client: httpx.Client, route: str, document: Any, field: str | None
) -> None:
    answer = client.post(route, json=document)
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["field"].startswith("$")
    if field is not None:
        assert body["field"] == field
    else:
        assert body["field"].startswith("$.phenotypicFeatures[0]")


def test_a_bundle_error_never_quotes_the_patient(client: httpx.Client) -> None:
    document = json.loads(json.dumps(BUNDLE_EXAMPLE))
    document["entry"][0]["resource"]["name"] = [{"text": PLANTED_NAME}]
    document["entry"][0]["resource"]["gender"] = PLANTED_NAME  # not a FHIR gender: refused, never quoted
    answer = client.post("/v1/predict/fhir", json=document)
    assert answer.status_code == 422
    assert "Ximena" not in answer.text and "Quiroga" not in answer.text
