"""Column schemas of the governance outputs: every column of the anonymized tables (types from their pandera
contracts) and of quarantined_records, with its meaning. Names and types only: never a value of a row."""

from collections.abc import Mapping

import dagster as dg

from rare_triage.defs.shared.table_metadata import column_schema, contract_column_types
from rare_triage.lib import schema
from rare_triage.lib.governance.kanonymity import K_ANONYMITY
from rare_triage.lib.governance.pending import PENDING_SINCE
from rare_triage.lib.governance.schemas import ANON_MODELS, QuarantinedRecords

_PSEUDONYM = "HMAC-SHA256 pseudonym (32 hex) of the source"
_SUPPRESSED = f"* where k-anonymity (k >= {K_ANONYMITY}) suppressed it"
ANON_COLUMN_DESCRIPTIONS: Mapping[str, str] = {
    "encounters.encounter_key": f"{_PSEUDONYM} encounter id",
    "encounters.patient_key": f"{_PSEUDONYM} patient id: links the encounters of one patient",
    "encounters.partition_day": "day of the encounter (YYYY-MM-DD), the partition: the only date element kept",
    "encounters.encounter_year": "year of the encounter",
    "encounters.age_years": f"age at the encounter, top-coded at {schema.AGE_TOP_CODE}; null where age_band is *",
    "encounters.age_band": f"10-year band ({schema.AGE_BANDS[0]} ... {schema.AGE_BANDS[-1]}); {_SUPPRESSED}",
    "encounters.sex": f"F, M or U; {_SUPPRESSED}",
    "encounters.centre_id": f"centre registry code (C01 ...), '{schema.OTHER_CATEGORY}' outside it; {_SUPPRESSED}",
    "encounters.centre_level": f"primary, secondary or tertiary; {_SUPPRESSED}",
    "encounters.region": f"first-level administrative region; '{schema.OTHER_CATEGORY}' outside the list; "
    f"{_SUPPRESSED}",
    "encounters.zip3": "first 3 ZIP digits (Safe Harbor); 000 where the 3-digit area has 20,000 people or fewer",
    "encounters.consultation_type": ", ".join(schema.CONSULTATION_TYPES),
    "encounters.prior_visits_365d": "visits of the same patient key in the 365 days before (0 when unknown)",
    "vitals.loinc_code": "LOINC code of the vital sign (SpO2 as 59408-5)",
    "vitals.value": "measured value, within the plausible range of its code",
    "vitals.unit": "UCUM unit of the code (Cel, /min, %, mm[Hg])",
    "symptoms.hpo_id": "HPO term asked about or recorded (current id of the release)",
    "symptoms.present": "true observed, false explicitly absent",
    "symptoms.severity": "0-10 (fever score on the fever row, pain score on pain rows); null: not rated",
    "symptoms.duration_days": "days since onset; null: not recorded",
    "diagnoses.code_system": "ICD10 or ORPHA",
    "diagnoses.code": "ICD-10 code or ORPHA:<number>",
    "diagnoses.rank": "1 = primary diagnosis of the encounter",
    "comorbidities.icd10_code": "ICD-10 code on the active problem list at the encounter",
} | {f"{table}.encounter_key": f"{_PSEUDONYM} encounter id of the row" for table in schema.ANON_CHILD_TABLES}

QUARANTINE_COLUMN_DESCRIPTIONS: Mapping[str, str] = {
    "partition_day": "day of the extract the row came from",
    "table": "raw table of the row",
    "row_ref": "HMAC of the row's source key (never the key itself)",
    "field": "the offending field",
    "reason": "readable reason naming the field and the problem",
    "row_json": "the row as JSON with every direct identifier removed",
}


def anonymized_column_schema() -> dg.TableSchema:
    """Every column of the five anonymized tables as `<table>.<column>` (pending_encounters holds the same tables)."""
    types: dict[str, str] = {}
    for table in schema.ANON_TABLES:
        dtypes = {name: str(column.dtype) for name, column in ANON_MODELS[table].to_schema().columns.items()}
        types |= contract_column_types(dtypes, prefix=f"{table}.")
    return column_schema(types, ANON_COLUMN_DESCRIPTIONS)


def pending_column_schema() -> dg.TableSchema:
    """The anonymized tables of the encounters held back, whose encounters table also says since when."""
    anonymized = anonymized_column_schema().columns
    at = max(i for i, column in enumerate(anonymized) if column.name.startswith(f"{schema.ANON_ENCOUNTERS}.")) + 1
    since = dg.TableColumn(
        f"{schema.ANON_ENCOUNTERS}.{PENDING_SINCE}", "string", description="partition day the encounter was held back"
    )
    return dg.TableSchema(columns=[*anonymized[:at], since, *anonymized[at:]])


def quarantine_column_schema() -> dg.TableSchema:
    """The columns of quarantined_records."""
    dtypes = {name: str(column.dtype) for name, column in QuarantinedRecords.to_schema().columns.items()}
    return column_schema(contract_column_types(dtypes), QUARANTINE_COLUMN_DESCRIPTIONS)
