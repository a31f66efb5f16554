"""The smoke's report, without Dagster: asset check results as a markdown table (failed first), a compact text table,
the exit code, and the GitHub job summary.

Cells hold numbers and short codes only. A metadata value is shown as a number, a boolean, a short text (cut to
`MAX_TEXT` characters), the size of a list or mapping, or the name of its type: never a table, a frame or a long
text. Every cell is escaped for a markdown table (`\\`, `|`, backticks, `<`, newlines) and cut to `MAX_CELL`
characters.
"""

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PASSED = "passed"
FAILED = "failed"  # not passed, severity ERROR
WARN = "warn"  # not passed, severity WARN
RESULTS = (PASSED, FAILED, WARN)

MAX_TEXT = 40  # a text metadata value longer than this is cut
MAX_DESCRIPTION = 120  # a check's description, shown on rows that did not pass
MAX_CELL = 300
MAX_ITEMS = 4  # metadata entries shown per row
MAX_NAMED_KEYS = 3  # a mapping of at most this many keys, each a short code, is shown with its keys
MAX_BULLET = 600
SHORT_CODE = re.compile(r"[A-Za-z0-9_.:-]{1,40}")  # a table, column, metric or check name: no free text
ELLIPSIS = "…"

EXIT_PASSED = 0
EXIT_CHECK_FAILED = 1
EXIT_RUN_FAILED = 2


@dataclass(frozen=True)
class CheckRow:
    """One asset check evaluation, in plain values: `metadata` maps a name to a number, bool, text, list or dict
    (anything else is shown by its type name only)."""

    asset: str
    check: str
    partition: str | None
    result: str
    blocking: bool
    metadata: Mapping[str, Any] = field(default_factory=dict)
    description: str | None = None
    smoke_thresholds: bool = False  # the check ran at the smoke's run configuration, not its own defaults

    def __post_init__(self) -> None:
        if self.result not in RESULTS:
            raise ValueError(f"result: one of {list(RESULTS)}, got {self.result!r}")

    @property
    def failed_blocking(self) -> bool:
        return self.result == FAILED and self.blocking


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + ELLIPSIS


def escape_cell(text: str, limit: int = MAX_CELL) -> str:
    """`text` cut to `limit` characters, then escaped for a markdown table cell: a backslash, `|` and backticks
    escaped, `<` as `&lt;` (no HTML), every line break as a space."""
    cut = _cut(text, limit)
    escaped = cut.replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`").replace("<", "&lt;")
    return " ".join(escaped.splitlines())


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def _format_scalar(value: bool | int | float | str | None, max_text: int) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value) if isinstance(value, int) else _cut(value, max_text)


def _format_mapping(value: Mapping[Any, Any]) -> str:
    size = f"{len(value)} key{'' if len(value) == 1 else 's'}"
    names = [str(name) for name in value]
    if 0 < len(names) <= MAX_NAMED_KEYS and all(SHORT_CODE.fullmatch(name) for name in names):
        return f"{size} ({' '.join(names)})"
    return size


def format_value(value: Any, max_text: int = MAX_TEXT) -> str:
    """A metadata value as a short text: numbers (4 significant digits), booleans, text cut to `max_text`, the size
    of a list, the size of a mapping (with its keys when they are a few short codes: table or column names); any
    other object by its type name only (its content is never shown)."""
    if _is_scalar(value):
        return _format_scalar(value, max_text)
    if isinstance(value, list) or type(value) is tuple:  # (a named tuple, like Dagster's metadata, is an object)
        return f"{len(value)} item{'' if len(value) == 1 else 's'}"
    if isinstance(value, Mapping):
        return _format_mapping(value)
    return f"({type(value).__name__})"


def metadata_text(metadata: Mapping[str, Any], max_items: int = MAX_ITEMS) -> str:
    """The first `max_items` entries, scalars before lists and mappings, as `name=value`, and how many were left."""
    ordered = sorted(metadata.items(), key=lambda item: not _is_scalar(item[1]))  # stable: scalars first
    shown = [f"{_cut(str(name), MAX_TEXT)}={format_value(value)}" for name, value in ordered[:max_items]]
    if len(ordered) > max_items:
        shown.append(f"+{len(ordered) - max_items} more")
    return ", ".join(shown)


def _rank(row: CheckRow) -> int:
    if row.failed_blocking:
        return 0
    return {FAILED: 1, WARN: 2, PASSED: 3}[row.result]


def ordered_rows(rows: Iterable[CheckRow]) -> list[CheckRow]:
    """Failed blocking checks first, then failed non-blocking ones, warnings, and passed checks; in run order
    within each."""
    return sorted(rows, key=_rank)


def key_metadata(row: CheckRow) -> str:
    """The row's description (when it did not pass) and its first metadata entries."""
    parts = []
    if row.description and row.result != PASSED:
        parts.append(_cut(row.description, MAX_DESCRIPTION))
    if row.metadata:
        parts.append(metadata_text(row.metadata))
    return "; ".join(parts)


TABLE_HEADER = ("asset", "check", "partition", "result", "blocking", "thresholds", "key metadata")


def check_table(rows: Iterable[CheckRow]) -> str:
    """The markdown table of `rows`, failed ones first."""
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "|" + "---|" * len(TABLE_HEADER)]
    for row in ordered_rows(rows):
        result = f"**{row.result.upper()}**" if row.result == FAILED else row.result
        cells = [
            escape_cell(row.asset),
            escape_cell(row.check),
            escape_cell(row.partition or ""),
            result,
            "yes" if row.blocking else "no",
            "smoke" if row.smoke_thresholds else "",
            escape_cell(key_metadata(row)),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def compact_lines(rows: Sequence[CheckRow]) -> list[str]:
    """One line per check (partitions counted together): its counts of results and the partitions that did not
    pass, failed checks first; for the console."""
    grouped: dict[tuple[str, str], list[CheckRow]] = defaultdict(list)
    for row in rows:
        grouped[(row.asset, row.check)].append(row)
    width = max((len(f"{asset}:{check}") for asset, check in grouped), default=0)
    entries = []
    for (asset, check), group in grouped.items():
        counts = Counter(row.result for row in group)
        rank = min(_rank(row) for row in group)
        marker = "FAILED" if rank == 0 else FAILED if rank == 1 else WARN if rank == 2 else "ok"
        tally = ", ".join(f"{counts[result]} {result}" for result in RESULTS if counts[result])
        not_passed = sorted({row.partition for row in group if row.result != PASSED and row.partition})
        where = f" [{', '.join(not_passed[:5])}{', ...' if len(not_passed) > 5 else ''}]" if not_passed else ""
        blocking = "blocking" if any(row.blocking for row in group) else "non-blocking"
        smoke = " (smoke thresholds)" if any(row.smoke_thresholds for row in group) else ""
        name = f"{asset}:{check}"
        entries.append((rank, f"  {marker:6s} {name:{width}s} {blocking:12s} {tally}{where}{smoke}"))
    return [line for _, line in sorted(entries, key=lambda entry: entry[0])]


def exit_code(rows: Iterable[CheckRow], run_errors: Sequence[str]) -> int:
    """2 when a run failed for any reason but a failed check (a step error outranks a failed check), 1 when a
    blocking check failed, else 0."""
    if run_errors:
        return EXIT_RUN_FAILED
    return EXIT_CHECK_FAILED if any(row.failed_blocking for row in rows) else EXIT_PASSED


def count_results(rows: Iterable[CheckRow]) -> dict[str, int]:
    counts = Counter(row.result for row in rows)
    return {result: counts[result] for result in RESULTS}


def append_summary(path: Path, markdown: str) -> None:
    """Append `markdown` to `path` (GitHub's $GITHUB_STEP_SUMMARY is appended to by every step), a blank line
    after it."""
    with path.open("a", encoding="utf-8") as out:
        out.write(markdown.rstrip("\n") + "\n\n")


@dataclass(frozen=True)
class SmokeReport:
    """Everything the smoke's summary says, in plain values."""

    scope: str  # what was materialized, in a sentence
    rows: Sequence[CheckRow]
    materialized: Mapping[str, int]  # asset -> materializations
    phases: Sequence[tuple[str, int, float]]  # phase, runs, seconds
    total_seconds: float
    run_errors: Sequence[str] = ()
    smoke_gates: Mapping[str, str] = field(default_factory=dict)  # check -> its smoke configuration
    smoke_gates_reason: str = ""
    excluded: Mapping[str, str] = field(default_factory=dict)  # asset -> why it is not part of the smoke

    @property
    def exit_code(self) -> int:
        return exit_code(self.rows, self.run_errors)


def _verdict(code: int) -> str:
    if code == EXIT_PASSED:
        return "passed"
    return "FAILED: a blocking check failed" if code == EXIT_CHECK_FAILED else "FAILED: a run failed"


def _bullets(items: Mapping[str, str] | Sequence[str]) -> list[str]:
    if isinstance(items, Mapping):
        return [f"- {escape_cell(name)}: {escape_cell(text, MAX_BULLET)}" for name, text in items.items()]
    return [f"- {escape_cell(text, MAX_BULLET)}" for text in items]


def render_markdown(report: SmokeReport) -> str:
    """The job summary: verdict, run errors, the check table (failed first), the gates run at smoke thresholds,
    materialization counts, what is not part of the smoke, and the time of each phase."""
    code = report.exit_code
    counts = count_results(report.rows)
    failed_blocking = sum(row.failed_blocking for row in report.rows)
    lines = [
        f"## rare-triage smoke materialization: {_verdict(code)}",
        "",
        f"{escape_cell(report.scope)}. Exit code {code}, total time {report.total_seconds:.0f} s "
        f"({report.total_seconds / 60:.1f} min).",
        "",
        f"{len(report.rows)} check evaluations: "
        + ", ".join(f"{counts[result]} {result}" for result in RESULTS)
        + f"; {failed_blocking} blocking check(s) failed.",
    ]
    if report.run_errors:
        lines += ["", "**Run errors**", "", *_bullets(report.run_errors)]
    lines += ["", check_table(report.rows)]
    if report.smoke_gates:
        lines += [
            "",
            "**Gates at smoke thresholds** (`smoke` in the table)"
            + (f": {escape_cell(report.smoke_gates_reason, MAX_BULLET)}" if report.smoke_gates_reason else ""),
            "",
            *_bullets(report.smoke_gates),
        ]
    lines += ["", "**Materialized** (materializations per asset)", ""]
    lines += [f"- {escape_cell(asset)}: {count}" for asset, count in report.materialized.items()]
    if report.excluded:
        lines += ["", "**Not part of the smoke**", "", *_bullets(report.excluded)]
    lines += ["", "**Phases**", ""]
    lines += [f"- {escape_cell(name)}: {runs} run(s), {seconds:.1f} s" for name, runs, seconds in report.phases]
    return "\n".join(lines) + "\n"
