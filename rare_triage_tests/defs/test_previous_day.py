"""Day D's governance reads D-1's pending area: it refuses to run over a D-1 extracted and not governed, waits for a
run or a job backfill still governing D-1, and starts empty when D-1 has no extract at all."""

import uuid
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
from dagster._time import get_current_timestamp

from rare_triage.defs.governance.assets import anonymized_and_quarantined
from rare_triage.defs.governance.previous_day import BACKFILL_TAG, PARTITION_TAG, unfinished_run_governing
from rare_triage.defs.ingest.assets import raw_ehr_extract
from rare_triage.defs.reference.assets import hpo_reference_tables
from rare_triage.defs.shared import keys as c
from rare_triage.defs.shared.resources import build_resources
from rare_triage_tests.helpers.materialize import local_environ, materialize_reference

BEFORE, DAY = "2025-05-01", "2025-05-02"
GOVERN_CONFIG_KEY = "govern_extract"


def _govern(
    resources: dict[str, object],
    instance: dg.DagsterInstance,
    day: str,
    tags: dict[str, str] | None = None,
    **config: object,
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [anonymized_and_quarantined, raw_ehr_extract.to_source_asset(), hpo_reference_tables.to_source_asset()],
        resources=resources,
        instance=instance,
        partition_key=day,
        run_config={"ops": {GOVERN_CONFIG_KEY: {"config": config}}} if config else None,
        tags=tags,
        raise_on_error=False,
    )


def _failure_message(result: dg.ExecuteInProcessResult) -> str:
    (failure,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    return failure.step_failure_data.error.message  # type: ignore[union-attr]


def _extract(resources: dict[str, object], instance: dg.DagsterInstance, day: str) -> None:
    sources = [hpo_reference_tables.to_source_asset()]
    result = dg.materialize([raw_ehr_extract, *sources], resources=resources, instance=instance, partition_key=day)
    assert result.success


def _pool(result: dg.ExecuteInProcessResult) -> dict[str, int]:
    event = next(m for m in result.get_asset_materialization_events() if m.asset_key == c.PENDING_ENCOUNTERS)
    return event.materialization.metadata["pool"].value["encounters"]  # type: ignore[index,union-attr]


@pytest.fixture
def extracted(tmp_path: Path) -> tuple[Path, dict[str, object], dg.DagsterInstance]:
    """Two consecutive days extracted, neither governed."""
    home = tmp_path / "home"
    resources = dict(build_resources(local_environ(home)))
    instance = dg.DagsterInstance.ephemeral()
    materialize_reference(resources, instance)
    for day in (BEFORE, DAY):
        _extract(resources, instance, day)
    return home, resources, instance


def test_a_day_whose_previous_day_was_extracted_and_not_governed_is_refused(
    extracted: tuple[Path, dict[str, object], dg.DagsterInstance],
) -> None:
    home, resources, instance = extracted
    result = _govern(resources, instance, DAY)
    assert not result.success
    message = _failure_message(result)
    assert f"pending_encounters {BEFORE} is not materialized although raw_ehr_extract {BEFORE} is" in message
    assert f"govern {BEFORE} first" in message
    assert not (home / "lake" / "pending_encounters" / f"partition_day={DAY}").exists()  # nothing stored for D
    assert not (home / "lake" / "anonymized_encounters" / f"partition_day={DAY}").exists()


def test_governed_in_order_the_day_carries_in_what_the_previous_day_carried_out(
    extracted: tuple[Path, dict[str, object], dg.DagsterInstance],
) -> None:
    _, resources, instance = extracted
    first = _govern(resources, instance, BEFORE)  # its own previous day has no extract: it starts empty
    assert first.success
    assert _pool(first)["carried_in"] == 0
    second = _govern(resources, instance, DAY)
    assert second.success
    assert _pool(second)["carried_in"] == _pool(first)["carried_out"]


def test_the_refusal_can_be_overridden_knowingly(
    extracted: tuple[Path, dict[str, object], dg.DagsterInstance],
) -> None:
    _, resources, instance = extracted
    result = _govern(resources, instance, DAY, allow_missing_previous_day=True)
    assert result.success
    assert _pool(result)["carried_in"] == 0


def _backfill(instance: dg.DagsterInstance, days: list[str]) -> str:
    backfill_id = uuid.uuid4().hex[:8]
    instance.add_backfill(
        PartitionBackfill(
            backfill_id=backfill_id,
            status=BulkActionStatus.REQUESTED,
            partition_names=days,
            from_failure=False,
            reexecution_steps=None,
            tags={},
            backfill_timestamp=get_current_timestamp(),
        )
    )
    return backfill_id


def _started_run(instance: dg.DagsterInstance, backfill_id: str, day: str) -> dg.DagsterRun:
    run = dg.DagsterRun(
        job_name=c.DAILY_INGEST_JOB,
        run_id=str(uuid.uuid4()),
        tags={BACKFILL_TAG: backfill_id, PARTITION_TAG: day},
        status=dg.DagsterRunStatus.STARTED,
    )
    return instance.add_run(run)


def test_a_job_backfill_holding_the_previous_day_is_waited_for_until_its_run_of_that_day_ends() -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        backfill_id = _backfill(instance, [BEFORE, DAY])
        # the run of D-1 is not submitted yet: D waits for the backfill
        assert unfinished_run_governing(instance, BEFORE, backfill_id) == f"backfill {backfill_id}"
        run = _started_run(instance, backfill_id, BEFORE)
        assert unfinished_run_governing(instance, BEFORE, backfill_id) == f"run {run.run_id}"
        instance.report_run_failed(run)
        assert unfinished_run_governing(instance, BEFORE, backfill_id) is None  # ended: nothing more to wait for
        # a day outside the backfill, or no backfill at all: nothing to wait for
        assert unfinished_run_governing(instance, "2025-04-30", backfill_id) is None
        assert unfinished_run_governing(instance, BEFORE, None) is None


def test_a_day_waits_for_its_backfill_s_previous_day_and_fails_clearly_when_the_wait_runs_out(
    extracted: tuple[Path, dict[str, object], dg.DagsterInstance],
) -> None:
    home, resources, instance = extracted
    backfill_id = _backfill(instance, [BEFORE, DAY])  # its run of D-1 is never submitted here
    result = _govern(
        resources,
        instance,
        DAY,
        tags={BACKFILL_TAG: backfill_id},
        previous_day_wait_seconds=1.0,
        previous_day_poll_seconds=0.2,
    )
    assert not result.success
    message = _failure_message(result)
    assert f"pending_encounters {BEFORE} was still not materialized after 1 s (backfill {backfill_id}" in message
    assert not (home / "lake" / "pending_encounters" / f"partition_day={DAY}").exists()
