"""No training/serving skew, proven end to end: the running service (`python -m serving`, over HTTP) answers, for
the encounters of a materialized partition sent as a client sends them, the probabilities the published ONNX model
gives the platform's own `encounter_features` rows.

Five synthetic days are ingested as `make run` does (the code location's definitions and resources, all state under
one RARE_TRIAGE_HOME; k-anonymity 1 through run configuration, as in test_serving_skew.py: with the default k,
generalised quasi-identifiers make training rows differ from what a client sends, by design), then
`train_and_publish_job` trains one candidate with its gates opened by run configuration (as in
test_privacy_planted_model.py) and publishes a real format-2 version (ONNX, manifest, phenotype_encoding.json) to
the local bucket, moving `dev` to it. Each candidate (logistic regression, XGBoost) is published in turn and served
by its own service process (127.0.0.1, a free port, stopped by pid).

For every encounter of two partitions (one of the training window, one of the test window), built from the raw
extract and the governed rows (`rare_triage_tests.helpers.serving_payloads.client_payloads`):
- POST /v1/predict/batch (and a sample to POST /v1/predict): each probability within 1e-5 of onnxruntime on the
  platform's serving matrix of the same encounter (`to_serving_matrix` of `encounter_features`, the columns of the
  published manifest), the same class and outcome as the platform's threshold policy gives, nothing dropped, no HPO
  id unknown, and the unseen categories exactly those of the platform's row;
- the service does not expose the encoded row: the encoding is compared by loading the published version from the
  bucket through serving's own model store and `prepare_model` (what the service runs at start-up) and encoding the
  same requests: equal to the platform's matrix cell for cell, NaN where NaN. The probabilities above tie that
  encoder to the running process; test_serving_skew.py covers the encoder on every HPO id and the published cases.
Published cases: every case of the platform's external validation (`cases-dev.jsonl.gz`) is sent, as the GA4GH
phenopacket v2 document it was flattened from, to POST /v1/predict/phenopacket: probabilities within 1e-5 of the
ONNX model on the platform's `external_features` rows, same class and outcome, every phenotypic feature read.
(Skipped against a service without that route: sending cases to /v1/predict would change their missingness, a
published case having no centre, vitals or visit count.)
"""

import gzip
import json
import logging
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import msgspec
import numpy as np
import onnx
import pandas as pd
import pytest

from rare_triage.defs.shared import keys
from rare_triage.defs.shared.resources import build_resources, warehouse_path
from rare_triage.lib import schema
from rare_triage.lib.deployment.onnx_export import FeatureSpec, to_serving_matrix
from rare_triage.lib.deployment.onnx_export.parity import onnx_probabilities, onnx_session, spec_from_onnx
from rare_triage.lib.reference.loaders import PHENOPACKETS_JSONL, load_phenopackets
from rare_triage.lib.training.columns import model_inputs
from rare_triage.lib.training.external import external_features
from rare_triage.lib.training.thresholds import ThresholdPolicy, decide, predict_codes
from rare_triage_tests.helpers.code_location import code_location_in, failures, small_training_config
from rare_triage_tests.helpers.serving_payloads import (
    Partition,
    assert_same_matrix,
    client_payloads,
    load_partition,
    phenopacket_document,
)
from serving.api.runtime import ServingModel, prepare_model
from serving.bucket import LocalBucket
from serving.contract import Encounter
from serving.model_store import load_initial
from serving.tests.http_server import Server, service_env, start, stop

pytestmark = [pytest.mark.slow, pytest.mark.integration]

logger = logging.getLogger(__name__)

DAYS = ("2025-03-03", "2025-03-04", "2025-03-05", "2025-03-06", "2025-03-07")
TRAIN_DAYS, VALIDATION_DAYS, TEST_DAYS = DAYS[:2], DAYS[2:3], DAYS[3:]
COMPARED_DAYS = (TRAIN_DAYS[0], TEST_DAYS[-1])
CANDIDATES = ("logistic_regression+class_weight", "xgboost+class_weight")
CLASSIFIER_OPERATOR = {"logistic_regression": "LinearClassifier", "xgboost": "TreeEnsembleClassifier"}
PROBABILITY_TOLERANCE = 1e-5
BATCH_SIZE = 100  # encounters per /v1/predict/batch request (the service takes up to 256)
SINGLE_SAMPLE = 25  # encounters of each compared day also sent one by one to /v1/predict
PHENOPACKET_ROUTE = "/v1/predict/phenopacket"
REPOSITORY = Path(__file__).resolve().parents[2]
MODELS = Path("bucket") / "models" / "rare-triage"
# A synthetic day of 300 encounters with orphan patients visiting 6 times as often (about 25 orphan encounters a
# day instead of 4), so that every window holds each label; no injected errors (a refused row has no request).
SYNTHETIC_SOURCE = {
    "RARE_TRIAGE_EHR_SOURCE": "synthetic",
    "RARE_TRIAGE_ENCOUNTERS_PER_DAY": "300",
    "RARE_TRIAGE_POPULATION_SIZE": "4000",
    "RARE_TRIAGE_ERROR_RATE": "0",
    "RARE_TRIAGE_DRIFT_SCENARIOS": json.dumps(
        [{"kind": "case_mix", "start": DAYS[0], "params": {"orphan_multiplier": 6.0, "acute_multiplier": 1.0}}]
    ),
}
# run configuration replaces the resource's whole configuration: the local deployment's key default is restated
INGEST_CONFIG = {"resources": {keys.PSEUDONYMIZATION: {"config": {"k_anonymity": 1, "allow_local_default": True}}}}


def train_and_publish_config(candidate: str) -> dict[str, Any]:
    return small_training_config(
        candidate,
        validation_days=len(VALIDATION_DAYS),
        test_days=len(TEST_DAYS),
        external_validation={"max_cases": 150, "ablation": False},
    )


@dataclass(frozen=True)
class Ingested:
    """The state folder after the daily ingests, and the code location built in it (its instance open)."""

    home: Path
    defs: dg.Definitions = field(repr=False)
    instance: dg.DagsterInstance = field(repr=False)
    partitions: dict[str, Partition] = field(repr=False)


@dataclass(frozen=True)
class Published:
    """One published version: the candidate trained, its manifest and ONNX bytes as in the bucket."""

    candidate: str
    home: Path
    version: str
    manifest: dict[str, Any] = field(repr=False)
    onnx_bytes: bytes = field(repr=False)

    @property
    def spec(self) -> FeatureSpec:
        return FeatureSpec.from_dict(self.manifest["input_schema"])

    @property
    def bucket(self) -> Path:
        return self.home / "bucket"

    def policy(self) -> ThresholdPolicy:
        return ThresholdPolicy.from_bundle(self.manifest["thresholds"], self.manifest["needs_review"])


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ingested]:
    """Reference tables and DAYS ingested (k = 1) in a temporary home; the environment stays set for the module
    (the code location reads it when it loads, MLflow its default store when a run opens it)."""
    home = tmp_path_factory.mktemp("serving_http_skew") / "home"
    with code_location_in(home, SYNTHETIC_SOURCE) as (defs, instance):
        reference = defs.resolve_job_def(keys.REFERENCE_JOB).execute_in_process(instance=instance)
        assert reference.success, failures(reference)
        daily = defs.resolve_job_def(keys.DAILY_INGEST_JOB)
        for day in DAYS:
            result = daily.execute_in_process(
                run_config=INGEST_CONFIG, instance=instance, partition_key=day, raise_on_error=False
            )
            assert result.success and not failures(result), (day, failures(result))
            k_check = next(e for e in result.get_asset_check_evaluations() if e.check_name == "k_anonymity")
            assert k_check.metadata["required_k"].value == 1, k_check.metadata
        environ = dict(os.environ)
        lake = build_resources(environ)[keys.PARQUET_IO_MANAGER]
        partitions = {day: load_partition(lake, warehouse_path(environ), day) for day in COMPARED_DAYS}
        yield Ingested(home, defs, instance, partitions)


@pytest.fixture(scope="module", params=CANDIDATES)
def published(request: pytest.FixtureRequest, ingested: Ingested) -> Published:
    """`train_and_publish_job` with one candidate: its version published and `dev` pointed at it."""
    candidate: str = request.param
    job = ingested.defs.resolve_job_def(keys.TRAIN_AND_PUBLISH_JOB)
    result = job.execute_in_process(
        run_config=train_and_publish_config(candidate), instance=ingested.instance, raise_on_error=False
    )
    assert result.success, failures(result)
    version = str(result.output_for_node("published_model")["version"])
    models = ingested.home / MODELS
    assert json.loads((models / "env" / "dev.json").read_text())["version"] == version
    manifest = json.loads((models / version / "manifest.json").read_text())
    assert manifest["format"] == 2 and manifest["checks_passed"] is True
    onnx_bytes = (models / version / "model.onnx").read_bytes()
    return Published(candidate, ingested.home, version, manifest, onnx_bytes)


@pytest.fixture(scope="module")
def server(published: Published, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`python -m serving` on the bucket of `published` (dev), ready with its version; stopped by pid."""
    workdir = tmp_path_factory.mktemp("service")
    env = service_env(
        workdir / "home",
        published.bucket,
        SERVING_CACHE_DIR=str(workdir / "cache"),
        SERVING_LOG_DIR=str(workdir / "logs"),
        SERVING_RELOAD_INTERVAL_S="300",  # the version under test, not a later one
        PYTHONPATH=str(REPOSITORY),  # serving is imported from the repository, as the platform's tests do
    )
    running = start(env, workdir)
    try:
        with running.client() as client:
            deadline = time.monotonic() + 30.0
            while (ready := client.get("/ready")).status_code != 200 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert ready.status_code == 200, f"{ready.text}\n{running.log()}"
            assert ready.json()["model_version"] == published.version
        yield running
    finally:
        stop(running)


# ---- what the platform computes for the same encounters ----


def platform_matrix(features: pd.DataFrame, spec: FeatureSpec) -> np.ndarray:
    return to_serving_matrix(model_inputs(features, spec.names), spec)


def expected_unseen(features: pd.DataFrame, spec: FeatureSpec) -> list[set[str]]:
    """Per row, the categorical columns whose value (present) is not among the model's categories."""
    inputs = model_inputs(features, spec.names)
    unseen: list[set[str]] = [set() for _ in range(len(features))]
    for column in spec.columns:
        if column.kind != "categorical":
            continue
        known = set(column.categories)
        for i, value in enumerate(inputs[column.name].tolist()):
            if isinstance(value, str) and value not in known:
                unseen[i].add(column.name)
    return unseen


def post_json(client: httpx.Client, path: str, body: Any) -> Any:
    response = client.post(path, content=msgspec.json.encode(body), headers={"Content-Type": "application/json"})
    assert response.status_code == 200, (path, response.status_code, response.text)
    return response.json()


def served_batch(server: Server, payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The service's predictions of `payloads`, BATCH_SIZE encounters a request, in order."""
    predictions: list[dict[str, Any]] = []
    with httpx.Client(base_url=server.base_url, timeout=60.0) as client:
        for start_row in range(0, len(payloads), BATCH_SIZE):
            chunk = payloads[start_row : start_row + BATCH_SIZE]
            body = post_json(client, "/v1/predict/batch", {"encounters": chunk})
            assert body["count"] == len(chunk) == len(body["predictions"])
            predictions += body["predictions"]
    return predictions


@dataclass(frozen=True)
class Comparison:
    n: int
    max_abs_diff: float
    classes: set[str]
    orphan_flags: int


def compare(predictions: list[dict[str, Any]], expected: np.ndarray, published: Published) -> Comparison:
    """Served predictions against the platform's probabilities of the same rows: values, class and outcome."""
    labels = list(published.manifest["class_labels"])
    assert labels == list(schema.LABELS)
    served = np.array([[p["probabilities"][label] for label in labels] for p in predictions], dtype=np.float64)
    assert served.shape == expected.shape
    diff = np.abs(served - expected)
    worst = np.unravel_index(int(diff.argmax()), diff.shape)
    assert diff.max() <= PROBABILITY_TOLERANCE, f"row {worst[0]}, {labels[worst[1]]}: {diff[worst]:.3g}"
    policy = published.policy()
    codes = predict_codes(expected, policy)
    outcomes = decide(expected, policy)
    mismatched = [
        (i, p["class"], labels[code], p["outcome"], outcome)
        for i, (p, code, outcome) in enumerate(zip(predictions, codes.tolist(), outcomes.tolist(), strict=True))
        if (p["class"], p["outcome"]) != (labels[code], outcome)
    ]
    assert not mismatched, mismatched[:5]
    assert all(p["model_version"] == published.version for p in predictions)
    return Comparison(
        n=len(predictions),
        max_abs_diff=float(diff.max()),
        classes={p["class"] for p in predictions},
        orphan_flags=sum(bool(p["orphan_flag"]) for p in predictions),
    )


# ---- the tests ----


def test_the_service_serves_the_published_version(published: Published, server: Server) -> None:
    with server.client() as client:
        info = client.get("/v1/model").json()
    assert info["version"] == published.version and info["source"] == "bucket"
    assert info["n_features"] == len(published.spec.columns)
    # the manifest's input schema is the one embedded in the ONNX file by the export
    assert spec_from_onnx(published.onnx_bytes) == published.spec
    # the candidate trained is the model published: its ONNX graph holds the family's classifier
    ops = {node.op_type for node in onnx.load_model_from_string(published.onnx_bytes).graph.node}
    assert CLASSIFIER_OPERATOR[published.candidate.split("+")[0]] in ops, sorted(ops)


@pytest.mark.parametrize("day", COMPARED_DAYS)
def test_batch_predictions_are_the_onnx_model_on_encounter_features(
    day: str, ingested: Ingested, published: Published, server: Server
) -> None:
    partition = ingested.partitions[day]
    features = partition.features
    payloads = client_payloads(partition)
    predictions = served_batch(server, payloads)

    matrix = platform_matrix(features, published.spec)
    expected = onnx_probabilities(onnx_session(published.onnx_bytes), matrix).astype(np.float64)
    result = compare(predictions, expected, published)
    # every id passed governance, and the scores sit where the platform reads them: nothing is dropped
    assert all(not p["hpo"]["unknown"] and not p["dropped_fields"] for p in predictions)
    assert [set(p["unseen_categories"]) for p in predictions] == expected_unseen(features, published.spec)
    # the partition exercises what matters: a whole day, missing vitals, present, absent and unknown phenotype
    # flags, several predicted classes
    assert len(features) > 250 and set(features["partition_day"]) == {day}
    spec = published.spec
    flags = matrix[:, [spec.index(n) for n in spec.names if n.startswith(schema.PHENOTYPE_PREFIXES)]]
    assert (flags == 1).any() and (flags == 0).any() and np.isnan(flags).any()
    if "temperature_c" in spec.names:
        assert np.isnan(matrix[:, spec.index("temperature_c")]).any()
    assert len(result.classes) >= 2
    logger.info(
        "%s %s: %d encounters over HTTP, max |p_served - p_onnx(encounter_features)| = %.3g, classes %s, "
        "%d orphan flags, %d with unseen categories",
        published.candidate,
        day,
        result.n,
        result.max_abs_diff,
        sorted(result.classes),
        result.orphan_flags,
        sum(bool(p["unseen_categories"]) for p in predictions),
    )


@pytest.mark.parametrize("day", COMPARED_DAYS)
def test_single_predictions_are_the_batch_predictions(
    day: str, ingested: Ingested, published: Published, server: Server
) -> None:
    partition = ingested.partitions[day]
    payloads = client_payloads(partition)
    rows = np.linspace(0, len(payloads) - 1, SINGLE_SAMPLE).round().astype(int).tolist()
    with server.client() as client:
        singles = [post_json(client, "/v1/predict", payloads[i]) for i in rows]
    matrix = platform_matrix(partition.features.iloc[rows], published.spec)
    expected = onnx_probabilities(onnx_session(published.onnx_bytes), matrix).astype(np.float64)
    compare(singles, expected, published)
    batch = served_batch(server, [payloads[i] for i in rows])
    for single, batched in zip(singles, batch, strict=True):
        for label, value in single["probabilities"].items():
            assert math.isclose(value, batched["probabilities"][label], abs_tol=PROBABILITY_TOLERANCE)


def served_encoder(published: Published, cache_dir: Path) -> ServingModel:
    """What the service builds at start-up from the published version: loaded from the bucket by serving's model
    store (hashes verified, ONNX session checked) and prepared by `prepare_model`."""
    model = load_initial(LocalBucket(published.bucket), "dev", cache_dir, prepare=prepare_model)
    assert model.version == published.version
    prepared: ServingModel = model.prepared
    return prepared


@pytest.mark.parametrize("day", COMPARED_DAYS)
def test_the_served_encoding_is_encounter_features(
    day: str, ingested: Ingested, published: Published, tmp_path: Path
) -> None:
    partition = ingested.partitions[day]
    requests = msgspec.json.decode(msgspec.json.encode(client_payloads(partition)), type=list[Encounter])
    batch = served_encoder(published, tmp_path / "cache").encoder.encode(requests)
    spec = published.spec
    assert_same_matrix(batch.matrix, platform_matrix(partition.features, spec), spec.names)


def test_published_cases_are_the_onnx_model_on_external_features(
    ingested: Ingested, published: Published, server: Server
) -> None:
    with server.client() as client:
        paths = client.get("/schema/openapi.json").json()["paths"]
    if PHENOPACKET_ROUTE not in paths:
        pytest.skip(f"the service has no POST {PHENOPACKET_ROUTE}: published cases are compared in process only")
    with gzip.open(PHENOPACKETS_JSONL, "rt", encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle if line.strip()]
    with server.client() as client:
        answers = [post_json(client, PHENOPACKET_ROUTE, phenopacket_document(record)) for record in records]
    predictions = [answer["prediction"] for answer in answers]
    # every feature of every case was read as an HPO term (observed or excluded)
    for record, answer in zip(records, answers, strict=True):
        assert answer["mapping"]["features_used"] == len(record["observed"]) + len(record["excluded"]), record["id"]
        assert not answer["mapping"]["terms_not_mapped"], record["id"]
    cases = load_phenopackets()
    assert cases["id"].tolist() == [r["id"] for r in records]
    reference = ingested.partitions[COMPARED_DAYS[0]].reference
    matrix = platform_matrix(external_features(cases, reference), published.spec)
    expected = onnx_probabilities(onnx_session(published.onnx_bytes), matrix).astype(np.float64)
    result = compare(predictions, expected, published)
    logger.info(
        "%s: %d published cases over HTTP, max |p_served - p_onnx(external_features)| = %.3g",
        published.candidate,
        result.n,
        result.max_abs_diff,
    )
