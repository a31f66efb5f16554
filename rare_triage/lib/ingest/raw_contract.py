"""Checks of a raw extract against its contract, as pure functions over the raw tables."""

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
