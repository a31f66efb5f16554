"""Malformed requests over real HTTP: each gets a 4xx whose JSON body names the field (a JSON path) and the
problem, in one shape `{"detail": ..., "field": ...}`; nothing of them reaches the model or the log."""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from serving.tests.http_server import Server, publish_release, running_server, service_env
from serving.tests.published import MAX_FEATURES, build_release

MAX_BATCH = 3
MAX_BYTES = 4096


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("bad-input")
    publish_release(root / "bucket", build_release(n_features=MAX_FEATURES))
    env = service_env(
        root / "home", root / "bucket", SERVING_MAX_BATCH=str(MAX_BATCH), SERVING_MAX_REQUEST_BYTES=str(MAX_BYTES)
    )
    with running_server(env, root / "work") as running:
        yield running


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client() as http:
        yield http


def refused(response: httpx.Response, status: int, field: str | None, *words: str) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    assert response.status_code == status, body
    assert set(body) == {"detail", "field"}
    assert body["field"] == field
    for word in words:
        assert word in body["detail"], body["detail"]
    return body


BAD_ENCOUNTERS = {
    "wrong type": ({"age_years": "seven"}, "$.age_years", "Expected `float | null`, got `str`"),
    "out of range": ({"temperature_c": 48.5}, "$.temperature_c", "<= 45.0"),
    "negative count": ({"prior_visits_365d": -1}, "$.prior_visits_365d", ">= 0"),
    "integer expected": ({"comorbidity_count": 1.5}, "$.comorbidity_count", "Expected `int | null`"),
    "closed vocabulary": ({"sex": "X"}, "$.sex", "Invalid enum value 'X'"),
    "unknown field": ({"patient_name": "Ana"}, "$.patient_name", "unknown field `patient_name`"),
    "bad HPO id": ({"hpo_observed": ["HP:0001250", "HP:12"]}, "$.hpo_observed[1]", "HPO id"),
    "bad excluded HPO id": ({"hpo_excluded": ["fever"]}, "$.hpo_excluded[0]", "HPO id"),
    "not a list": ({"hpo_observed": "HP:0001250"}, "$.hpo_observed", "Expected `array`"),
    "contract rule": ({"systolic_bp": 90, "diastolic_bp": 110}, "$.systolic_bp", "below diastolic_bp"),
    "not an object": ([{"age_years": 3}], "$", "Expected `object`, got `array`"),
}


@pytest.mark.parametrize("case", sorted(BAD_ENCOUNTERS))
def test_a_bad_encounter_is_refused_naming_its_field(client: httpx.Client, case: str) -> None:
    encounter, field, problem = BAD_ENCOUNTERS[case]

    refused(client.post("/v1/predict", json=encounter), 422, field, problem, f"at `{field}`")


def test_a_bad_row_of_a_batch_is_named_by_its_index(client: httpx.Client) -> None:
    response = client.post("/v1/predict/batch", json={"encounters": [{}, {"age_years": 121}]})

    refused(response, 422, "$.encounters[1].age_years", "<= 120")


def test_a_batch_needs_its_encounters(client: httpx.Client) -> None:
    refused(client.post("/v1/predict/batch", json={}), 422, "$.encounters", "missing required field")
    refused(client.post("/v1/predict/batch", json={"encounters": []}), 422, "$.encounters", "length >= 1")
    refused(client.post("/v1/predict/batch", json={"x": 1, "encounters": [{}]}), 422, "$.x", "unknown field")


def test_a_batch_over_the_limit_is_refused_naming_the_limit(client: httpx.Client) -> None:
    response = client.post("/v1/predict/batch", json={"encounters": [{}] * (MAX_BATCH + 1)})

    refused(response, 413, "$.encounters", f"at most {MAX_BATCH} encounters", "SERVING_MAX_BATCH", "got 4")


def test_a_batch_at_the_limit_is_served(client: httpx.Client) -> None:
    response = client.post("/v1/predict/batch", json={"encounters": [{}] * MAX_BATCH})

    assert (response.status_code, response.json()["count"]) == (200, MAX_BATCH)


@pytest.mark.parametrize("route", ["/v1/predict", "/v1/predict/batch"])
def test_a_body_over_the_size_limit_is_refused_naming_the_limit(client: httpx.Client, route: str) -> None:
    body = b'{"hpo_observed": [' + b", ".join([b'"HP:0001250"'] * 400) + b"]}"
    assert len(body) > MAX_BYTES

    response = client.post(route, content=body, headers={"content-type": "application/json"})

    refused(response, 413, "$", f"larger than {MAX_BYTES} bytes", "SERVING_MAX_REQUEST_BYTES")


@pytest.mark.parametrize("content", [b"not json", b'{"age_years": 3', b"\xff\xfe"])
def test_a_body_that_is_not_json_is_refused(client: httpx.Client, content: bytes) -> None:
    response = client.post("/v1/predict", content=content, headers={"content-type": "application/json"})

    refused(response, 400, "$", "not JSON")


def test_an_empty_body_is_refused(client: httpx.Client) -> None:
    response = client.post("/v1/predict", content=b"", headers={"content-type": "application/json"})

    refused(response, 400, "$", "empty")


def test_unknown_hpo_ids_are_reported_not_dropped(client: httpx.Client) -> None:
    response = client.post("/v1/predict", json={"hpo_observed": ["HP:9999998", "HP:0001250"]})

    assert response.status_code == 200
    assert response.json()["hpo"]["unknown"] == ["HP:9999998"]


def test_an_unknown_route_and_a_wrong_method_answer_in_the_same_shape(client: httpx.Client) -> None:
    refused(client.get("/v1/nothing"), 404, None, "Not Found")
    refused(client.get("/v1/predict"), 405, None, "Method Not Allowed")
