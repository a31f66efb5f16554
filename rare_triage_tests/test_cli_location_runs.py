"""The CLI's runs are runs of the code location, as the Dagster UI sees them: the UI's own GraphQL API, served from
this module loaded as a code location over gRPC (as `dg dev` loads it), lists them on the job page with the job's
current snapshot (no "different version" on re-execution), and a date range shows as one backfill of its runs."""

import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from dagster._core.execution.backfill import BulkActionStatus
from dagster._core.storage.dagster_run import DagsterRunStatus, RunsFilter
from dagster._core.storage.tags import BACKFILL_ID_TAG, REPOSITORY_LABEL_TAG
from dagster._core.workspace.context import WorkspaceProcessContext, WorkspaceRequestContext
from dagster._core.workspace.load_target import ModuleTarget
from dagster_graphql.test.utils import execute_dagster_graphql

from rare_triage.cli.location_runs import DEFINITIONS_MODULE, LOCATION_NAME, LocationRuns, partition_set_name
from rare_triage.defs.shared import keys
from rare_triage.lib.paths import PROJECT_ROOT

LOCATION = "location_runs_tests"
DAYS = dg.DailyPartitionsDefinition(start_date="2025-01-01")
FAILING_DAY = "2025-01-03"


@dg.asset(partitions_def=DAYS)
def daily_table(context: dg.AssetExecutionContext) -> int:
    if context.partition_key == FAILING_DAY:
        raise RuntimeError("the extract of this day is unreadable")
    return 1


@dg.asset_check(asset=daily_table, blocking=True, partitions_def=DAYS)
def daily_rows(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True, metadata={"partition": context.partition_key})


DAILY_JOB = "daily_job"
DEFS = dg.Definitions(
    assets=[daily_table], asset_checks=[daily_rows], jobs=[dg.define_asset_job(DAILY_JOB, selection=[daily_table])]
)

JOB_RUNS = """
query ($selector: PipelineSelector!) {
  pipelineOrError(params: $selector) {
    ... on Pipeline { id runs { runId status pipelineSnapshotId } }
    ... on PythonError { message }
  }
}
"""
BACKFILL = """
query ($backfillId: String!) {
  partitionBackfillOrError(backfillId: $backfillId) {
    ... on PartitionBackfill {
      status numPartitions title partitionSetName runs(limit: 100) { runId tags { key value } }
    }
    ... on PythonError { message }
  }
}
"""


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test(temp_dir=str(tmp_path)) as test_instance:
        yield test_instance


@pytest.fixture
def runs(instance: dg.DagsterInstance) -> Iterator[LocationRuns]:
    with LocationRuns(instance, module_name=__name__, location_name=LOCATION) as location:
        yield location


@pytest.fixture
def ui(instance: dg.DagsterInstance) -> Iterator[WorkspaceRequestContext]:
    """What the webserver answers: the workspace loading this module over gRPC, as `dg dev` loads a project."""
    target = ModuleTarget(
        module_name=__name__, attribute=None, working_directory=str(PROJECT_ROOT), location_name=LOCATION
    )
    with WorkspaceProcessContext(instance, target) as process:
        context = process.create_request_context()
        assert not context.get_code_location_error(LOCATION), context.get_code_location_error(LOCATION)
        yield context


def _query(ui: WorkspaceRequestContext, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    result = execute_dagster_graphql(ui, query, variables)
    assert not result.errors, result.errors
    return result.data  # type: ignore[no-any-return]


def _job_page(ui: WorkspaceRequestContext, job: str) -> dict[str, Any]:
    selector = {"repositoryLocationName": LOCATION, "repositoryName": "__repository__", "pipelineName": job}
    page = _query(ui, JOB_RUNS, {"selector": selector})["pipelineOrError"]
    assert "runs" in page, page
    return page


def test_a_run_is_listed_on_its_job_page_with_the_jobs_current_snapshot(
    runs: LocationRuns, ui: WorkspaceRequestContext, instance: dg.DagsterInstance
) -> None:
    result = runs.run(DAILY_JOB, {}, {"dagster/partition": "2025-01-01"})

    assert result.success
    (listed,) = _job_page(ui, DAILY_JOB)["runs"]
    assert (listed["runId"], listed["status"]) == (result.run_id, "SUCCESS")
    job = ui.get_code_location(LOCATION).get_repository("__repository__").get_full_job(DAILY_JOB)
    assert listed["pipelineSnapshotId"] == job.identifying_job_snapshot_id  # re-execution: the same version
    stored = instance.get_run_by_id(result.run_id)
    assert stored is not None and stored.run_config["execution"] == {"config": {"in_process": {}}}
    assert stored.tags["dagster/partition"] == "2025-01-01"
    record = instance.get_latest_asset_check_evaluation_record(daily_rows.check_key)
    assert record is not None and record.run_id == result.run_id and record.event is not None
    evaluation = record.event.asset_check_evaluation
    assert evaluation is not None and evaluation.partition == "2025-01-01"  # the check recorded for its day


def test_a_date_range_is_one_backfill_of_its_runs(runs: LocationRuns, ui: WorkspaceRequestContext) -> None:
    days = ["2025-01-01", "2025-01-02"]
    with runs.backfill(DAILY_JOB, days, "two days") as backfill:
        for day in days:
            backfill.ended(day, runs.run(DAILY_JOB, {}, backfill.tags_for(day)).success)

    shown = _query(ui, BACKFILL, {"backfillId": backfill.backfill_id})["partitionBackfillOrError"]
    assert (shown["status"], shown["numPartitions"], shown["title"]) == ("COMPLETED_SUCCESS", 2, "two days")
    assert shown["partitionSetName"] == partition_set_name(DAILY_JOB)
    partitions = sorted(
        tag["value"] for run in shown["runs"] for tag in run["tags"] if tag["key"] == "dagster/partition"
    )
    assert partitions == days
    assert len(_job_page(ui, DAILY_JOB)["runs"]) == 2


def test_a_backfill_with_a_failed_run_is_recorded_as_failed_and_one_that_raised_as_failed_too(
    runs: LocationRuns, instance: dg.DagsterInstance
) -> None:
    days = ["2025-01-02", FAILING_DAY]
    with runs.backfill(DAILY_JOB, days, "a bad day") as backfill:
        for day in days:
            backfill.ended(day, runs.run(DAILY_JOB, {}, backfill.tags_for(day)).success)
    recorded = instance.get_backfill(backfill.backfill_id)
    assert recorded is not None and recorded.status == BulkActionStatus.COMPLETED_FAILED
    assert recorded.failure_count == 1 and recorded.last_submitted_partition_name == FAILING_DAY

    with pytest.raises(KeyboardInterrupt), runs.backfill(DAILY_JOB, days, "interrupted") as interrupted:
        raise KeyboardInterrupt
    stopped = instance.get_backfill(interrupted.backfill_id)
    assert stopped is not None and stopped.status == BulkActionStatus.FAILED
    assert stopped.last_submitted_partition_name is None


def test_the_demos_runs_are_runs_of_the_code_location_and_its_days_one_backfill(tmp_path: Path) -> None:
    """`make run` as a user starts it (without training): what it ran is on the job pages of the code location
    `rare_triage` and its days are one backfill."""
    environ = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("RARE_TRIAGE_", "DAGSTER_"))},
        "RARE_TRIAGE_HOME": str(tmp_path),
    }
    command = [sys.executable, "-m", "rare_triage", "demo", "--days", "2", "--no-train", "--end", "2025-03-02"]
    shown = subprocess.run(command, env=environ, capture_output=True, text=True, timeout=600, check=False)
    assert shown.returncode == 0, shown.stderr[-3000:]
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster_home")) as instance:
        label = {REPOSITORY_LABEL_TAG: f"__repository__@{LOCATION_NAME}"}
        daily = instance.get_runs(RunsFilter(job_name=keys.DAILY_INGEST_JOB, tags=label))
        reference = instance.get_runs(RunsFilter(job_name=keys.REFERENCE_JOB, tags=label))
        (backfill,) = instance.get_backfills()
        assert len(reference) == 1 and reference[0].status == DagsterRunStatus.SUCCESS
        assert sorted(run.tags["dagster/partition"] for run in daily) == ["2025-03-01", "2025-03-02"]
        assert {run.tags.get(BACKFILL_ID_TAG) for run in daily} == {backfill.backfill_id}
        assert backfill.status == BulkActionStatus.COMPLETED_SUCCESS and backfill.partition_names == [
            "2025-03-01",
            "2025-03-02",
        ]
    assert f"backfill {backfill.backfill_id} recorded" in shown.stdout


def test_the_cli_names_the_code_location_as_the_workspace_and_dg_do() -> None:
    workspace = yaml.safe_load((PROJECT_ROOT / "workspace.yaml").read_text())
    (entry,) = workspace["load_from"]
    assert entry["python_module"]["location_name"] == LOCATION_NAME
    assert entry["python_module"]["module_name"] == DEFINITIONS_MODULE
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    assert project["tool"]["dg"]["project"]["code_location_name"] == LOCATION_NAME
