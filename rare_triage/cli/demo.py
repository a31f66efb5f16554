"""`demo`: the main job end to end on the embedded defaults.

Materializes the reference tables, `days` daily partitions (raw -> anonymized -> features), then trains, evaluates,
exports and publishes the model (train_and_publish_job: MLflow in sqlite, the local bucket by default), so every run,
materialization and check result shows up in the Dagster UI afterwards (`make ui`). The runs are runs of the code
location (rare_triage.cli.location_runs: on the job pages, re-executable as the same job version), the partitions one
backfill of daily_ingest_job.

While it runs it shows progress on stdout (rare_triage.cli.progress: a bar on a terminal, a line per partition
otherwise) from the runs' events (rare_triage.cli.run_reporter): partitions done, the time each took and the time
left, then the training steps and the candidate search with its estimates. A failed run ends the demo with exit
code 1: its check summary on stdout (every check of the training run: the gates), then on stderr the error of each
step that failed otherwise, with its stack trace, once, and one line naming the run and its failed blocking checks.
"""

import datetime as dt
import logging
import os
import sys
import time
import uuid
from collections.abc import Mapping, Sequence

import dagster as dg
from dagster._core.execution.execution_result import ExecutionResult

from rare_triage.cli.demo_plan import check_days, demo_partitions
from rare_triage.cli.instance import open_instance
from rare_triage.cli.location_runs import JobBackfill, LocationRuns
from rare_triage.cli.progress import Console, Countdown, bar, format_seconds, warnings_above_status
from rare_triage.cli.run_reporter import QUIET_CONSOLE, RunReporter
from rare_triage.cli.status import CommandError, status
from rare_triage.defs.shared import keys
from rare_triage.defs.shared.resources import build_mlflow_resource
from rare_triage.defs.training.config import TriageModelConfig
from rare_triage.lib.paths import rare_triage_home

EXIT_RUN_FAILED = 1
MLFLOW_STORE_LOGGER = "mlflow.store.db.utils"


def check_lines(evaluations: Sequence[dg.AssetCheckEvaluation], only_failed: bool) -> list[str]:
    """One line per asset check evaluation: passed, warn (a failed warning check) or FAILED, the check, and its
    description when it has one."""
    lines = []
    for evaluation in evaluations:
        if only_failed and evaluation.passed:
            continue
        description = f": {evaluation.description}" if evaluation.description else ""
        if evaluation.passed:
            state = "passed"
        else:
            state = "warn" if evaluation.severity == dg.AssetCheckSeverity.WARN else "FAILED"
        lines.append(f"  {state:6s} {evaluation.asset_key.to_user_string()} {evaluation.check_name}{description}")
    return lines


def failed_blocking_checks(evaluations: Sequence[dg.AssetCheckEvaluation]) -> list[str]:
    """`asset:check` of every failed check of severity ERROR (the blocking ones: a gate, a schema)."""
    return [
        f"{e.asset_key.to_user_string()}:{e.check_name}"
        for e in evaluations
        if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR
    ]


class DemoRunner:
    """Runs the jobs of the demo one after another as runs of the code location, showing their progress on
    `console`."""

    def __init__(self, runs: LocationRuns, console: Console) -> None:
        self.runs = runs
        self.instance = runs.instance
        self.console = console

    def execute(
        self,
        job_name: str,
        reporter: RunReporter,
        tags: Mapping[str, str] | None = None,
        every_check: bool = False,
    ) -> ExecutionResult | None:
        """One run; its result, or None when it failed (its checks and errors printed)."""
        run_id = str(uuid.uuid4())
        self.instance.add_event_listener(run_id, reporter)
        result = self.runs.run(job_name, QUIET_CONSOLE, tags, run_id)
        evaluations = result.get_asset_check_evaluations()
        lines = check_lines(evaluations, only_failed=not every_check)
        if lines:
            self.console.line(f"{reporter.label} checks:\n" + "\n".join(lines))
        if result.success:
            return result
        self.console.end_status()
        for failure in reporter.failures:
            print(failure, file=sys.stderr, flush=True)
        failed = failed_blocking_checks(evaluations)
        because = f": blocking checks failed: {', '.join(failed)}" if failed else ""
        print(f"{reporter.label} failed (run {result.run_id}){because}", file=sys.stderr, flush=True)
        return None

    def reference(self) -> bool:
        started = time.monotonic()
        self.console.status(f"{keys.REFERENCE_JOB}: running")
        result = self.execute(keys.REFERENCE_JOB, RunReporter(self.console, keys.REFERENCE_JOB))
        if result is None:
            return False
        took = format_seconds(time.monotonic() - started)
        self.console.status(f"{keys.REFERENCE_JOB}: ok in {took} (run {result.run_id})")
        self.console.end_status()
        return True

    def partitions(self, partition_keys: Sequence[str]) -> bool:
        title = f"demo: {partition_keys[0]}..{partition_keys[-1]}"
        with self.runs.backfill(keys.DAILY_INGEST_JOB, partition_keys, title) as backfill:
            done = self._backfill(backfill)
        self.console.line(f"{keys.DAILY_INGEST_JOB}: backfill {backfill.backfill_id} recorded ({title})")
        return done

    def _backfill(self, backfill: JobBackfill) -> bool:
        partition_keys = backfill.partition_keys
        countdown = Countdown(len(partition_keys), time.monotonic())
        first = f"{keys.DAILY_INGEST_JOB}: {len(partition_keys)} partitions, {partition_keys[0]} first"
        self.console.status(first if not self.console.interactive else f"{bar(0, countdown.total)} {first}")
        for key in partition_keys:
            label = f"{keys.DAILY_INGEST_JOB}[{key}]"
            result = self.execute(keys.DAILY_INGEST_JOB, RunReporter(self.console, label), backfill.tags_for(key))
            backfill.ended(key, result is not None)
            if result is None:
                return False
            took = format_seconds(countdown.advance(time.monotonic()))
            progress = countdown.describe("partitions")
            if self.console.interactive:
                self.console.status(f"{bar(countdown.done, countdown.total)} {progress}; {key} ok in {took}")
            else:
                self.console.status(f"{label}: ok in {took} (run {result.run_id}); {progress}")
        self.console.end_status()
        return True

    def check_steps(self) -> set[str]:
        """The step keys of the code location's asset checks (`<asset>_<check>`): the check summary shows them."""
        graph = self.runs.repository.asset_graph
        return {f"{key.asset_key.to_python_identifier()}_{key.name}" for key in graph.asset_check_keys}

    def train(self) -> bool:
        job = keys.TRAIN_AND_PUBLISH_JOB
        started = time.monotonic()
        self.console.line(f"{job}: training, evaluation, export and publication, step by step")
        candidates = TriageModelConfig().candidates
        reporter = RunReporter(self.console, job, steps=True, quiet_steps=self.check_steps(), candidates=candidates)
        result = self.execute(job, reporter, every_check=True)
        if result is None:
            return False
        self.console.line(f"{job}: ok in {format_seconds(time.monotonic() - started)} (run {result.run_id})")
        return True


def run_demo(
    days: int, end: dt.date, train: bool = True, console: Console | None = None, started: float | None = None
) -> int:
    """Materialize the reference tables and `days` partitions of raw -> anonymized -> features, then (`train`)
    run train_and_publish_job on them; the exit code (0, or 1 when a run failed). `started`: when the command
    started (time.monotonic()), to say how long loading took."""
    check_days(days, train)
    partition_keys = demo_partitions(days, end, dt.date.fromisoformat(keys.PARTITIONS_START))
    out = console or Console(sys.stdout)
    # MLflow announces the creation of its sqlite tables on its own handler, across the progress lines
    logging.getLogger(MLFLOW_STORE_LOGGER).setLevel(logging.WARNING)
    with open_instance(os.environ) as instance, warnings_above_status(out), LocationRuns(instance) as runs:
        runner = DemoRunner(runs, out)
        if started is not None:
            out.line(f"loaded in {format_seconds(time.monotonic() - started)}")
        if not runner.reference() or not runner.partitions(partition_keys):
            return EXIT_RUN_FAILED
        out.line(
            f"Materialized {len(partition_keys)} partitions ({partition_keys[0]} .. {partition_keys[-1]}) "
            f"in {rare_triage_home()}."
        )
        if train and not runner.train():
            return EXIT_RUN_FAILED
    if train:
        try:
            out.line(status(os.environ))
        except CommandError as exc:
            print(exc, file=sys.stderr)
            return EXIT_RUN_FAILED
    out.line("Open the Dagster UI on this result: make ui  ->  http://127.0.0.1:3000/asset-groups")
    if train:
        store = build_mlflow_resource(os.environ).resolved_tracking_uri()
        out.line(
            "Open the MLflow UI on its runs and registered models: "
            f".venv/bin/mlflow ui --backend-store-uri {store} -h 127.0.0.1 -p 5000"
        )
    return 0
