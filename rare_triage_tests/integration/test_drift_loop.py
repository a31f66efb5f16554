"""The monitoring loop end to end: a model is served, a stable period and then a drifted one are sent through the
running service, the logs are shipped, read back, reported on, and the drift sensor requests exactly one
retraining run, whose new dev version was trained on the drifted days.

Synthetic days up to yesterday (the monitoring partitions are the UTC days of the log files, so today): a
`new_centre` drift (centre C90, three times an ordinary centre's capacity) switched on from DRIFT_START. v1 is
trained on the days before it (k-anonymity 1 as in the skew tests, so the served requests are the rows the model
saw; one candidate, the gates opened by run configuration: this test is about the loop, not the gates).

1. Stable: the encounters of v1's test window (days it was not trained on, no drift) go through the service; the
   logs are shipped; `prediction_logs` and `drift_report` of today are materialized: no retrain decision, and the
   sensor requests nothing.
2. Drifted: the encounters of the drifted days go through the same service; today's logs and report are
   materialized again: decision retrain, naming centre_id; the sensor requests exactly one run, and nothing more
   when evaluated again.
3. The requested run (its run configuration and tags, plus the small-training configuration) publishes a new dev
   version whose training partitions include drifted days.
"""

import datetime as dt
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import msgspec
import pytest
from dagster_duckdb import DuckDBResource

from rare_triage.defs.monitoring.sensors import drift_retraining_sensor
from rare_triage.defs.shared import keys
from rare_triage.defs.shared.resources import build_resources, warehouse_path
from rare_triage_tests.helpers.code_location import code_location_in, failures, small_training_config
from rare_triage_tests.helpers.serving_payloads import client_payloads, load_partition
from serving.tests.http_server import Server, service_env, start, stop

pytestmark = [pytest.mark.slow, pytest.mark.integration]

REPOSITORY = Path(__file__).resolve().parents[2]
YESTERDAY = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
PRE_DAYS = [(YESTERDAY - dt.timedelta(days=back)).isoformat() for back in range(15, 5, -1)]  # 10 days, no drift
DRIFT_DAYS = [(YESTERDAY - dt.timedelta(days=back)).isoformat() for back in range(5, -1, -1)]  # 6 drifted days
V1_VALIDATION_DAYS, V1_TEST_DAYS = 2, 2
STABLE_DAYS = PRE_DAYS[-V1_TEST_DAYS:]  # v1's test window: not in its reference profile
SERVED_DRIFT_DAYS = DRIFT_DAYS[:2]  # the same length as the stable period
NEW_CENTRE = "C90"
SOURCE = {
    "RARE_TRIAGE_EHR_SOURCE": "synthetic",
    "RARE_TRIAGE_ENCOUNTERS_PER_DAY": "300",
    "RARE_TRIAGE_POPULATION_SIZE": "4000",
    "RARE_TRIAGE_ERROR_RATE": "0",
    "RARE_TRIAGE_DRIFT_SCENARIOS": json.dumps(
        [
            # orphan patients visit more often, from the first day on, so that every window holds each label
            {"kind": "case_mix", "start": PRE_DAYS[0], "params": {"orphan_multiplier": 6.0, "acute_multiplier": 1.0}},
            {
                "kind": "new_centre",
                "start": DRIFT_DAYS[0],
                "params": {"centre_id": NEW_CENTRE, "level": "tertiary", "region": "Madrid", "capacity": 3.0},
            },
        ]
    ),
    # the retraining run the sensor requests: validation and test windows of 2 days, ending on the latest day
    "RARE_TRIAGE_RETRAIN_VALIDATION_DAYS": "2",
    "RARE_TRIAGE_RETRAIN_TEST_DAYS": "2",
    "RARE_TRIAGE_RETRAIN_MIN_WINDOW_ORPHANS": "0",
}
INGEST_CONFIG = {"resources": {keys.PSEUDONYMIZATION: {"config": {"k_anonymity": 1, "allow_local_default": True}}}}
EXTERNAL = {"max_cases": 100, "ablation": False}
CANDIDATE = "logistic_regression+class_weight"
MODELS = Path("bucket") / "models" / "rare-triage"


@dataclass
class Loop:
    home: Path
    defs: dg.Definitions = field(repr=False)
    instance: dg.DagsterInstance = field(repr=False)
    v1: str
    today: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).date().isoformat())

    def dev_version(self) -> str:
        return str(json.loads((self.home / MODELS / "env" / "dev.json").read_text())["version"])

    def warehouse(self) -> DuckDBResource:
        return DuckDBResource(database=warehouse_path(dict(os.environ)))

    def sensor(self, cursor: str | None) -> dg.SensorResult:
        context = dg.build_sensor_context(instance=self.instance, cursor=cursor, resources={"duckdb": self.warehouse()})
        result = drift_retraining_sensor(context)
        assert isinstance(result, dg.SensorResult)
        return result

    def monitor_today(self) -> dg.ExecuteInProcessResult:
        job = self.defs.resolve_job_def(keys.MONITORING_JOB)
        result = job.execute_in_process(instance=self.instance, partition_key=self.today, raise_on_error=False)
        assert result.success, failures(result)
        return result


def _ingest(defs: dg.Definitions, instance: dg.DagsterInstance, days: list[str]) -> None:
    daily = defs.resolve_job_def(keys.DAILY_INGEST_JOB)
    for day in days:
        result = daily.execute_in_process(
            run_config=INGEST_CONFIG, instance=instance, partition_key=day, raise_on_error=False
        )
        assert result.success and not failures(result), (day, failures(result))


def _train_and_publish(
    defs: dg.Definitions, instance: dg.DagsterInstance, run_config: dict[str, Any], tags: dict[str, str] | None = None
) -> str:
    job = defs.resolve_job_def(keys.TRAIN_AND_PUBLISH_JOB)
    result = job.execute_in_process(run_config=run_config, instance=instance, tags=tags, raise_on_error=False)
    assert result.success, failures(result)
    return str(result.output_for_node("published_model")["version"])


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:
    home = tmp_path_factory.mktemp("drift_loop") / "home"
    with code_location_in(home, SOURCE) as (defs, instance):
        reference = defs.resolve_job_def(keys.REFERENCE_JOB).execute_in_process(instance=instance)
        assert reference.success, failures(reference)
        _ingest(defs, instance, PRE_DAYS)
        config = small_training_config(
            CANDIDATE, validation_days=V1_VALIDATION_DAYS, test_days=V1_TEST_DAYS, external_validation=EXTERNAL
        )
        v1 = _train_and_publish(defs, instance, config)
        _ingest(defs, instance, DRIFT_DAYS)
        yield Loop(home, defs, instance, v1)


def _serve_phase(loop: Loop, tmp_path: Path, days: list[str]) -> int:
    """Start the service on dev (v1), send the days' encounters as a client does (with the patient's id, which the
    service logs as its keyed pseudonym only), stop it: a graceful stop closes and ships the last log file."""
    environ = dict(os.environ)
    lake = build_resources(environ)[keys.PARQUET_IO_MANAGER]
    payloads = []
    for day in days:
        part = load_partition(lake, warehouse_path(environ), day)
        payloads += client_payloads(part)
    env = service_env(
        tmp_path / "home",
        loop.home / "bucket",
        SERVING_CACHE_DIR=str(tmp_path / "cache"),
        SERVING_LOG_DIR=str(tmp_path / "logs"),
        SERVING_RELOAD_INTERVAL_S="300",
        PYTHONPATH=str(REPOSITORY),
    )
    server = start(env, tmp_path)
    try:
        served = _serve(server, payloads)
    finally:
        stop(server)
    assert served == len(payloads)
    return served


def _serve(server: Server, payloads: list[dict[str, Any]]) -> int:
    served = 0
    with httpx.Client(base_url=server.base_url, timeout=60.0) as client:
        for start_row in range(0, len(payloads), 100):
            chunk = payloads[start_row : start_row + 100]
            response = client.post(
                "/v1/predict/batch",
                content=msgspec.json.encode({"encounters": chunk}),
                headers={"Content-Type": "application/json"},
            )
            assert response.status_code == 200, response.text
            served += len(response.json()["predictions"])
    return served


def _shipped_lines(loop: Loop) -> int:
    folder = loop.home / "bucket" / "predictions" / "env=dev" / f"dt={loop.today}"
    return sum(path.read_bytes().count(b"\n") for path in folder.glob("*.txt")) if folder.is_dir() else 0


def _decision(result: dg.ExecuteInProcessResult) -> tuple[str, str]:
    event = next(e for e in result.get_asset_materialization_events() if e.asset_key == keys.DRIFT_REPORT)
    metadata = event.materialization.metadata
    return str(metadata["decision"].value), str(metadata["reasons"].value)


def test_stable_then_drifted_period_requests_exactly_one_retraining(loop: Loop, tmp_path: Path) -> None:
    # 1. a stable period: nothing requested
    stable = _serve_phase(loop, tmp_path / "stable", STABLE_DAYS)
    assert _shipped_lines(loop) == stable
    result = loop.monitor_today()
    logs = next(e for e in result.get_asset_materialization_events() if e.asset_key == keys.PREDICTION_LOGS)
    assert logs.materialization.metadata["parsed"].value == stable
    assert logs.materialization.metadata["rejected"].value == 0
    decision, reasons = _decision(result)
    assert decision in {"no_drift", "watch"}, reasons
    quiet = loop.sensor(None)
    assert not quiet.run_requests, quiet.skip_reason

    # 2. the drifted period of the same length, through the same service and model
    drifted = _serve_phase(loop, tmp_path / "drifted", SERVED_DRIFT_DAYS)
    assert _shipped_lines(loop) == stable + drifted
    decision, reasons = _decision(loop.monitor_today())
    assert decision == "retrain", reasons
    assert "centre_id" in reasons
    alarm = loop.sensor(quiet.cursor)
    assert len(alarm.run_requests or []) == 1, alarm.skip_reason
    request = (alarm.run_requests or [])[0]
    assert request.tags[keys.DRIFT_PARTITION_TAG] == loop.today
    again = loop.sensor(alarm.cursor)
    assert not again.run_requests

    # 3. the requested run: a new dev version trained on drifted days
    small = small_training_config(CANDIDATE, validation_days=0, test_days=0, external_validation=EXTERNAL)
    run_config = {"ops": {**small["ops"], **request.run_config["ops"]}}
    v2 = _train_and_publish(loop.defs, loop.instance, run_config, tags=dict(request.tags))
    assert v2 != loop.v1
    assert loop.dev_version() == v2
    manifest = json.loads((loop.home / MODELS / v2 / "manifest.json").read_text())
    trained_on = set(manifest["training_partitions"])
    retrain_test_days = int(SOURCE["RARE_TRIAGE_RETRAIN_TEST_DAYS"])
    assert set(DRIFT_DAYS[:-retrain_test_days]) <= trained_on, sorted(trained_on)
    assert "monitoring_reference" in manifest["files"]
