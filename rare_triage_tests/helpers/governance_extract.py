"""A small hand-built raw extract for the governance tests (independent of the synthetic generator)."""

import pandas as pd

from rare_triage.lib import schema
from rare_triage.lib.governance.anonymize import Pseudonymizer, anonymize_extract
from rare_triage.lib.governance.validation import ValidationResult, validate_extract

PARTITION_DAY = "2024-03-15"
KNOWN_ICD10 = frozenset({"J18.9", "I10", "E11.9", "J06.9"})
KNOWN_ORPHA = frozenset({558, 778})
KNOWN_HPO = frozenset({"HP:0001945", "HP:0012531", "HP:0002094", "HP:0001250"})
TEST_KEY = bytes(range(32))

PATIENT_ROWS = [
    # patient_id, mrn, national_id, given, family, phone, email, street, city, zip, birth_date, sex
    (
        "P-1001",
        "MRN-55501",
        "123-45-6789",
        "Aurelia",
        "Quenby",
        "+1-555-0101",
        "aurelia.q@example.org",
        "12 Larkspur Lane",
        "Springfield",
        "02139",
        "1980-06-01",
        "F",
    ),
    (
        "P-1002",
        "MRN-55502",
        "987-65-4321",
        "Bartholomew",
        "Ostrander",
        "+1-555-0102",
        "bart.o@example.org",
        "7 Quarry Road",
        "Shelbyville",
        "03601",
        "1929-01-20",
        "M",
    ),
    (
        "P-1003",
        "MRN-55503",
        "555-12-3456",
        "Celestine",
        "Marchbanks",
        "+1-555-0103",
        "cele.m@example.org",
        "99 Orchard Way",
        "Ogdenville",
        "90210",
        "2024-03-15",
        "U",
    ),
]

ENCOUNTER_ROWS = [
    # encounter_id, patient_id, encounter_date, centre_id, centre_level, region, consultation_type, prior_visits_365d
    ("E-9001", "P-1001", "2024-03-15", "C01", "primary", "North", "primary_care", 2),
    ("E-9002", "P-1002", "2024-03-15", "C02", "tertiary", "South", "emergency", None),
    ("E-9003", "P-1003", "2024-03-15", "C01", "primary", "North", "outpatient_specialist", 0),
]

VITAL_ROWS = [
    ("E-9001", "8310-5", 38.4, "Cel"),
    ("E-9001", "8867-4", 96.0, "/min"),
    ("E-9001", "2708-6", 97.0, "%"),
    ("E-9001", "8480-6", 125.0, "mm[Hg]"),
    ("E-9001", "8462-4", 80.0, "mm[Hg]"),
    ("E-9002", "9279-1", 18.0, "/min"),
    ("E-9003", "59408-5", 99.0, "%"),
]
SYMPTOM_ROWS = [
    ("E-9001", "HP:0001945", True, 6.0, 3.0),
    ("E-9001", "HP:0002094", False, None, None),
    ("E-9002", "HP:0012531", True, 4.0, 10.0),
    ("E-9003", "HP:0001250", True, None, 0.5),
]
DIAGNOSIS_ROWS = [
    ("E-9001", "ICD10", "J18.9", 1),
    ("E-9002", "ICD10", "I10", 1),
    ("E-9003", "ORPHA", "ORPHA:558", 1),
    ("E-9003", "ICD10", "J06.9", 2),
]
COMORBIDITY_ROWS = [("E-9002", "I10"), ("E-9002", "E11.9")]


def _frame(table: str, rows: list[tuple]) -> pd.DataFrame:
    columns = schema.RAW_COLUMNS[table]
    return pd.DataFrame([dict(zip(columns, row, strict=True)) for row in rows], columns=list(columns))


def raw_extract() -> dict[str, pd.DataFrame]:
    """Three patients with every kind of direct identifier, their encounters and child rows, all valid."""
    patients = _frame(schema.RAW_PATIENTS, PATIENT_ROWS)
    patients["birth_date"] = pd.to_datetime(patients["birth_date"])
    encounters = _frame(schema.RAW_ENCOUNTERS, ENCOUNTER_ROWS)
    encounters["encounter_date"] = pd.to_datetime(encounters["encounter_date"])
    encounters["prior_visits_365d"] = encounters["prior_visits_365d"].astype("Int64")
    symptoms = _frame(schema.RAW_SYMPTOMS, SYMPTOM_ROWS)
    symptoms[["severity", "duration_days"]] = symptoms[["severity", "duration_days"]].astype("float64")
    diagnoses = _frame(schema.RAW_DIAGNOSES, DIAGNOSIS_ROWS)
    diagnoses["rank"] = diagnoses["rank"].astype("Int64")
    return {
        schema.RAW_PATIENTS: patients,
        schema.RAW_ENCOUNTERS: encounters,
        schema.RAW_VITALS: _frame(schema.RAW_VITALS, VITAL_ROWS),
        schema.RAW_SYMPTOMS: symptoms,
        schema.RAW_DIAGNOSES: diagnoses,
        schema.RAW_COMORBIDITIES: _frame(schema.RAW_COMORBIDITIES, COMORBIDITY_ROWS),
    }


def with_rows(tables: dict[str, pd.DataFrame], table: str, rows: list[dict]) -> dict[str, pd.DataFrame]:
    """A copy of ``tables`` with ``rows`` (dicts of column values) appended to ``table``."""
    out = {name: frame.copy() for name, frame in tables.items()}
    extra = pd.DataFrame(rows, columns=out[table].columns)
    out[table] = pd.concat([out[table], extra], ignore_index=True)
    return out


def validate(tables: dict[str, pd.DataFrame], **overrides: object) -> ValidationResult:
    """validate_extract with the vocabularies and key of these tests."""
    arguments: dict = {
        "partition_day": PARTITION_DAY,
        "known_icd10": KNOWN_ICD10,
        "known_orpha": KNOWN_ORPHA,
        "known_hpo": KNOWN_HPO,
        "pseudonymize": Pseudonymizer(TEST_KEY),
    }
    arguments.update(overrides)
    return validate_extract(tables, **arguments)


def anonymized_extract() -> dict[str, pd.DataFrame]:
    """The anonymized tables of the clean raw extract."""
    result = validate(raw_extract())
    return anonymize_extract(
        result.valid, partition_day=PARTITION_DAY, pseudonymizer=Pseudonymizer(TEST_KEY), zip3_allowlist=None
    )
