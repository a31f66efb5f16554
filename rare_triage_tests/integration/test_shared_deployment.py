"""The shared deployment of deploy/dagster.yaml, for real on 127.0.0.1: PostgreSQL instance storage, the code location
served by `dagster api grpc`, `dagster-daemon run` on a workspace pointing at it, and a job backfill of the daily
ingest executed by the daemon as concurrent runs of the queued run coordinator, the DuckDB writers one at a time.

The backfilled days are consecutive: governance carries the rows it held back below k from day D-1's pending area
into day D (`pending_encounters` reads its own previous partition), and a job backfill launches the runs of adjacent
days with nothing ordering them. Day D's governance waits in its step while a run or the backfill still governs
D-1, so every day carries in exactly what the day before carried out, whatever order the queue starts them in.
"""

import itertools
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.instance.config import PoolGranularity
from dagster._core.run_coordinator import QueuedRunCoordinator

from rare_triage.defs.shared import keys
from rare_triage_tests.helpers.shared_deployment import (
    IN_PROCESS,
    Deployment,
    anonymized_encounters,
    create_database,
    materialization_metadata,
    max_overlap,
    overlapping_pairs,
    pooled_steps,
    postgres_environ,
    run_intervals,
    shared_deployment,
    step_intervals,
    submit_job_backfill,
    wait_for_backfill_runs,
    warehouse_counts,
    warehouse_duplicates,
    write_dagster_home,
)

pytestmark = pytest.mark.integration

DAYS = ("2025-04-01", "2025-04-02", "2025-04-03", "2025-04-04")
BACKFILL_SECONDS = 300.0


def test_the_instance_of_deploy_dagster_yaml_loads_on_postgres(
    postgres_url: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = write_dagster_home(tmp_path / "dagster_home")
    for name, value in postgres_environ(postgres_url, create_database(postgres_url, "dagster_config")).items():
        monkeypatch.setenv(name, value)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        assert instance.run_coordinator.dequeue_use_threads
        concurrency = instance.get_concurrency_config()
        queue = concurrency.run_queue_config
        assert queue is not None and queue.max_concurrent_runs > 1  # runs in parallel
        (backfills,) = [t for t in queue.tag_concurrency_limits if t["key"] == "dagster/backfill"]
        assert 1 < backfills["limit"] < queue.max_concurrent_runs  # a backfill leaves a slot to other runs
        assert concurrency.pool_config.default_pool_limit == 1
        assert concurrency.pool_config.pool_granularity == PoolGranularity.OP
        # the warehouse pool gets one slot from that default, as a run's first claim initializes it
        assert instance.event_log_storage.initialize_concurrency_limit_to_default(keys.DUCKDB_POOL)
        assert instance.event_log_storage.get_concurrency_info(keys.DUCKDB_POOL).slot_count == 1
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] > 0
        assert not instance.telemetry_enabled
        assert instance.get_runs() == []  # the schema was created in the empty database


def _backfill_and_check(deployment: Deployment) -> None:
    with deployment.instance() as instance:
        backfill_id = submit_job_backfill(deployment, instance, keys.DAILY_INGEST_JOB, DAYS, run_config=IN_PROCESS)
        deployment.start_daemon()  # after the backfill is recorded: its first backfill iteration submits the runs
        records = wait_for_backfill_runs(deployment, instance, backfill_id, len(DAYS), BACKFILL_SECONDS)

        # every partition ran once, successfully, with every blocking check passed
        by_day = {r.dagster_run.tags["dagster/partition"]: r for r in records}
        assert sorted(by_day) == list(DAYS)
        assert {d: r.dagster_run.status for d, r in by_day.items()} == dict.fromkeys(DAYS, dg.DagsterRunStatus.SUCCESS)
        for day, record in by_day.items():
            evaluations = instance.all_logs(
                record.dagster_run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
            )
            failed = [
                e.dagster_event.asset_check_evaluation_data.check_name
                for e in evaluations
                if e.dagster_event
                and not e.dagster_event.asset_check_evaluation_data.passed
                and e.dagster_event.asset_check_evaluation_data.severity == dg.AssetCheckSeverity.ERROR
            ]
            assert failed == [], (day, failed)

        # the queued run coordinator ran them concurrently
        runs = run_intervals(records)
        assert len(runs) == len(DAYS)
        assert max_overlap(runs) >= 2, runs

        # ... but the DuckDB writers one at a time across runs: pooled steps never overlapped
        pooled = pooled_steps(deployment, instance, keys.DAILY_INGEST_JOB, keys.DUCKDB_POOL)
        assert pooled == {keys.ENCOUNTER_FEATURES.to_python_identifier()}
        writes = step_intervals(instance, [r.dagster_run.run_id for r in records], pooled)
        assert len(writes) == len(DAYS)
        assert overlapping_pairs(writes) == []
        slots = instance.event_log_storage.get_concurrency_info(keys.DUCKDB_POOL)
        assert (slots.slot_count, slots.claimed_slots, slots.pending_steps) == (1, [], [])

        # the warehouse holds each day's anonymized encounters once, nothing written twice
        counts = warehouse_counts(deployment)
        assert sorted(counts) == list(DAYS)
        for day, record in by_day.items():
            rows, distinct = counts[day]
            features = materialization_metadata(instance, record.dagster_run.run_id, keys.ENCOUNTER_FEATURES)
            assert rows == distinct == anonymized_encounters(deployment, day) == features["encounters"] > 0, day
        assert warehouse_duplicates(deployment) == 0

        # nothing held back was lost between days: each day carried in what the day before carried out
        pending = {
            day: materialization_metadata(instance, record.dagster_run.run_id, keys.PENDING_ENCOUNTERS)
            for day, record in by_day.items()
        }
        pools = {day: metadata["pool"]["encounters"] for day, metadata in pending.items()}
        assert pools[DAYS[0]]["carried_in"] == 0  # the first day has no extract before it
        for before, day in itertools.pairwise(DAYS):
            assert pools[day]["carried_in"] == pools[before]["carried_out"], (day, pools)
        assert sum(pool["carried_out"] for pool in pools.values()) > 0  # rows were held back: the chain was tested
        waited = {day: metadata["previous_day_waited_s"] for day, metadata in pending.items()}
        print(f"seconds each day's governance waited for the previous day: {waited}")


def test_a_backfill_runs_concurrently_with_one_duckdb_writer_at_a_time(
    postgres_url: dict[str, str], tmp_path: Path
) -> None:
    with shared_deployment(tmp_path, postgres_url) as deployment:
        try:
            _backfill_and_check(deployment)
        except BaseException:
            print(deployment.report())  # the processes' output, shown by pytest with the failure
            raise
