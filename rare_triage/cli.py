"""Command line of the code location: `python -m rare_triage.cli demo --days 35` (the main job end to end).

Materializes the reference tables, `days` daily partitions (raw -> anonymized -> features), then trains, evaluates,
exports and publishes the model (train_and_publish_job: MLflow in sqlite, the local bucket by default). Runs the
jobs against the Dagster instance in DAGSTER_HOME, so every run, materialization and check result shows up in the
Dagster UI afterwards (`make ui`).
"""

import argparse
import datetime as dt
import os
import shutil
import sys
from collections.abc import Sequence

import dagster as dg

from rare_triage import constants as c
from rare_triage.definitions import build_definitions
from rare_triage.deployment.cli import status
from rare_triage.lib.paths import PROJECT_ROOT, rare_triage_home

TRAIN_JOB = "train_and_publish_job"
MIN_TRAINING_DAYS = 21  # train 7+, validation 7, test 7 days (TrainingSetConfig defaults)
LOG_LEVEL = "INFO"  # Dagster's console logger prints every DEBUG event otherwise


def demo_partitions(days: int, end: dt.date) -> list[str]:
    """The `days` daily partition keys ending on `end` (inclusive)."""
    if days < 1:
        raise ValueError(f"--days: must be at least 1, got {days}")
    first = dt.date.fromisoformat(c.PARTITIONS_START)
    keys = [(end - dt.timedelta(days=n)).isoformat() for n in range(days - 1, -1, -1)]
    if dt.date.fromisoformat(keys[0]) < first:
        raise ValueError(f"--end/--days: partitions start on {c.PARTITIONS_START}, asked from {keys[0]}")
    return keys


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
    if "DAGSTER_HOME" not in os.environ:
        os.environ["DAGSTER_HOME"] = str(rare_triage_home() / "dagster_home")
    os.makedirs(os.environ["DAGSTER_HOME"], exist_ok=True)
    instance_config = os.path.join(os.environ["DAGSTER_HOME"], "dagster.yaml")
    if not os.path.exists(instance_config):
        shutil.copyfile(PROJECT_ROOT / "dagster.yaml", instance_config)
    instance = dg.DagsterInstance.get()
    partitions = demo_partitions(days, end)
    defs = build_definitions()
    _execute(defs, "reference_job", instance)
    for key in partitions:
        _execute(defs, "daily_ingest_job", instance, key)
    print(f"\nMaterialized {len(partitions)} partitions ({partitions[0]} .. {partitions[-1]}) in {rare_triage_home()}.")
    if train:
        _execute(defs, TRAIN_JOB, instance, every_check=True)
        print(status(os.environ))
    print("Open the Dagster UI on this result: make ui  ->  http://127.0.0.1:3000/asset-groups")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rare_triage", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the main job end to end on the embedded defaults")
    demo.add_argument("--days", type=int, default=35, help="number of daily partitions (default 35)")
    demo.add_argument("--no-train", dest="train", action="store_false", help="stop after the features")
    demo.add_argument("--end", type=dt.date.fromisoformat, default=dt.date.today() - dt.timedelta(days=1))
    args = parser.parse_args(argv)
    if args.command == "demo":
        run_demo(args.days, args.end, args.train)
    return 0


if __name__ == "__main__":
    sys.exit(main())
