"""The patient id over real HTTP: logged only as its keyed pseudonym (`patient_key`), never as itself in any byte
the service writes (prediction logs, its own output) or answers (responses, metrics); not a model input; dropped,
and reported, by a service without a key."""

import json
from pathlib import Path
from typing import Any

import httpx

from serving.api.exchange import BUNDLE_EXAMPLE
from serving.pseudonym import Pseudonymizer, PseudonymKey
from serving.tests.http_server import Server, publish_release, running_server, service_env
from serving.tests.published import MAX_FEATURES, build_release

KEY = bytes(range(100, 132))
PLANTED = "PLANTED-PATIENT-4e9b2"  # found nowhere unless leaked
OTHER = "PLANTED-PATIENT-77c0a"
ENCOUNTER: dict[str, Any] = {"sex": "F", "age_years": 7, "temperature_c": 38.4, "hpo_observed": ["HP:0001250"]}


def patient_key(patient_id: str) -> str:
    return Pseudonymizer(PseudonymKey(KEY))(patient_id)


def bundle_of(patient_id: str) -> dict[str, Any]:
    """The OpenAPI example Bundle with its Patient's id (and the references to it) replaced."""
    text = (
        json.dumps(BUNDLE_EXAMPLE)
        .replace('"p1"', json.dumps(patient_id))
        .replace("Patient/p1", f"Patient/{patient_id}")
    )
    bundle: dict[str, Any] = json.loads(text)
    return bundle


def written_bytes(home: Path, server: Server) -> bytes:
    """Every file under the service's home (prediction logs, open, closed or shipped) and its own output."""
    files = sorted(path for path in home.rglob("*") if path.is_file())
    return b"".join(path.read_bytes() for path in files) + server.output.read_bytes()


def logged(home: Path) -> list[dict[str, Any]]:
    files = sorted((home / "serving" / "logs").rglob("predicciones_dev*.txt"))
    return [json.loads(line) for path in files for line in path.read_bytes().splitlines()]


def run(tmp_path: Path, **variables: str) -> tuple[list[httpx.Response], bytes, list[dict[str, Any]]]:
    """The same requests to a service with `variables`: the responses (metrics last), what it wrote, its log."""
    bucket, home = tmp_path / "bucket", tmp_path / "home"
    publish_release(bucket, build_release(n_features=MAX_FEATURES))
    with running_server(service_env(home, bucket, **variables), tmp_path / "work") as server, server.client() as client:
        responses = [
            client.post("/v1/predict", json={**ENCOUNTER, "patient_id": PLANTED}),
            client.post("/v1/predict", json=ENCOUNTER),
            client.post("/v1/predict/batch", json={"encounters": [{"patient_id": OTHER}, {"age_years": 3}]}),
            client.post("/v1/predict/fhir", json=bundle_of(PLANTED)),
            client.post("/v1/predict", json={"patient_id": PLANTED + "x" * 100}),  # too long: refused
            client.get("/metrics"),
        ]
        written = written_bytes(home, server)
    return responses, written, logged(home)


def test_with_a_key_only_the_pseudonym_is_logged_and_nothing_of_the_id_anywhere(tmp_path: Path) -> None:
    responses, written, lines = run(tmp_path, RARE_TRIAGE_HMAC_KEY=KEY.hex())
    single, plain, batch, fhir, refused, metrics = responses

    assert [r.status_code for r in responses] == [200, 200, 200, 200, 422, 200]
    for data in [written, *(r.content for r in responses)]:
        assert PLANTED.encode() not in data and OTHER.encode() not in data
    assert refused.json()["field"] == "$.patient_id"
    assert [line.get("patient_key") for line in lines] == [
        patient_key(PLANTED),
        None,
        patient_key(OTHER),
        None,
        patient_key(PLANTED),
    ]
    assert all("patient_id" not in line["inputs"] for line in lines)
    assert lines[0]["inputs"] == lines[1]["inputs"] == ENCOUNTER | {"age_years": 7.0}
    # not a model input: the same answer with or without it, and nothing reported dropped
    assert single.json()["probabilities"] == plain.json()["probabilities"]
    assert single.json()["weighed_most"] == plain.json()["weighed_most"]
    assert "patient_id" not in single.json()["dropped_fields"] + fhir.json()["prediction"]["dropped_fields"]
    assert "patient_id" not in batch.json()["predictions"][0]["dropped_fields"]
    assert metrics.status_code == 200


def test_without_a_key_a_sent_patient_id_is_dropped_and_reported(tmp_path: Path) -> None:
    responses, written, lines = run(tmp_path, RARE_TRIAGE_DEPLOYMENT="shared")
    single, plain, batch, fhir, _, _ = responses

    for data in [written, *(r.content for r in responses)]:
        assert PLANTED.encode() not in data and OTHER.encode() not in data
    assert all("patient_key" not in line and "patient_id" not in line["inputs"] for line in lines)
    assert single.json()["dropped_fields"] == ["patient_id"]
    assert plain.json()["dropped_fields"] == []
    assert [p["dropped_fields"] for p in batch.json()["predictions"]] == [["patient_id"], []]
    assert fhir.json()["prediction"]["dropped_fields"] == ["patient_id"]
    assert single.json()["probabilities"] == plain.json()["probabilities"]
    assert b"no RARE_TRIAGE_HMAC_KEY: a sent patient_id is dropped" in written
