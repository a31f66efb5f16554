"""Checks of a raw extract against its contract, and the rows a source reader rejected, as pure functions."""

from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from rare_triage.lib import schema

DATE_COLUMNS = {schema.RAW_PATIENTS: "birth_date", schema.RAW_ENCOUNTERS: "encounter_date"}
NUMERIC_COLUMNS = {schema.RAW_VITALS: ("value",), schema.RAW_SYMPTOMS: ("severity", "duration_days")}


def raw_schema_problems(tables: dict[str, pd.DataFrame]) -> dict[str, str]:
    """Problems of column set, date and numeric types, keyed by table.column."""
    problems: dict[str, str] = {}
    for name in schema.RAW_TABLES:
        if tuple(tables[name].columns) != schema.RAW_COLUMNS[name]:
            problems[name] = f"expected columns {list(schema.RAW_COLUMNS[name])}, got {list(tables[name].columns)}"
    for name, column in DATE_COLUMNS.items():
        if not pd.api.types.is_datetime64_any_dtype(tables[name][column]):
            problems[f"{name}.{column}"] = f"expected datetime64, got {tables[name][column].dtype}"
    for name, columns in NUMERIC_COLUMNS.items():
        for column in columns:
            if not pd.api.types.is_numeric_dtype(tables[name][column]):
                problems[f"{name}.{column}"] = f"expected a numeric type, got {tables[name][column].dtype}"
    if tables[schema.RAW_ENCOUNTERS].empty:
        problems[schema.RAW_ENCOUNTERS] = "no encounter in this partition"
    return problems


def unknown_encounter_rows(tables: dict[str, pd.DataFrame]) -> dict[str, int]:
    """Rows of each child table whose encounter_id is absent from the encounters table."""
    known = set(tables[schema.RAW_ENCOUNTERS]["encounter_id"].dropna())
    return {name: int((~tables[name]["encounter_id"].isin(known)).sum()) for name in schema.RAW_CHILD_TABLES}


REJECT_COLUMNS = ("file", "table", "line", "column", "rule")


@dataclass(frozen=True)
class Reject:
    """A source row left out of its raw table: where it was and the rule it broke, never its content.

    ``line`` is the line in a text file (header = 1), the 1-based row of a Parquet file; ``column`` is None for a
    problem of the whole line (wrong field count).
    """

    file: str
    table: str
    line: int | None
    column: str | None
    rule: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line is not None else "unknown line"
        column = f" column {self.column!r}" if self.column else ""
        return f"{self.file} ({self.table}) {where}{column}: {self.rule}"


def rejects_frame(rejects: Iterable[Reject]) -> pd.DataFrame:
    """Rejects as a frame with ``REJECT_COLUMNS`` (line as nullable Int64), typed even when empty."""
    rows = [(r.file, r.table, r.line, r.column, r.rule) for r in rejects]
    frame = pd.DataFrame(rows, columns=list(REJECT_COLUMNS))
    return frame.astype({"file": "string", "table": "string", "line": "Int64", "column": "string", "rule": "string"})


def reject_counts(rejects: Iterable[Reject]) -> dict[str, int]:
    """Rejected rows per raw table (every table present, 0 when none)."""
    counts = dict.fromkeys(schema.RAW_TABLES, 0)
    for reject in rejects:
        counts[reject.table] += 1
    return counts
