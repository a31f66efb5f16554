"""The raw-extract contract checks as pure functions: column sets, types, empty days, unknown encounters."""

import pandas as pd
import pytest

from rare_triage.lib import schema
from rare_triage.lib.ingest.raw_contract import raw_schema_problems, unknown_encounter_rows

DATES = {"birth_date", "encounter_date"}
NUMBERS = {"value", "severity", "duration_days"}


def _column(name: str, rows: int) -> pd.Series:
    if name in DATES:
        return pd.Series(pd.to_datetime(["2025-03-01"] * rows))
    if name in NUMBERS:
        return pd.Series([1.0] * rows)
    return pd.Series([f"{name}-1"] * rows, dtype=object)


def _tables(rows: int = 1) -> dict[str, pd.DataFrame]:
    return {
        name: pd.DataFrame({col: _column(col, rows) for col in schema.RAW_COLUMNS[name]}) for name in schema.RAW_TABLES
    }


def test_a_conforming_extract_has_no_problem() -> None:
    assert raw_schema_problems(_tables()) == {}


@pytest.mark.parametrize(
    ("table", "column", "value", "message"),
    [
        (schema.RAW_ENCOUNTERS, "encounter_date", "2025-03-01", "expected datetime64"),
        (schema.RAW_VITALS, "value", "38.2", "expected a numeric type"),
        (schema.RAW_SYMPTOMS, "severity", "mild", "expected a numeric type"),
    ],
)
def test_a_wrong_type_names_table_and_column(table: str, column: str, value: str, message: str) -> None:
    tables = _tables()
    tables[table][column] = pd.Series([value], dtype=object)
    problems = raw_schema_problems(tables)
    assert list(problems) == [f"{table}.{column}"]
    assert problems[f"{table}.{column}"] == f"{message}, got object"


def test_missing_columns_and_an_empty_day_are_named() -> None:
    tables = _tables(rows=0)
    tables[schema.RAW_VITALS] = tables[schema.RAW_VITALS].drop(columns=["unit"])
    problems = raw_schema_problems(tables)
    assert "expected columns" in problems[schema.RAW_VITALS]
    assert problems[schema.RAW_ENCOUNTERS] == "no encounter in this partition"


def test_child_rows_of_unknown_encounters_are_counted_per_table() -> None:
    tables = _tables(rows=2)
    tables[schema.RAW_VITALS].loc[1, "encounter_id"] = "encounter_id-unknown"
    counts = unknown_encounter_rows(tables)
    assert counts == {name: int(name == schema.RAW_VITALS) for name in schema.RAW_CHILD_TABLES}
