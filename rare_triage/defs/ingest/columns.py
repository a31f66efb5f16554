"""The column schema of raw_ehr_extract: every column of the six raw tables, its stored type and meaning."""

import dagster as dg

from rare_triage.defs.shared.table_metadata import column_schema, contract_column_types
from rare_triage.lib import schema
from rare_triage.lib.identifiers import IDENTIFIERS

_LOINC = ", ".join(f"{code} {spec[0]}" for code, spec in schema.VITAL_LOINC.items())
RAW_COLUMN_DESCRIPTIONS: dict[str, str] = {
    "patients.sex": "F, M or U",
    "encounters.encounter_id": "source-system encounter key (pseudonymized by governance)",
    "encounters.patient_id": "source-system patient key of the encounter (pseudonymized by governance)",
    "encounters.encounter_date": "day of the encounter (the partition day)",
    "encounters.centre_id": "centre registry code (C01 ...)",
    "encounters.centre_level": "primary, secondary or tertiary",
    "encounters.region": "first-level administrative region of the centre",
    "encounters.consultation_type": ", ".join(schema.CONSULTATION_TYPES),
    "encounters.prior_visits_365d": "visits in the 365 days before, as the source counts them (null: unknown)",
    "vitals.loinc_code": f"LOINC code of the vital sign ({_LOINC}; SpO2 also as {schema.SPO2_ALT_LOINC})",
    "vitals.value": "measured value, in the unit of the row",
    "vitals.unit": "UCUM unit (Cel, /min, %, mm[Hg])",
    "symptoms.hpo_id": "HPO term asked about or recorded (HP:nnnnnnn)",
    "symptoms.present": "true observed, false explicitly absent",
    "symptoms.severity": "0-10 (fever score on the fever row, pain score on pain rows); null: not rated",
    "symptoms.duration_days": "days since onset; null: not recorded",
    "diagnoses.code_system": "ICD10 or ORPHA",
    "diagnoses.code": "ICD-10 code (J18.9) or ORPHA code with its prefix (ORPHA:558)",
    "diagnoses.rank": "1 = primary diagnosis of the encounter",
    "comorbidities.icd10_code": "ICD-10 code on the active problem list at the encounter",
}
RAW_COLUMN_DESCRIPTIONS |= {
    f"{table}.encounter_id": "source-system encounter key of the row" for table in schema.RAW_CHILD_TABLES
}
RAW_COLUMN_DESCRIPTIONS |= {
    f"{identifier.source}.{identifier.column}": f"direct identifier, HIPAA Safe Harbor {identifier.category.value}: "
    f"{identifier.treatment.value} by governance" + (f" ({', '.join(identifier.output)})" if identifier.output else "")
    for identifier in IDENTIFIERS
    if identifier.source == schema.RAW_PATIENTS
}


def raw_column_schema() -> dg.TableSchema:
    """Every column of the six raw tables as `<table>.<column>`, with the Arrow type the lake stores it as."""
    types: dict[str, str] = {}
    for table in schema.RAW_TABLES:
        types |= contract_column_types(schema.RAW_DTYPES[table], prefix=f"{table}.")
    return column_schema(types, RAW_COLUMN_DESCRIPTIONS)
