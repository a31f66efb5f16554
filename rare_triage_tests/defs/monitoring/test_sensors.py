"""The drift sensor and the log sensor, evaluated with build_sensor_context on a real (ephemeral) instance: run
requests, skip reasons and cursors."""

import datetime as dt
import json
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster_duckdb import DuckDBResource

from rare_triage.defs.monitoring.sensors import (
    DriftCursor,
    RetrainPolicy,
    drift_retraining_sensor,
    prediction_log_sensor,
    retraining_run_config,
)
from rare_triage.defs.shared import keys as c
from rare_triage.defs.shared.bucket import ModelBucketResource


def _report(instance: dg.DagsterInstance, day: str, decision: str) -> None:
    start = (dt.date.fromisoformat(day) - dt.timedelta(days=6)).isoformat()
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=c.DRIFT_REPORT, partition=day, metadata={"decision": decision, "window": [start, day]}
        )
    )


@pytest.fixture
def warehouse(tmp_path: Path) -> DuckDBResource:
    """A warehouse whose features table holds 2025-03-01..2025-03-20."""
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as conn:
        conn.execute("create schema features")
        conn.execute(
            "create table features.encounter_features as select strftime(d, '%Y-%m-%d') as partition_day "
            "from range(date '2025-03-01', date '2025-03-21', interval 1 day) t(d)"
        )
    return DuckDBResource(database=str(path))


def _evaluate(instance: dg.DagsterInstance, warehouse: DuckDBResource, cursor: str | None = None) -> dg.SensorResult:
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"duckdb": warehouse})
    result = drift_retraining_sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


def test_one_retrain_decision_requests_exactly_one_run(warehouse: DuckDBResource) -> None:
    with dg.instance_for_test() as instance:
        _report(instance, "2025-03-18", "no_drift")
        _report(instance, "2025-03-19", "retrain")
        first = _evaluate(instance, warehouse)
        assert len(first.run_requests or []) == 1
        request = (first.run_requests or [])[0]
        assert request.tags[c.DRIFT_PARTITION_TAG] == "2025-03-19"
        assert str(request.run_key).startswith("drift-retrain-")
        assert request.run_config == retraining_run_config(RetrainPolicy.from_environ({}))
        # the same decision evaluated again: nothing more
        again = _evaluate(instance, warehouse, first.cursor)
        assert not again.run_requests
        assert again.skip_reason is not None and "no new drift_report" in str(again.skip_reason)


def test_no_drift_consumes_the_reports_without_a_run(warehouse: DuckDBResource) -> None:
    with dg.instance_for_test() as instance:
        _report(instance, "2025-03-18", "no_drift")
        _report(instance, "2025-03-19", "watch")
        result = _evaluate(instance, warehouse)
        assert not result.run_requests
        assert "no retraining" in str(result.skip_reason)
        assert "watch" in str(result.skip_reason) and "no_drift" in str(result.skip_reason)
        assert DriftCursor.parse(result.cursor).after_storage_id > 0


def test_a_second_retrain_decision_within_the_cooldown_requests_nothing(
    warehouse: DuckDBResource, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RARE_TRIAGE_RETRAIN_COOLDOWN_HOURS", "24")
    with dg.instance_for_test() as instance:
        _report(instance, "2025-03-19", "retrain")
        first = _evaluate(instance, warehouse)
        assert len(first.run_requests or []) == 1
        _report(instance, "2025-03-20", "retrain")
        second = _evaluate(instance, warehouse, first.cursor)
        assert not second.run_requests
        assert "cooldown" in str(second.skip_reason)
        # past the cooldown, a new decision requests a run again
        cursor = DriftCursor.parse(second.cursor)
        expired = DriftCursor(cursor.after_storage_id, "2025-01-01T00:00:00+00:00").dump()
        _report(instance, "2025-03-20", "retrain")
        third = _evaluate(instance, warehouse, expired)
        assert len(third.run_requests or []) == 1


def test_retraining_waits_for_the_features_of_the_drifted_window(warehouse: DuckDBResource) -> None:
    with dg.instance_for_test() as instance:
        _report(instance, "2025-04-10", "retrain")  # window 2025-04-04..10: no features yet
        waiting = _evaluate(instance, warehouse)
        assert not waiting.run_requests
        assert "waiting for the features" in str(waiting.skip_reason)
        assert waiting.cursor is None  # the decision is kept for the next evaluation
        with duckdb.connect(warehouse.database) as conn:
            conn.execute("insert into features.encounter_features values ('2025-04-05')")
        ready = _evaluate(instance, warehouse)
        assert len(ready.run_requests or []) == 1


def test_log_sensor_requests_a_day_once_per_set_of_files(tmp_path: Path) -> None:
    today = dt.datetime.now(dt.UTC).date().isoformat()
    folder = tmp_path / "bucket" / "predictions" / "env=dev" / f"dt={today}"
    folder.mkdir(parents=True)
    (folder / "predicciones_dev.a.txt").write_bytes(b"")
    resources = {"bucket": ModelBucketResource(uri=str(tmp_path / "bucket"))}
    first = prediction_log_sensor(dg.build_sensor_context(resources=resources))
    assert isinstance(first, dg.SensorResult)
    assert [r.partition_key for r in first.run_requests or []] == [today]
    same = prediction_log_sensor(dg.build_sensor_context(resources=resources, cursor=first.cursor))
    assert isinstance(same, dg.SensorResult) and not same.run_requests
    (folder / "predicciones_dev.b.txt").write_bytes(b"")
    more = prediction_log_sensor(dg.build_sensor_context(resources=resources, cursor=same.cursor))
    assert isinstance(more, dg.SensorResult)
    assert [r.partition_key for r in more.run_requests or []] == [today]
    assert json.loads(more.cursor or "{}")[today] != json.loads(first.cursor or "{}")[today]
