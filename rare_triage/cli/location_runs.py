"""Runs of the code location itself, executed in this process: what the CLI starts is what the Dagster UI lists.

A run created here carries the code location's job snapshot and origin (location `rare_triage`, repository
`__repository__`), as a run launched from the UI does: the job pages list it, the timeline shows it, and re-execution
finds the same job version. It executes in this process with the in-process executor (no run worker, no step
processes), so the CLI sees its events as they happen.

A date range of a partitioned job is one job backfill: its runs carry the backfill's id and their partition, and the
backfill is recorded once its runs ended (completed, or completed with failures). It is recorded only then, so that a
daemon watching the same instance never takes it for a backfill it should run itself.
"""

import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import dagster as dg
from dagster._core.definitions.selector import JobSubsetSelector
from dagster._core.execution.api import execute_run
from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
from dagster._core.execution.execution_result import ExecutionResult
from dagster._core.remote_origin import InProcessCodeLocationOrigin, RemotePartitionSetOrigin
from dagster._core.remote_representation.code_location import InProcessCodeLocation
from dagster._core.remote_representation.external import RemoteRepository
from dagster._core.storage.dagster_run import DagsterRun
from dagster._core.storage.tags import PARTITION_NAME_TAG, PARTITION_SET_TAG
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._utils.hosted_user_process import recon_job_from_origin

from rare_triage.lib.paths import PROJECT_ROOT

LOCATION_NAME = "rare_triage"  # workspace.yaml's location_name and [tool.dg.project] code_location_name
DEFINITIONS_MODULE = "rare_triage.definitions"
IN_PROCESS: dict[str, Any] = {"execution": {"config": {"in_process": {}}}}


def partition_set_name(job_name: str) -> str:
    """The name Dagster gives the partition set of a partitioned job."""
    return f"{job_name}_partition_set"


@dataclass
class JobBackfill:
    """The runs of one job over a range of partitions, recorded as one backfill when they ended."""

    backfill_id: str
    job_name: str
    partition_keys: Sequence[str]
    title: str
    started: float = field(default_factory=time.time)
    submitted: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def tags_for(self, partition_key: str) -> dict[str, str]:
        """The tags of the run of `partition_key` (as the backfill daemon sets them)."""
        return {
            **DagsterRun.tags_for_backfill_id(self.backfill_id),
            PARTITION_NAME_TAG: partition_key,
            PARTITION_SET_TAG: partition_set_name(self.job_name),
        }

    def ended(self, partition_key: str, success: bool) -> None:
        self.submitted.append(partition_key)
        if not success:
            self.failed.append(partition_key)


class LocationRuns(AbstractContextManager["LocationRuns"]):
    """The code location of `module_name` loaded in this process as `location_name`, running its jobs against
    `instance`."""

    def __init__(
        self,
        instance: dg.DagsterInstance,
        module_name: str = DEFINITIONS_MODULE,
        location_name: str = LOCATION_NAME,
        working_directory: Path = PROJECT_ROOT,
    ) -> None:
        self.instance = instance
        self.location_name = location_name
        origin = InProcessCodeLocationOrigin(
            LoadableTargetOrigin(
                executable_path=sys.executable, module_name=module_name, working_directory=str(working_directory)
            ),
            location_name=location_name,
        )
        self._location = InProcessCodeLocation(origin, instance)
        (name,) = self._location.get_repository_names()
        self.repository: RemoteRepository = self._location.get_repository(name)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._location.cleanup()

    def create_run(
        self, job_name: str, run_config: Mapping[str, Any], tags: Mapping[str, str], run_id: str
    ) -> DagsterRun:
        """A run (not started) of the job with the code location's snapshot and origin; `run_config` merged over
        the in-process executor."""
        selector = JobSubsetSelector(
            location_name=self.location_name, repository_name=self.repository.name, job_name=job_name, op_selection=None
        )
        job = self._location.get_job(selector)
        config = {**IN_PROCESS, **run_config}
        plan = self._location.get_execution_plan(
            job, config, step_keys_to_execute=None, known_state=None, instance=self.instance
        )
        return self.instance.create_run(
            job_name=job_name,
            run_id=run_id,
            run_config=config,
            resolved_op_selection=None,
            step_keys_to_execute=None,
            op_selection=None,
            status=None,
            root_run_id=None,
            parent_run_id=None,
            tags={**job.tags, **tags},
            job_snapshot=job.job_snapshot,
            execution_plan_snapshot=plan.execution_plan_snapshot,
            parent_job_snapshot=job.parent_job_snapshot,
            remote_job_origin=job.get_remote_origin(),
            job_code_origin=job.get_python_origin(),
            asset_selection=None,
            asset_check_selection=None,
            asset_graph=self.repository.asset_graph,
        )

    def run(
        self, job_name: str, run_config: Mapping[str, Any], tags: Mapping[str, str] | None = None, run_id: str = ""
    ) -> ExecutionResult:
        """Create and execute one run of `job_name`; its result (failures are in it, not raised)."""
        run = self.create_run(job_name, run_config, tags or {}, run_id or str(uuid.uuid4()))
        assert run.job_code_origin is not None  # created with one above
        return execute_run(recon_job_from_origin(run.job_code_origin), run, self.instance, raise_on_error=False)

    @contextmanager
    def backfill(self, job_name: str, partition_keys: Sequence[str], title: str) -> Iterator[JobBackfill]:
        """A backfill of `job_name` over `partition_keys`: run each key with `tags_for(key)` and report it with
        `ended`; the backfill is recorded on leaving (failed when the block raised)."""
        backfill = JobBackfill(str(uuid.uuid4())[:8], job_name, list(partition_keys), title)
        status = BulkActionStatus.FAILED
        try:
            yield backfill
            status = BulkActionStatus.COMPLETED_FAILED if backfill.failed else BulkActionStatus.COMPLETED_SUCCESS
        finally:
            self.instance.add_backfill(self._record(backfill, status))

    def _record(self, backfill: JobBackfill, status: BulkActionStatus) -> PartitionBackfill:
        return PartitionBackfill(
            backfill_id=backfill.backfill_id,
            status=status,
            from_failure=False,
            tags={},
            backfill_timestamp=backfill.started,
            title=backfill.title,
            partition_set_origin=RemotePartitionSetOrigin(
                repository_origin=self.repository.get_remote_origin(),
                partition_set_name=partition_set_name(backfill.job_name),
            ),
            partition_names=list(backfill.partition_keys),
            last_submitted_partition_name=backfill.submitted[-1] if backfill.submitted else None,
            reexecution_steps=None,
            failure_count=len(backfill.failed),
            backfill_end_timestamp=time.time(),
        )
