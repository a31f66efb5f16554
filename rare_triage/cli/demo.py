"""`demo`: the main job end to end on the embedded defaults.

Materializes the reference tables, `days` daily partitions (raw -> anonymized -> features), then trains, evaluates,
exports and publishes the model (train_and_publish_job: MLflow in sqlite, the local bucket by default), so every run,
materialization and check result shows up in the Dagster UI afterwards (`make ui`).
"""

import datetime as dt
import os
from collections.abc import Sequence

import dagster as dg

from rare_triage.cli.instance import open_instance
from rare_triage.cli.models import status
from rare_triage.definitions import build_definitions
from rare_triage.defs.shared import keys
from rare_triage.defs.shared.resources import build_mlflow_resource
from rare_triage.lib.paths import rare_triage_home

MIN_TRAINING_DAYS = 21  # train 7+, validation 7, test 7 days (TrainingSetConfig defaults)
LOG_LEVEL = "INFO"  # Dagster's console logger prints every DEBUG event otherwise


def demo_partitions(days: int, end: dt.date) -> list[str]:
    """The `days` daily partition keys ending on `end` (inclusive)."""
    if days < 1:
        raise ValueError(f"--days: must be at least 1, got {days}")
    first = dt.date.fromisoformat(keys.PARTITIONS_START)
    partition_keys = [(end - dt.timedelta(days=n)).isoformat() for n in range(days - 1, -1, -1)]
    if dt.date.fromisoformat(partition_keys[0]) < first:
        raise ValueError(f"--end/--days: partitions start on {keys.PARTITIONS_START}, asked from {partition_keys[0]}")
    return partition_keys


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


def _execute(
    defs: dg.Definitions,
    job_name: str,
    instance: dg.DagsterInstance,
    partition_key: str | None = None,
    every_check: bool = False,
) -> None:
    job = defs.resolve_job_def(job_name)
    run_config = {"loggers": {"console": {"config": {"log_level": LOG_LEVEL}}}}
    result = job.execute_in_process(
        run_config=run_config, instance=instance, partition_key=partition_key, raise_on_error=False
    )
    label = f"{job_name}[{partition_key}]" if partition_key else job_name
    lines = check_lines(result.get_asset_check_evaluations(), only_failed=not every_check)
    if lines:
        print(f"{label} checks:\n" + "\n".join(lines), flush=True)
    if not result.success:
        raise SystemExit(f"{label} failed (run {result.run_id}); open the Dagster UI to see why")
    print(f"{label}: ok (run {result.run_id})", flush=True)


def run_demo(days: int, end: dt.date, train: bool = True) -> None:
    """Materialize the reference tables and `days` partitions of raw -> anonymized -> features, then (`train`)
    run train_and_publish_job on them."""
    if train and days < MIN_TRAINING_DAYS:
        raise ValueError(f"--days: training needs at least {MIN_TRAINING_DAYS} days, got {days} (or pass --no-train)")
    instance = open_instance(os.environ)
    partitions = demo_partitions(days, end)
    defs = build_definitions()
    _execute(defs, keys.REFERENCE_JOB, instance)
    for key in partitions:
        _execute(defs, keys.DAILY_INGEST_JOB, instance, key)
    print(f"\nMaterialized {len(partitions)} partitions ({partitions[0]} .. {partitions[-1]}) in {rare_triage_home()}.")
    if train:
        _execute(defs, keys.TRAIN_AND_PUBLISH_JOB, instance, every_check=True)
        print(status(os.environ))
    print("Open the Dagster UI on this result: make ui  ->  http://127.0.0.1:3000/asset-groups")
    if train:
        store = build_mlflow_resource(os.environ).resolved_tracking_uri()
        print(
            "Open the MLflow UI on its runs and registered models: "
            f".venv/bin/mlflow ui --backend-store-uri {store} -h 127.0.0.1 -p 5000"
        )
