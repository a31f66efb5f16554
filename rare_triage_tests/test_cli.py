"""The command line: lazy loading, partition keys and argument checks of demo (the jobs are tested elsewhere; the
demo's progress and failures in test_cli_progress.py and test_cli_run_reporter.py, status in test_cli_status.py)."""

import datetime as dt
import subprocess
import sys

import dagster as dg
import pytest

from rare_triage.cli.demo import check_lines, failed_blocking_checks
from rare_triage.cli.demo_plan import MIN_TRAINING_DAYS, DemoArgumentError, check_days, demo_partitions

FIRST = dt.date(2024, 1, 1)


def test_demo_partitions_end_on_the_given_day_in_order() -> None:
    keys = demo_partitions(3, dt.date(2025, 3, 10), FIRST)
    assert keys == ["2025-03-08", "2025-03-09", "2025-03-10"]


@pytest.mark.parametrize(
    ("days", "end", "message"),
    [
        (0, dt.date(2025, 3, 10), "--days: must be at least 1, got 0"),
        (5, dt.date(2024, 1, 2), "--end/--days: partitions start on 2024-01-01, asked from 2023-12-29"),
    ],
)
def test_bad_partition_ranges_are_named(days: int, end: dt.date, message: str) -> None:
    with pytest.raises(DemoArgumentError, match=message):
        demo_partitions(days, end, FIRST)


def test_training_asks_for_enough_days() -> None:
    with pytest.raises(DemoArgumentError, match=f"--days: training needs at least {MIN_TRAINING_DAYS} days, got 7"):
        check_days(7, train=True)
    check_days(7, train=False)


def test_a_refused_demo_argument_exits_2_before_dagster_loads() -> None:
    probe = (
        "import sys; from rare_triage.cli import main; code = main(['demo', '--days', '7']); "
        "print(code, 'dagster' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "2 False"
    assert (
        result.stderr.strip() == f"--days: training needs at least {MIN_TRAINING_DAYS} days, got 7 (or pass --no-train)"
    )


def test_check_lines_say_which_check_failed_and_why() -> None:
    key = dg.AssetKey(["model_evaluation"])
    evaluations = [
        dg.AssetCheckEvaluation(asset_key=key, check_name="orphan_recall_gate", passed=True, description="0.93"),
        dg.AssetCheckEvaluation(asset_key=key, check_name="orphan_pr_auc_gate", passed=False, description="0.01"),
        dg.AssetCheckEvaluation(
            asset_key=key, check_name="share", passed=False, severity=dg.AssetCheckSeverity.WARN, description=None
        ),
    ]
    assert check_lines(evaluations, only_failed=True) == [
        "  FAILED model_evaluation orphan_pr_auc_gate: 0.01",
        "  warn   model_evaluation share",
    ]
    assert check_lines(evaluations, only_failed=False)[0] == "  passed model_evaluation orphan_recall_gate: 0.93"
    assert failed_blocking_checks(evaluations) == ["model_evaluation:orphan_pr_auc_gate"]  # not the warning


def test_help_lists_every_command_without_loading_dagster() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "rare_triage", "--help"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    for command in ("demo", "smoke", "status", "promote", "rollback"):
        assert command in shown
    probe = (
        "import sys, contextlib, io; from rare_triage.cli import main\n"
        "for command in ([], ['demo'], ['smoke'], ['status'], ['promote'], ['rollback']):\n"
        "    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "        main([*command, '--help'])\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'dagster', 'pandas', 'sklearn', 'mlflow'}))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    assert loaded.stdout.strip() == "[]"


def test_a_bad_command_line_names_the_argument() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rare_triage", "rollback", "--env", "staging", "--version", "v1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "--env" in result.stderr and "staging" in result.stderr
