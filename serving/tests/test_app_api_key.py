"""The API key in prod, over real HTTP: the prediction routes need `X-API-Key`; a missing and a wrong key get the
same 401 before the body is even read; health, readiness, metrics and /v1/model stay open."""

from collections.abc import Iterator

import httpx
import pytest

from serving.tests.http_server import API_KEY, Server, publish_release, running_server, service_env
from serving.tests.published import MAX_FEATURES, build_release

ENCOUNTER = {"age_years": 40, "hpo_observed": ["HP:0001250"]}
ROUTES = {"/v1/predict": ENCOUNTER, "/v1/predict/batch": {"encounters": [ENCOUNTER]}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("api-key")
    publish_release(root / "bucket", build_release(n_features=MAX_FEATURES), "prod")
    env = service_env(root / "home", root / "bucket", MODEL_ENV="prod", SERVING_API_KEY=API_KEY)
    with running_server(env, root / "work") as running:
        yield running


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client() as http:
        yield http


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_a_missing_or_wrong_key_gets_the_same_401(client: httpx.Client, route: str) -> None:
    missing = client.post(route, json=ROUTES[route])
    wrong = client.post(route, json=ROUTES[route], headers={"X-API-Key": API_KEY[:-1] + "x"})
    empty = client.post(route, json=ROUTES[route], headers={"X-API-Key": ""})

    for response in (missing, wrong, empty):
        assert response.status_code == 401
        assert response.json() == {"detail": "a valid X-API-Key header is required", "field": None}
    assert missing.content == wrong.content == empty.content


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_the_key_opens_the_prediction_routes(client: httpx.Client, route: str) -> None:
    response = client.post(route, json=ROUTES[route], headers={"X-API-Key": API_KEY})

    assert response.status_code == 200, response.text


def test_without_the_key_a_body_is_not_even_validated(client: httpx.Client) -> None:
    invalid = client.post("/v1/predict", json={"age_years": "x"})
    oversized = client.post("/v1/predict", content=b"{" + b" " * 2_000_000 + b"}")

    assert (invalid.status_code, oversized.status_code) == (401, 401)


@pytest.mark.parametrize("route", ["/health", "/ready", "/metrics", "/v1/model", "/schema/openapi.json"])
def test_operations_routes_stay_open(client: httpx.Client, route: str) -> None:
    assert client.get(route).status_code == 200
