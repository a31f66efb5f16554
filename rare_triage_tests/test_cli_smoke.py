"""`python -m rare_triage smoke`: the summary table (escaping, failed first, truncation, GitHub's step summary), the
smoke's plan against the code location, and real runs: a day without encounters fails the blocking raw_schema check
(exit 1), a slice too short to train fails a run (exit 2), and the smoke end to end (exit 0), after which the real
recall gate fails the gate phase on the same slice (exit 1)."""

import datetime as dt
import json
import math
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from rare_triage.cli import SMOKE_DAYS, SMOKE_END, build_parser, main
from rare_triage.cli import smoke as smoke_cli
from rare_triage.cli.check_summary import (
    FAILED,
    MAX_CELL,
    PASSED,
    WARN,
    CheckRow,
    SmokeReport,
    append_summary,
    check_table,
    compact_lines,
    escape_cell,
    exit_code,
    format_value,
    metadata_text,
    render_markdown,
)
from rare_triage.definitions import build_definitions
from rare_triage.defs.shared import keys
from rare_triage_tests.helpers.code_location import code_location_in

REPOSITORY = Path(__file__).resolve().parents[1]
SECRET = "Maria-Lopez-Garcia-1957"  # a source value that must never reach a summary


def row(asset: str, check: str, result: str = PASSED, *, blocking: bool = True, **fields: Any) -> CheckRow:
    return CheckRow(asset=asset, check=check, result=result, blocking=blocking, partition=None, **fields)


def table_rows(markdown: str) -> list[list[str]]:
    """The cells of each data row of the check table in `markdown` (split on unescaped pipes)."""
    lines = [line for line in markdown.splitlines() if line.startswith("| ")]
    assert lines and lines[0].startswith("| asset | check |"), markdown
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines[1:]]


# --- the table writer -------------------------------------------------------------------------------------------


def test_cells_are_escaped_for_a_markdown_table() -> None:
    assert escape_cell("a|b") == "a\\|b"
    assert escape_cell("run `rm`") == "run \\`rm\\`"
    assert escape_cell("line one\nline two\r\nthree") == "line one line two three"
    assert escape_cell("<details>") == "&lt;details>"
    assert escape_cell("C:\\dir|x") == "C:\\\\dir\\|x"  # a backslash cannot escape the cell's pipe


def test_long_cells_are_cut_before_escaping() -> None:
    text = "a" * (MAX_CELL - 1) + "|" + "b" * 50
    cell = escape_cell(text)
    assert cell == "a" * (MAX_CELL - 1) + "…"
    assert len(escape_cell("x" * 1000, limit=20)) == 20


def test_metadata_values_are_numbers_short_codes_or_sizes_never_content() -> None:
    frame = pd.DataFrame({"name": [SECRET]})
    assert format_value(5) == "5"
    assert format_value(0.123456789) == "0.1235"
    assert format_value(math.nan) == "nan"
    assert format_value(True) == "true"
    assert format_value(None) == "null"
    assert format_value("v1-0123456789ab") == "v1-0123456789ab"
    assert format_value("x" * 100) == "x" * 39 + "…"
    assert format_value([SECRET, SECRET]) == "2 items"
    assert format_value({"encounters": "no encounter in this partition"}) == "1 key (encounters)"
    assert format_value({SECRET + " free text": 1}) == "1 key"  # keys that are not short codes stay hidden
    assert format_value({f"t{n}": n for n in range(6)}) == "6 keys"
    assert format_value(frame) == "(DataFrame)"
    assert SECRET not in metadata_text({"rows": frame, "findings": [SECRET], "k": 5})


def test_metadata_shows_scalars_first_and_says_how_many_were_left() -> None:
    text = metadata_text({"counts": {"a": 1}, "k": 5, "required_k": 5, "a": 1.5, "b": "x", "c": 2})
    assert text == "k=5, required_k=5, a=1.5, b=x, +2 more"


def test_the_table_lists_failed_blocking_checks_first_then_failed_warn_passed() -> None:
    rows = [
        replace(row("raw_ehr_extract", "raw_schema", metadata={"problems": {}}), partition="2025-03-01"),
        replace(row("quarantined_records", "quarantine_rate", WARN, blocking=False), partition="2025-03-01"),
        row("published_model", "dev_serves_published_version", FAILED, blocking=False),
        row(
            "model_evaluation",
            "orphan_recall_gate",
            FAILED,
            metadata={"orphan_recall": 0.41, "min_recall": 0.9},
            description="test orphan recall 0.4100 (required >= 0.9)\nsee | MLflow",
            smoke_thresholds=True,
        ),
        row("onnx_model", "onnx_parity", description="never shown: passed"),
    ]
    cells = table_rows(check_table(rows))
    assert [(c[0], c[1], c[3], c[4]) for c in cells] == [
        ("model_evaluation", "orphan_recall_gate", "**FAILED**", "yes"),
        ("published_model", "dev_serves_published_version", "**FAILED**", "no"),
        ("quarantined_records", "quarantine_rate", "warn", "no"),
        ("raw_ehr_extract", "raw_schema", "passed", "yes"),
        ("onnx_model", "onnx_parity", "passed", "yes"),
    ]
    first = cells[0]
    assert first[5] == "smoke"
    assert first[6] == "test orphan recall 0.4100 (required >= 0.9) see \\| MLflow; orphan_recall=0.41, min_recall=0.9"
    assert cells[3][2] == "2025-03-01" and cells[3][6] == "problems=0 keys"
    assert cells[4][6] == ""  # a passed check's description is not repeated


def test_the_console_table_groups_partitions_and_names_the_days_that_did_not_pass() -> None:
    rows = [replace(row("raw_ehr_extract", "raw_schema"), partition=f"2025-03-0{day}") for day in (1, 2, 3)]
    rows += [replace(row("quarantined_records", "quarantine_rate", WARN, blocking=False), partition="2025-03-02")]
    rows += [row("model_evaluation", "orphan_recall_gate", FAILED, smoke_thresholds=True)]
    lines = compact_lines(rows)
    assert [line.split()[:2] for line in lines] == [
        ["FAILED", "model_evaluation:orphan_recall_gate"],
        ["warn", "quarantined_records:quarantine_rate"],
        ["ok", "raw_ehr_extract:raw_schema"],
    ]
    assert lines[0].endswith("1 failed (smoke thresholds)")
    assert lines[1].endswith("1 warn [2025-03-02]")
    assert lines[2].endswith("3 passed")


def test_exit_code_is_1_for_a_failed_blocking_check_and_2_for_a_run_error() -> None:
    warn_only = [row("a", "x", WARN, blocking=False), row("a", "y", FAILED, blocking=False), row("a", "z")]
    assert exit_code(warn_only, []) == 0
    assert exit_code([*warn_only, row("b", "gate", FAILED)], []) == 1
    assert exit_code([row("b", "gate", FAILED)], ["train_and_publish_job: step training_set: ValueError: ..."]) == 2


def test_the_summary_is_appended_to_github_step_summary(tmp_path: Path) -> None:
    summary = tmp_path / "step_summary.md"
    summary.write_text("## lint\n\nok\n", encoding="utf-8")
    append_summary(summary, "## smoke\n\nfirst")
    append_summary(summary, "## smoke\n\nsecond\n")
    assert summary.read_text(encoding="utf-8") == "## lint\n\nok\n## smoke\n\nfirst\n\n## smoke\n\nsecond\n\n"


def test_the_report_states_verdict_errors_smoke_gates_exclusions_materializations_and_time() -> None:
    report = SmokeReport(
        scope="1 daily partition",
        rows=[row("model_evaluation", "orphan_recall_gate", FAILED, smoke_thresholds=True), row("a", "b")],
        materialized={"raw_ehr_extract": 21, "published_model": 1},
        phases=[("daily ingest", 21, 80.0), ("monitoring", 0, 0.0)],
        total_seconds=125.0,
        run_errors=["train_and_publish_job: step onnx_model: RuntimeError: export | failed"],
        smoke_gates={"model_evaluation:orphan_recall_gate": "min_recall=0.5 (default 0.9)"},
        smoke_gates_reason="too few orphan cases",
        excluded={"drift_report": "no prediction logs"},
    )
    markdown = render_markdown(report)
    assert report.exit_code == 2
    assert markdown.startswith("## rare-triage smoke materialization: FAILED: a run failed\n")
    assert "Exit code 2, total time 125 s (2.1 min)" in markdown
    assert "2 check evaluations: 1 passed, 1 failed, 0 warn; 1 blocking check(s) failed." in markdown
    assert "- train_and_publish_job: step onnx_model: RuntimeError: export \\| failed" in markdown
    assert "**Gates at smoke thresholds** (`smoke` in the table): too few orphan cases" in markdown
    assert "- model_evaluation:orphan_recall_gate: min_recall=0.5 (default 0.9)" in markdown
    assert "- raw_ehr_extract: 21\n- published_model: 1" in markdown
    assert "- drift_report: no prediction logs" in markdown
    assert "- daily ingest: 21 run(s), 80.0 s\n- monitoring: 0 run(s), 0.0 s" in markdown


# --- the smoke's plan ---------------------------------------------------------------------------------------------


def test_the_slice_is_fixed_and_its_range_checked() -> None:
    options = smoke_cli.SmokeOptions()
    days = options.partitions()
    assert len(days) == SMOKE_DAYS and days[-1] == SMOKE_END.isoformat()
    assert days == sorted(days)
    with pytest.raises(ValueError, match="--days: must be at least 1"):
        smoke_cli.SmokeOptions(days=0).partitions()
    with pytest.raises(ValueError, match="partitions start on"):
        smoke_cli.SmokeOptions(end=dt.date(2024, 1, 5)).partitions()


def test_the_smoke_environment_keeps_no_state_variable_of_the_caller(tmp_path: Path) -> None:
    caller = {
        "PATH": "/usr/bin",
        "RARE_TRIAGE_BUCKET_URI": "s3://prod-bucket/models",
        "RARE_TRIAGE_EHR_SOURCE": "landing",
        "RARE_TRIAGE_DEPLOYMENT": "prod",
        "MLFLOW_TRACKING_URI": "http://mlflow:5000",
        "DAGSTER_HOME": "/srv/dagster",
        "GITHUB_STEP_SUMMARY": "/tmp/summary",
    }
    environment = smoke_cli.smoke_environment(tmp_path, smoke_cli.SmokeOptions(encounters_per_day=50), caller)
    assert environment == {
        "PATH": "/usr/bin",
        "GITHUB_STEP_SUMMARY": "/tmp/summary",
        "RARE_TRIAGE_HOME": str(tmp_path),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "RARE_TRIAGE_EHR_SOURCE": "synthetic",
        "RARE_TRIAGE_ENCOUNTERS_PER_DAY": "50",
        "RARE_TRIAGE_POPULATION_SIZE": str(smoke_cli.SmokeOptions().population),
    }


@pytest.fixture(scope="module")
def defs() -> dg.Definitions:
    return build_definitions()


def test_the_phases_cover_every_asset_of_the_code_location_or_say_why_not(defs: dg.Definitions) -> None:
    graph = defs.resolve_asset_graph()
    selected: set[dg.AssetKey] = set()
    for phase in smoke_cli.smoke_phases(smoke_cli.SmokeOptions()):
        job = defs.resolve_job_def(phase.job) if phase.job else None
        selected |= set(job.asset_layer.selected_asset_keys) if job else set(phase.selection)
    materializable = {key for key in graph.get_all_asset_keys() if graph.get(key).is_materializable}
    assert materializable - selected == set(smoke_cli.NOT_IN_SMOKE)
    assert not selected & set(smoke_cli.NOT_IN_SMOKE)


def test_the_smoke_run_configuration_is_valid_for_its_jobs(defs: dg.Definitions) -> None:
    for real_gates in (False, True):
        for phase in smoke_cli.smoke_phases(smoke_cli.SmokeOptions(real_gates=real_gates)):
            if phase.job:
                dg.validate_run_config(defs.resolve_job_def(phase.job), dict(phase.run_config))
    gated = smoke_cli.train_run_config(smoke_cli.SmokeOptions())["ops"]
    graph = defs.resolve_asset_graph()
    for gate in smoke_cli.SMOKE_GATES:
        assert graph.get_check_spec(gate.check).blocking
        assert gated[gate.op_name] == {"config": dict(gate.config)}
        assert gate.check in keys.TRAINING_GATES
    assert not any(
        name.endswith("_gate") for name in smoke_cli.train_run_config(smoke_cli.SmokeOptions(real_gates=True))["ops"]
    )


def test_evaluations_become_rows_with_plain_metadata_and_their_blocking_from_the_code_location(
    defs: dg.Definitions,
) -> None:
    graph = defs.resolve_asset_graph()
    gate = dg.AssetCheckEvaluation(
        asset_key=keys.MODEL_EVALUATION,
        check_name=keys.ORPHAN_RECALL_GATE,
        passed=False,
        metadata={
            "orphan_recall": dg.MetadataValue.float(0.41),
            "report": dg.MetadataValue.md(f"| {SECRET} |"),
            "rows": dg.MetadataValue.json([SECRET]),
        },
        description="test orphan recall 0.4100 (required >= 0.9)",
    )
    rate = dg.AssetCheckEvaluation(
        asset_key=keys.QUARANTINED_RECORDS,
        check_name="quarantine_rate",
        passed=False,
        severity=dg.AssetCheckSeverity.WARN,
        partition="2025-03-01",
    )
    smoke_checks = {dg.AssetCheckKey(keys.MODEL_EVALUATION, keys.ORPHAN_RECALL_GATE)}
    gate_row, rate_row = (smoke_cli.check_row(e, graph, smoke_checks) for e in (gate, rate))
    assert (gate_row.result, gate_row.blocking, gate_row.smoke_thresholds) == (FAILED, True, True)
    assert (rate_row.result, rate_row.blocking, rate_row.partition) == (WARN, False, "2025-03-01")
    assert gate_row.metadata["orphan_recall"] == 0.41 and gate_row.metadata["rows"] == [SECRET]
    markdown = check_table([gate_row, rate_row])
    assert SECRET not in markdown
    assert "report=(MarkdownMetadataValue), rows=1 item" in markdown


def test_error_lines_name_the_error_once_and_stay_short() -> None:
    assert smoke_cli.error_line("ValueError", "ValueError: windows: no day left\nTraceback ...") == (
        "ValueError: windows: no day left"
    )
    assert smoke_cli.error_line("KeyError", "'table'") == "KeyError: 'table'"
    assert len(smoke_cli.error_line("RuntimeError", "x" * 1000)) == smoke_cli.MAX_ERROR


# --- the command line ---------------------------------------------------------------------------------------------


def test_smoke_arguments_load_nothing_heavy() -> None:
    probe = (
        "import sys; from rare_triage.cli import build_parser; "
        "build_parser().parse_args(['smoke', '--days', '3', '--real-gates', '--keep']); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'dagster', 'pandas', 'sklearn', 'mlflow'}))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    assert loaded.stdout.strip() == "[]"
    args = build_parser().parse_args(["smoke"])
    assert (args.days, args.end, args.real_gates, args.keep, args.home) == (SMOKE_DAYS, SMOKE_END, False, False, None)


def test_a_home_that_is_not_empty_is_refused_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "lake").mkdir()
    assert main(["smoke", "--home", str(tmp_path)], environ={}) == 2
    assert "is not empty (the smoke needs a fresh instance)" in capsys.readouterr().err
    assert [path.name for path in tmp_path.iterdir()] == ["lake"]


def _smoke(tmp_path: Path, *arguments: str) -> tuple[subprocess.CompletedProcess[str], str, str]:
    """The real command in a subprocess; its result, the --summary file and the $GITHUB_STEP_SUMMARY file."""
    summary, step_summary = tmp_path / "summary.md", tmp_path / "step_summary.md"
    step_summary.write_text("## earlier step\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "rare_triage", "smoke", "--summary", str(summary), *arguments],
        cwd=REPOSITORY,
        env={**os.environ, "GITHUB_STEP_SUMMARY": str(step_summary)},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    markdown = summary.read_text(encoding="utf-8") if summary.exists() else ""
    step = step_summary.read_text(encoding="utf-8")
    assert step == "## earlier step\n" + markdown + "\n", "the step summary is appended to, not overwritten"
    return result, markdown, step


def _state_folder(stdout: str) -> Path:
    match = re.search(r"; state in (\S+)", stdout)
    assert match, stdout
    return Path(match.group(1))


@pytest.mark.slow
def test_a_day_without_encounters_fails_the_blocking_raw_schema_check_with_exit_1(tmp_path: Path) -> None:
    result, markdown, _ = _smoke(tmp_path, "--days", "1", "--encounters-per-day", "0")
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert markdown.startswith("## rare-triage smoke materialization: FAILED: a blocking check failed")
    first = table_rows(markdown)[0]
    assert first[:6] == ["raw_ehr_extract", "raw_schema", SMOKE_END.isoformat(), "**FAILED**", "yes", ""]
    assert first[6] == "problems=1 key (encounters)"
    assert "**Run errors**" not in markdown
    assert re.search(r"FAILED raw_ehr_extract:raw_schema +blocking +1 failed \[2025-03-31\]", result.stdout)
    assert "smoke: exit 1" in result.stdout
    assert not _state_folder(result.stdout).exists(), "the temporary home is removed without --keep"


@pytest.mark.slow
def test_a_run_that_fails_otherwise_exits_2_and_names_the_step(tmp_path: Path) -> None:
    result, markdown, _ = _smoke(tmp_path, "--days", "1", "--encounters-per-day", "50", "--population", "500")
    assert result.returncode == 2, result.stdout[-3000:] + result.stderr[-3000:]
    assert markdown.startswith("## rare-triage smoke materialization: FAILED: a run failed")
    assert "- train_and_publish_job: step training_set: ValueError: windows: no day left for training" in markdown
    assert "- train and publish: 1 run(s)" in markdown and "- monitoring: 0 run(s), 0.0 s" in markdown
    assert {cells[3] for cells in table_rows(markdown)} == {"passed"}


@pytest.mark.slow
def test_the_smoke_end_to_end_then_the_real_recall_gate_fails_its_gate_phase(
    tmp_path: Path, defs: dg.Definitions
) -> None:
    home = tmp_path / "home"
    result, markdown, _ = _smoke(tmp_path, "--home", str(home))
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-3000:]

    # every check of every materialized asset, per daily partition, passed; the relaxed gate is marked
    graph = defs.resolve_asset_graph()
    daily = {keys.RAW_EHR_EXTRACT, keys.ANONYMIZED_ENCOUNTERS, keys.QUARANTINED_RECORDS, keys.ENCOUNTER_FEATURES}
    expected = sum(
        SMOKE_DAYS if key.asset_key in daily else 1
        for key in graph.asset_check_keys
        if key.asset_key not in smoke_cli.NOT_IN_SMOKE
    )
    cells = table_rows(markdown)
    assert len(cells) == expected
    assert {c[3] for c in cells} <= {"passed", "warn"}
    assert sorted(c[:2] for c in cells if c[5] == "smoke") == [
        ["external_validation", "external_validation_gate"],
        ["model_evaluation", "orphan_recall_gate"],
    ]
    assert markdown.startswith("## rare-triage smoke materialization: passed\n")
    assert "- model_evaluation:orphan_recall_gate: min_recall=0.5 (default 0.9)" in markdown
    assert "model_evaluation:robustness_gate:" not in markdown  # at its production limits
    assert "- external_validation:external_validation_gate: min_shares=[0.8, 0.7] (default [0.93, 0.88])" in markdown
    assert "Not part of the smoke" not in markdown
    materialized = (f"raw_ehr_extract: {SMOKE_DAYS}", f"encounter_features: {SMOKE_DAYS}", "published_model: 1")
    monitoring = ("prediction_logs: 1", "prediction_log_rejects: 1", "drift_report: 1", "model_performance: 1")
    for line in (*materialized, *monitoring, "onnx_model: 1", "reference_profile: 1"):
        assert f"  {line}\n" in result.stdout and f"- {line}\n" in markdown
    assert re.search(r"smoke: exit 0, \d+ s; state kept in ", result.stdout)
    dev = home / "bucket" / "models" / "rare-triage" / "env" / "dev.json"
    published = json.loads(dev.read_text(encoding="utf-8"))["version"]

    # the gate phase again on the same slice, every gate at its own thresholds: the recall gate fails (and nothing
    # after it runs)
    with code_location_in(home, {}) as (location, instance):
        options = smoke_cli.SmokeOptions(real_gates=True)
        phases = [phase for phase in smoke_cli.smoke_phases(options) if phase.job == keys.TRAIN_AND_PUBLISH_JOB]
        lines: list[str] = []
        run = smoke_cli.execute_phases(location, instance, phases, set(), out=lines.append)
    report = smoke_cli.smoke_report(options, run, phases, 1.0)
    assert report.exit_code == 1, (run.errors, lines)
    assert run.errors == []
    failed = sorted((r.asset, r.check) for r in report.rows if r.failed_blocking)
    assert failed == [("model_evaluation", "orphan_recall_gate")]
    table = table_rows(render_markdown(report))
    assert [(row[0], row[1]) for row in table[:1]] == failed  # failed blocking checks first
    recall = next(row for row in table if row[1] == "orphan_recall_gate")
    assert recall[:6] == ["model_evaluation", "orphan_recall_gate", "", "**FAILED**", "yes", ""]
    assert "(required >= 0.9)" in recall[6]
    robustness = next(row for row in table if row[1] == "robustness_gate")
    assert robustness[3] == "passed" and "plus_1_ratio=" in robustness[6]
    assert "onnx_model" not in run.materialized and "published_model" not in run.materialized
    assert json.loads(dev.read_text(encoding="utf-8"))["version"] == published, "nothing was published"
    assert lines[0].startswith("train_and_publish_job: FAILED (blocking checks [")
    assert "'model_evaluation:orphan_recall_gate'" in lines[0] and "robustness_gate" not in lines[0]
