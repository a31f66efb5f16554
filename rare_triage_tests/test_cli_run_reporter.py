"""The demo's runs as the user sees them, on small jobs of their own: a failed gate prints its check summary once and
no stack trace, a failing step prints its stack trace once (Dagster's console logger stays quiet), warnings and the
candidate search show while the run runs, and plain lines replace the bar when stdout is not a terminal."""

import io
from collections.abc import Iterator

import dagster as dg
import pytest

from rare_triage.cli.demo import DemoRunner
from rare_triage.cli.location_runs import LocationRuns
from rare_triage.cli.progress import Console
from rare_triage.cli.run_reporter import MAX_INFO, RunReporter


@dg.asset
def triage_model(context: dg.AssetExecutionContext) -> int:
    context.log.info("windows {'train': 7}")
    context.log.info("cv logistic_regression+class_weight: {'orphan_pr_auc': 0.8}")
    context.log.info("cv xgboost+smote: {'orphan_pr_auc': 0.9}")
    context.log.warning("only 12 orphan cases in validation")
    context.log.info("ablation all: " + "{'n_features': 128} " * 20)
    return 1


@dg.asset_check(asset=triage_model, blocking=True)
def recall_gate(triage_model: int) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=triage_model > 1, description="orphan recall 0.70 < 0.90")


@dg.asset(deps=[triage_model])
def published_model() -> None:
    raise AssertionError("a model that failed its gate is not published")


@dg.asset
def broken() -> None:
    raise RuntimeError("the warehouse is locked")


# the demo runs jobs of a code location: this module is the one of these tests
DEFS = dg.Definitions(
    assets=[triage_model, published_model, broken],
    asset_checks=[recall_gate],
    jobs=[
        dg.define_asset_job("gated_job", selection=[triage_model, published_model]),
        dg.define_asset_job("broken_job", selection=[broken]),
        dg.define_asset_job("model_job", selection=dg.AssetSelection.assets(triage_model).without_checks()),
    ],
)
CANDIDATES = ["logistic_regression+class_weight", "xgboost+smote", "xgboost+class_weight+two_stage"]


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.ephemeral() as ephemeral:
        yield ephemeral


@pytest.fixture
def runs(instance: dg.DagsterInstance) -> Iterator[LocationRuns]:
    with LocationRuns(instance, module_name=__name__, location_name="reporter_tests") as location:
        yield location


def test_a_failed_gate_prints_its_summary_once_without_a_stack_trace(
    runs: LocationRuns, capfd: pytest.CaptureFixture[str]
) -> None:
    stdout = io.StringIO()
    console = Console(stdout, interactive=False)
    runner = DemoRunner(runs, console)
    assert runner.check_steps() == {"triage_model_recall_gate"}
    reporter = RunReporter(console, "gated_job", steps=True, quiet_steps=runner.check_steps(), candidates=CANDIDATES)

    result = runner.execute("gated_job", reporter, every_check=True)

    assert result is None
    shown = stdout.getvalue()
    err = capfd.readouterr().err
    assert shown.count("FAILED triage_model recall_gate: orphan recall 0.70 < 0.90") == 1
    assert "Traceback" not in err and 'File "' not in err and "DagsterAssetCheckFailedError" not in err
    assert " - dagster - " not in err  # Dagster's console logger printed nothing
    assert err.strip().splitlines()[-1].endswith("): blocking checks failed: triage_model:recall_gate")
    assert "gated_job failed (run " in err
    # while it ran: the steps, the candidate search with its estimates, the asset's warning and info
    assert "  triage_model: cross-validating 3 candidates" in shown
    assert "  triage_model: candidate 1/3 logistic_regression+class_weight: " in shown
    assert "next xgboost+smote (about " in shown
    assert "  triage_model: candidate 2/3 xgboost+smote: " in shown
    assert "  triage_model: warning: only 12 orphan cases in validation" in shown
    assert "  triage_model: windows {'train': 7}" in shown
    assert "cv logistic_regression" not in shown  # the raw line is replaced by the candidate's progress
    assert shown.startswith("  triage_model: started\n  triage_model: cross-validating 3 candidates\n")
    assert "  triage_model: ok in " in shown
    assert "triage_model_recall_gate: " not in shown  # no line for a check's step: the check summary shows it
    ablation = next(line for line in shown.splitlines() if "ablation all" in line)
    assert len(ablation) == MAX_INFO and ablation.endswith("…")  # a long INFO message is cut
    assert "published_model: error: Dependencies for step published_model failed" in shown  # not run
    assert len(err.strip().splitlines()) == 1  # that line only: no step failure, no run failure repeated


def test_a_failing_step_prints_its_stack_trace_once(runs: LocationRuns, capfd: pytest.CaptureFixture[str]) -> None:
    stdout = io.StringIO()
    console = Console(stdout, interactive=False)

    result = DemoRunner(runs, console).execute("broken_job", RunReporter(console, "broken_job"))

    assert result is None
    err = capfd.readouterr().err
    assert err.count("RuntimeError: the warehouse is locked") == 1
    assert err.count('raise RuntimeError("the warehouse is locked")') == 1  # the frame, once
    assert err.startswith("step broken failed:\n")
    assert " - dagster - " not in err
    assert err.strip().splitlines()[-1].startswith("broken_job failed (run ")


def test_a_successful_run_returns_its_result_and_prints_only_failed_checks(
    runs: LocationRuns, capfd: pytest.CaptureFixture[str]
) -> None:
    stdout = io.StringIO()
    console = Console(stdout, interactive=False)

    result = DemoRunner(runs, console).execute("model_job", RunReporter(console, "model_job"))

    assert result is not None and result.success
    assert stdout.getvalue() == "  triage_model: warning: only 12 orphan cases in validation\n"  # no steps, no info
    assert capfd.readouterr().err == ""
