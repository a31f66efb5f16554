"""Checks of the raw extract, evaluated in the materializing step on the data just produced."""

import dagster as dg
import pandas as pd

from rare_triage import constants as c
from rare_triage.lib import schema

RAW_SCHEMA = "raw_schema"
RAW_REFERENTIAL_INTEGRITY = "raw_referential_integrity"

RAW_CHECK_SPECS = [
    dg.AssetCheckSpec(
        RAW_SCHEMA,
        asset=c.RAW_EHR_EXTRACT,
        blocking=True,
        description="Every raw table has its columns with usable types, and the day has encounters.",
    ),
    dg.AssetCheckSpec(
        RAW_REFERENTIAL_INTEGRITY,
        asset=c.RAW_EHR_EXTRACT,
        description="Share of child rows pointing at an unknown encounter (they will be quarantined).",
    ),
]


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


def raw_schema_result(tables: dict[str, pd.DataFrame]) -> dg.AssetCheckResult:
    """Columns and types of each raw table against the contract in `schema.RAW_COLUMNS`."""
    problems = raw_schema_problems(tables)
    return dg.AssetCheckResult(
        check_name=RAW_SCHEMA, passed=not problems, metadata={"problems": dg.MetadataValue.json(problems)}
    )


def raw_referential_integrity_result(tables: dict[str, pd.DataFrame]) -> dg.AssetCheckResult:
    """Child rows whose encounter is absent from the encounters table (warns; governance quarantines them)."""
    known = set(tables[schema.RAW_ENCOUNTERS]["encounter_id"].dropna())
    orphans = {name: int((~tables[name]["encounter_id"].isin(known)).sum()) for name in schema.RAW_CHILD_TABLES}
    total = sum(len(tables[name]) for name in schema.RAW_CHILD_TABLES)
    share = sum(orphans.values()) / total if total else 0.0
    return dg.AssetCheckResult(
        check_name=RAW_REFERENTIAL_INTEGRITY,
        passed=share <= 0.01,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"unknown_encounter_rows": dg.MetadataValue.json(orphans), "share": round(share, 5)},
    )
