"""Checks of the raw extract, evaluated in the materializing step on the data just produced."""

import dagster as dg
import pandas as pd

from rare_triage.defs.shared import keys as c
from rare_triage.lib import schema
from rare_triage.lib.ingest.raw_contract import raw_schema_problems, unknown_encounter_rows

RAW_SCHEMA = "raw_schema"
RAW_REFERENTIAL_INTEGRITY = "raw_referential_integrity"

RAW_CHECK_SPECS = [
    dg.AssetCheckSpec(
        RAW_SCHEMA,
        asset=c.RAW_EHR_EXTRACT,
        blocking=True,
        description="Every raw table has its columns with usable types, and the day has encounters.",
        partitions_def=c.DAILY_PARTITIONS,
    ),
    dg.AssetCheckSpec(
        RAW_REFERENTIAL_INTEGRITY,
        asset=c.RAW_EHR_EXTRACT,
        description="Share of child rows pointing at an unknown encounter (they will be quarantined).",
        partitions_def=c.DAILY_PARTITIONS,
    ),
]


def raw_schema_result(tables: dict[str, pd.DataFrame]) -> dg.AssetCheckResult:
    """Columns and types of each raw table against the contract in `schema.RAW_COLUMNS`."""
    problems = raw_schema_problems(tables)
    return dg.AssetCheckResult(
        check_name=RAW_SCHEMA, passed=not problems, metadata={"problems": dg.MetadataValue.json(problems)}
    )


def raw_referential_integrity_result(tables: dict[str, pd.DataFrame]) -> dg.AssetCheckResult:
    """Child rows whose encounter is absent from the encounters table (warns; governance quarantines them)."""
    orphans = unknown_encounter_rows(tables)
    total = sum(len(tables[name]) for name in schema.RAW_CHILD_TABLES)
    share = sum(orphans.values()) / total if total else 0.0
    return dg.AssetCheckResult(
        check_name=RAW_REFERENTIAL_INTEGRITY,
        passed=share <= 0.01,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"unknown_encounter_rows": dg.MetadataValue.json(orphans), "share": round(share, 5)},
    )
