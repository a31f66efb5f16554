"""Independent validity checks of a raw extract, used by the synthetic-data tests (not the project's validation)."""

import pandas as pd

from rare_triage.lib.reference.loaders import known_icd10_codes
from rare_triage.lib.reference.ontology import ReferenceTables
from rare_triage.lib.schema import (
    CENTRE_LEVELS,
    CODE_SYSTEMS,
    CONSULTATION_TYPES,
    RAW_COMORBIDITIES,
    RAW_DIAGNOSES,
    RAW_ENCOUNTERS,
    RAW_PATIENTS,
    RAW_SYMPTOMS,
    RAW_VITALS,
    SEXES,
    SPO2_ALT_LOINC,
    VITAL_LOINC,
)


def problems(tables: dict[str, pd.DataFrame], ref: ReferenceTables) -> dict[str, int]:
    """Number of offending rows per problem; an empty dict means a clean extract."""
    patients, encounters = tables[RAW_PATIENTS], tables[RAW_ENCOUNTERS]
    vitals, symptoms = tables[RAW_VITALS], tables[RAW_SYMPTOMS]
    diagnoses, comorbidities = tables[RAW_DIAGNOSES], tables[RAW_COMORBIDITIES]
    encounter_ids = set(encounters["encounter_id"].dropna())
    vital_spec = {**VITAL_LOINC, SPO2_ALT_LOINC: VITAL_LOINC["59408-5"]}
    spec = vitals["loinc_code"].map(vital_spec)
    known_vital = spec.notna()
    low = spec[known_vital].map(lambda item: item[2])
    high = spec[known_vital].map(lambda item: item[3])
    unit = spec[known_vital].map(lambda item: item[1])
    icd10 = known_icd10_codes()
    orpha = set("ORPHA:" + ref.orpha_diseases["orpha_code"].astype(str))
    is_icd = diagnoses["code_system"] == "ICD10"
    unique_patients = patients.drop_duplicates()  # extracts of several days repeat patients
    birth = encounters.merge(unique_patients[["patient_id", "birth_date"]], on="patient_id", how="left")["birth_date"]
    counts = {
        "encounter_key_missing": encounters[["encounter_id", "patient_id"]].isna().any(axis=1).sum(),
        "encounter_duplicated": encounters["encounter_id"].duplicated().sum(),
        "encounter_patient_unknown": (~encounters["patient_id"].dropna().isin(patients["patient_id"])).sum(),
        "encounter_category": (
            ~encounters["centre_level"].isin(CENTRE_LEVELS) | ~encounters["consultation_type"].isin(CONSULTATION_TYPES)
        ).sum(),
        "birth_after_encounter": (birth > encounters["encounter_date"]).sum(),
        "patient_conflicting_rows": unique_patients["patient_id"].duplicated().sum(),
        "patient_bad_zip_or_sex": (~patients["zip_code"].str.fullmatch(r"\d{5}") | ~patients["sex"].isin(SEXES)).sum(),
        "vital_unknown_code": (~known_vital).sum(),
        "vital_out_of_range": (~vitals.loc[known_vital, "value"].between(low, high)).sum(),
        "vital_bad_unit": (vitals.loc[known_vital, "unit"] != unit).sum(),
        "vital_orphan_row": (~vitals["encounter_id"].isin(encounter_ids)).sum(),
        "symptom_unknown_hpo": (~symptoms["hpo_id"].isin(ref.hpo_terms["hpo_id"])).sum(),
        "symptom_orphan_row": (~symptoms["encounter_id"].isin(encounter_ids)).sum(),
        "symptom_duplicated": symptoms.duplicated(["encounter_id", "hpo_id"]).sum(),
        "symptom_bad_severity": (~symptoms["severity"].between(0, 10) & symptoms["severity"].notna()).sum(),
        "symptom_bad_duration": (symptoms["duration_days"] < 0).sum(),
        "diagnosis_unknown_code": (
            ~diagnoses["code_system"].isin(CODE_SYSTEMS)
            | (is_icd & ~diagnoses["code"].isin(icd10))
            | (~is_icd & ~diagnoses["code"].isin(orpha))
        ).sum(),
        "diagnosis_orphan_row": (~diagnoses["encounter_id"].isin(encounter_ids)).sum(),
        "comorbidity_unknown_code": (~comorbidities["icd10_code"].isin(icd10)).sum(),
        "comorbidity_orphan_row": (~comorbidities["encounter_id"].isin(encounter_ids)).sum(),
    }
    return {name: int(count) for name, count in counts.items() if count}
