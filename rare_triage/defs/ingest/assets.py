"""Raw EHR extracts, one daily partition each, as the hospital delivers them (direct identifiers included)."""

import datetime as dt
from collections.abc import Iterator

import dagster as dg
import pandas as pd

from rare_triage.defs.ingest.checks import RAW_CHECK_SPECS, raw_referential_integrity_result, raw_schema_result
from rare_triage.defs.ingest.columns import raw_column_schema
from rare_triage.defs.shared import keys as c
from rare_triage.defs.shared.ehr_source import EhrSource
from rare_triage.defs.shared.pseudonymization import PseudonymizationResource
from rare_triage.defs.shared.table_metadata import table_sizes
from rare_triage.lib import schema
from rare_triage.lib.ingest.raw_frames import empty_raw_table
from rare_triage.lib.reference.frames import reference_from_frames

RAW_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=dt.timedelta(hours=48), warn_window=dt.timedelta(hours=26))


@dg.asset(
    key=c.RAW_EHR_EXTRACT,
    group_name=c.GROUP_INGEST,
    partitions_def=c.DAILY_PARTITIONS,
    io_manager_key=c.PARQUET_IO_MANAGER,
    ins={"reference": dg.AssetIn(c.HPO_REFERENCE_TABLES)},
    kinds={"python", "parquet"},
    metadata={"dagster/column_schema": raw_column_schema()},
    freshness_policy=RAW_FRESHNESS,
    check_specs=RAW_CHECK_SPECS,
    description=(
        "One day of EHR extract: patients (with direct identifiers), encounters, LOINC vital signs, HPO symptoms, "
        "ICD-10 / ORPHA diagnoses and comorbidities. Source: synthetic generator (default) or landing zone. "
        + c.PARTITIONS_NOTE
    ),
)
def raw_ehr_extract(
    context: dg.AssetExecutionContext,
    ehr_source: EhrSource,
    pseudonymization: PseudonymizationResource,
    reference: dict[str, pd.DataFrame],
) -> Iterator[dg.Output[dict[str, pd.DataFrame]] | dg.AssetCheckResult]:
    pseudonymization.check_key()  # configuration first: no identifiers are fetched for a run that cannot govern them
    day = dt.date.fromisoformat(context.partition_key)
    landing = ehr_source.read_day_with_rejects(day, reference_from_frames(reference))
    tables = landing.tables
    missing = set(schema.RAW_TABLES) - set(tables)
    if missing:
        raise ValueError(f"{ehr_source.source_name} source returned no table(s) {sorted(missing)} for {day}")
    for name in schema.RAW_TABLES:
        absent = [col for col in schema.RAW_COLUMNS[name] if col not in tables[name].columns]
        if absent:
            raise ValueError(f"{ehr_source.source_name} source: table {name!r} lacks column(s) {absent} on {day}")
    # a table without rows is stored with its contract's types, never as null-typed Parquet columns
    tables = {
        name: empty_raw_table(name) if tables[name].empty else tables[name].loc[:, list(schema.RAW_COLUMNS[name])]
        for name in schema.RAW_TABLES
    }
    rejected = landing.reject_counts()
    yield dg.Output(
        {**tables, schema.RAW_REJECTS: landing.rejects_frame()},  # rejects travel to governance's quarantine
        metadata={
            "source": ehr_source.source_name,
            "encounters": len(tables[schema.RAW_ENCOUNTERS]),
            "patients": len(tables[schema.RAW_PATIENTS]),
            "rows": table_sizes(tables, rejected_rows=rejected),
            "rejected_rows": dg.MetadataValue.json(rejected),
            "rejected_rows_total": sum(rejected.values()),
            **({"fhir_import": dg.MetadataValue.json(landing.fhir.as_dict())} if landing.fhir_files else {}),
            "dagster/row_count": len(tables[schema.RAW_ENCOUNTERS]),
        },
    )
    yield raw_schema_result(tables)
    yield raw_referential_integrity_result(tables)
