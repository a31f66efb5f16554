"""Property-based requests from the service's own OpenAPI schema (`/schema/openapi.json`) against the running
service: no request, valid or not, gets a 5xx, and every answer conforms to the schema (status code, content type,
headers, body).

One prod service (`python -m serving` on 127.0.0.1, stopped by pid) serves a published test model with every input
the encoder computes (`published.build_release`, fixtures/small_model's columns). Schemathesis's CLI (its pytest
plugin renames test nodes through an attribute pytest 9 no longer has) tests every operation of the schema in its
examples, coverage and fuzzing phases, positive and negative data, at most MAX_EXAMPLES cases an operation and
phase (Hypothesis deadline off), with a fixed seed; its JSON run report is asserted on:
- with the API key: every check passes, and every operation answers some request (the encounter routes in both
  the coverage and the fuzzing phase);
- without it: every check passes, and exactly the operations the schema guards with the key (the prediction
  routes: encounter, batch, FHIR, phenopacket) refuse every request (401, which the schema documents).

Every check runs but `positive_data_acceptance` in the fuzzing phase: rules across fields (systolic pressure at
least the diastolic) and the meaning of a FHIR Bundle or a phenopacket cannot be said in a JSON schema, so a random
schema-valid body may get a 422 naming the rule. What a schema can say is checked:
`test_every_request_the_encounter_schema_allows_is_accepted` runs `positive_data_acceptance` on every field bound
of the encounter routes (coverage phase); Litestar's OpenAPI generation drops a lower bound of 0 and the pattern of
list items, which the contract restates for the schema.
"""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest

from serving.tests.http_server import API_KEY, Server, publish_release, service_env, start, stop
from serving.tests.published import MAX_FEATURES, build_release

pytestmark = pytest.mark.integration

MAX_EXAMPLES: Final = 60
SEED: Final = 20250101
RUN_TIMEOUT_S: Final = 600.0
REQUEST_TIMEOUT_S: Final = 10.0
# the routes whose typed bodies schemathesis can fill with valid encounters (FHIR and phenopacket take any JSON)
EXCLUDE: Final = "--exclude-checks=positive_data_acceptance"  # see the module doc
PREDICTION_ROUTES: Final = ("POST /v1/predict", "POST /v1/predict/batch")


@pytest.fixture(scope="module")
def prod_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A prod service with an API key, serving a published test model."""
    root = tmp_path_factory.mktemp("schemathesis")
    bucket = root / "bucket"
    publish_release(bucket, build_release(seed=0, n_features=MAX_FEATURES), "prod")
    server = start(service_env(root / "home", bucket, MODEL_ENV="prod", SERVING_API_KEY=API_KEY), root)
    try:
        with server.client() as client:
            assert client.get("/ready").status_code == 200, server.log()
        yield server
    finally:
        stop(server)


@pytest.fixture(scope="module")
def openapi(prod_server: Server) -> dict[str, Any]:
    with prod_server.client() as client:
        document: dict[str, Any] = client.get("/schema/openapi.json").json()
    return document


@pytest.fixture(scope="module")
def operations(openapi: dict[str, Any]) -> set[str]:
    """`METHOD /path` of every operation the service's schema lists."""
    return {f"{method.upper()} {path}" for path, item in openapi["paths"].items() for method in item}


@pytest.fixture(scope="module")
def guarded(openapi: dict[str, Any]) -> set[str]:
    """The operations the schema says need the API key: the prediction routes, and only they."""
    labels = {
        f"{method.upper()} {path}"
        for path, item in openapi["paths"].items()
        for method, operation in item.items()
        if operation.get("security")
    }
    assert set(PREDICTION_ROUTES) <= labels and all(label.startswith("POST /v1/predict") for label in labels)
    return labels


def run_schemathesis(server: Server, workdir: Path, *options: str, api_key: str | None) -> tuple[dict[str, Any], str]:
    """`st run` against the server's schema; its JSON run report and its output. Bounded by RUN_TIMEOUT_S."""
    workdir.mkdir(parents=True, exist_ok=True)
    report = workdir / "run.json"
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{server.base_url}/schema/openapi.json",
        f"--max-examples={MAX_EXAMPLES}",
        f"--seed={SEED}",
        "--workers=1",
        f"--request-timeout={REQUEST_TIMEOUT_S:g}",
        "--continue-on-failure",
        "--report=json",
        f"--report-json-path={report}",
        *options,
    ]
    if api_key is not None:
        command += ["--header", f"X-API-Key: {api_key}"]
    environ = {"PATH": os.environ.get("PATH", ""), "HOME": str(workdir), "NO_COLOR": "1"}
    completed = subprocess.run(
        command, cwd=workdir, env=environ, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False
    )
    output = completed.stdout + completed.stderr
    assert report.is_file(), output
    return json.loads(report.read_text(encoding="utf-8")), output


def assert_clean_run(run: dict[str, Any], output: str, operations: set[str]) -> None:
    """The whole schema tested, in every phase that applies, and no check failed."""
    assert run["complete"] and run["stop_reason"] == "completed", output
    assert run["operations"]["tested"] == run["operations"]["selected"] == len(operations), output
    assert {name for name, phase in run["phases"].items() if phase["status"] == "success"} >= {
        "examples",
        "coverage",
        "fuzzing",
    }, run["phases"]
    assert run["failures"] == [] and run["errors"] == [], output
    assert run["exit_code"] == 0, output
    assert run["test_cases"]["generated"] >= 50 * len(operations), run["test_cases"]


def test_with_the_api_key_every_answer_is_as_the_schema_says(
    prod_server: Server, operations: set[str], tmp_path: Path
) -> None:
    run, output = run_schemathesis(prod_server, tmp_path, "--checks=all", EXCLUDE, api_key=API_KEY)
    assert_clean_run(run, output, operations)
    assert run["warnings"]["missing_auth"] == []
    assert set(run["valid_rates"]) == operations  # each operation answered some request
    # the prediction routes answered valid encounters and refused invalid ones, in both phases that generate them
    for route in PREDICTION_ROUTES:
        rates = run["valid_rates"][route]
        assert all(rates[phase]["accepted"] > 0 for phase in ("coverage", "fuzzing")), (route, rates)
    print(f"schemathesis with the key: {run['test_cases']}, {run['operations']}")


def test_without_the_api_key_only_the_prediction_routes_refuse(
    prod_server: Server, operations: set[str], guarded: set[str], tmp_path: Path
) -> None:
    run, output = run_schemathesis(prod_server, tmp_path, "--checks=all", EXCLUDE, api_key=None)
    assert_clean_run(run, output, operations)
    # schemathesis reports the operations that answered nothing but 401/403: exactly those the schema guards
    assert set(run["warnings"]["missing_auth"]) == guarded, run["warnings"]
    assert set(run["valid_rates"]) == operations - guarded
    print(f"schemathesis without the key: {run['test_cases']}, {run['operations']}")


def test_every_request_the_encounter_schema_allows_is_accepted(prod_server: Server, tmp_path: Path) -> None:
    """The documented contract is the enforced one (`contract.MINIMUM_ZERO` and the item pattern restate what
    Litestar's OpenAPI generation drops)."""
    run, output = run_schemathesis(
        prod_server,
        tmp_path,
        "--checks=positive_data_acceptance",
        "--phases=coverage",
        r"--include-path-regex=^/v1/predict(/batch)?$",
        api_key=API_KEY,
    )
    assert run["operations"]["tested"] == len(PREDICTION_ROUTES), output
    assert run["failures"] == [], output
