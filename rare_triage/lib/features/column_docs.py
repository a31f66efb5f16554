"""What each column of the encounter features table means, for the column schema a data person reads in the UI.

Fixed columns are described here; a vocabulary term or organ-system column is described from the reference tables
(its HPO id and label), so the descriptions follow the vocabulary the table was built with.
"""

from collections.abc import Iterable, Mapping

from rare_triage.lib import schema
from rare_triage.lib.features.build import system_feature_columns, vocabulary_feature_columns

FIXED_COLUMN_DESCRIPTIONS: Mapping[str, str] = {
    "encounter_key": "HMAC-SHA256 pseudonym of the source encounter id (hex); not reversible without the key",
    "patient_key": "HMAC-SHA256 pseudonym of the source patient id (hex): links encounters of one patient",
    "partition_day": "day of the encounter (YYYY-MM-DD), the daily partition; the only date element kept",
    "sex": "F, M or U (unknown)",
    "age_band": "10-year age band (0-9 ... 80-89, 90+); * where k-anonymity suppressed it",
    "centre_id": "centre registry code (C01 ...); 'other' outside the registry",
    "centre_level": "primary, secondary or tertiary care centre",
    "region": "first-level administrative region of the centre; * where k-anonymity suppressed it",
    "consultation_type": "primary_care, emergency, outpatient_specialist, inpatient or telehealth",
    "age_years": "age at the encounter in years, top-coded at 90",
    "temperature_c": "body temperature, °C: mean of the LOINC 8310-5 values of the encounter (null: not measured)",
    "heart_rate": "heart rate, /min: mean of the LOINC 8867-4 values (null: not measured)",
    "respiratory_rate": "respiratory rate, /min: mean of the LOINC 9279-1 values (null: not measured)",
    "spo2": "oxygen saturation, %: mean of the LOINC 59408-5 / 2708-6 values (null: not measured)",
    "systolic_bp": "systolic blood pressure, mm[Hg]: mean of the LOINC 8480-6 values (null: not measured)",
    "diastolic_bp": "diastolic blood pressure, mm[Hg]: mean of the LOINC 8462-4 values (null: not measured)",
    "fever_score": "0-10: highest severity recorded on a present fever term (HP:0001945 or below); null: none",
    "pain_score": "0-10: highest severity of a present pain term (HP:0012531 or below) or pain-score vital "
    "(LOINC 72514-3); null: none",
    "symptom_duration_days": "days since onset: the longest duration of a present symptom; null: not recorded",
    "comorbidity_count": "distinct ICD-10 codes on the active problem list (0 when none)",
    "prior_visits_365d": "visits of the same pseudonymous patient in the 365 days before (as the source counts them)",
    "n_systems_involved": "number of organ-system columns (sys_*) equal to 1",
    "n_present_terms": "distinct HPO terms recorded present",
    "n_specific_terms": f"present terms of information content >= {schema.SPECIFIC_TERM_IC:g} (annotated to at most "
    "1.8% of the ORPHA diseases)",
    "phenotype_ic_max": "highest information content ln(N / ORPHA diseases annotated at or below the term) of a "
    "present term (0 when none)",
    "phenotype_ic_sum": "sum of the information content of the present terms (0 when none)",
    schema.LABEL_COLUMN: "training label from the diagnoses: orphan (any ORPHA code), common_mild / common_acute / "
    "common_chronic (acuity of the primary ICD-10 diagnosis), none",
}

_FLAG = "1 present, 0 excluded, null not recorded"


def feature_column_descriptions(
    vocabulary: Iterable[tuple[str, str, str]], systems: Iterable[tuple[str, str]]
) -> dict[str, str]:
    """Column -> description for every column of the features table: the fixed columns, one per vocabulary term
    from (hpo_id, label, system name), one per organ system from (hpo_id, label)."""
    terms = list(vocabulary)
    groups = list(systems)
    described = dict(FIXED_COLUMN_DESCRIPTIONS)
    for column, (hpo_id, label, system) in zip(vocabulary_feature_columns([t[0] for t in terms]), terms, strict=True):
        described[column] = f"{label} ({hpo_id}, {system}): {_FLAG}; a more specific recorded term rolls up to it"
    for column, (hpo_id, label) in zip(system_feature_columns([g[0] for g in groups]), groups, strict=True):
        described[column] = f"organ system {label} ({hpo_id}): {_FLAG}; 1 when a present term lies under it"
    return described
