"""Row-level validation: every rule quarantines the right rows with a readable reason, counts add up."""

import json
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from rare_triage.lib import schema
from rare_triage.lib.governance.anonymize import Pseudonymizer
from rare_triage.lib.governance.validation import (
    LABEL_HELD_BACK,
    NOT_ICD10,
    ExtractSchemaError,
    fingerprint,
    validate_extract,
)
from rare_triage.lib.identifiers import IDENTIFIER_COLUMNS
from rare_triage.lib.reference.icd10 import is_icd10_code
from rare_triage_tests.helpers.governance_extract import (
    KNOWN_HPO,
    KNOWN_ICD10,
    KNOWN_ORPHA,
    PARTITION_DAY,
    PATIENT_ROWS,
    TEST_KEY,
    raw_extract,
    validate,
    with_rows,
)

DAY = pd.Timestamp(PARTITION_DAY)
PATIENT = {
    "patient_id": "P-1100",
    "mrn": "MRN-55600",
    "national_id": "111-22-3333",
    "given_name": "Dorothea",
    "family_name": "Pennywhistle",
    "phone": "+1-555-0199",
    "email": "d.p@example.org",
    "street_address": "1 Elm Court",
    "city": "Capital City",
    "zip_code": "10001",
    "birth_date": pd.Timestamp("1990-01-01"),
    "sex": "F",
}
ENCOUNTER = {
    "encounter_id": "E-9100",
    "patient_id": "P-1001",
    "encounter_date": DAY,
    "centre_id": "C01",
    "centre_level": "primary",
    "region": "North",
    "consultation_type": "primary_care",
    "prior_visits_365d": 1,
}
VITAL = {"encounter_id": "E-9002", "loinc_code": "8867-4", "value": 80.0, "unit": "/min"}
SYMPTOM = {"encounter_id": "E-9002", "hpo_id": "HP:0001250", "present": True, "severity": np.nan, "duration_days": 1.0}
DIAGNOSIS = {"encounter_id": "E-9002", "code_system": "ICD10", "code": "J06.9", "rank": 2}
COMORBIDITY = {"encounter_id": "E-9001", "icd10_code": "I10"}
BASE = {
    schema.RAW_PATIENTS: PATIENT,
    schema.RAW_ENCOUNTERS: ENCOUNTER,
    schema.RAW_VITALS: VITAL,
    schema.RAW_SYMPTOMS: SYMPTOM,
    schema.RAW_DIAGNOSES: DIAGNOSIS,
    schema.RAW_COMORBIDITIES: COMORBIDITY,
}


def add(table: str, **changes: object) -> Callable[[dict[str, pd.DataFrame]], dict[str, pd.DataFrame]]:
    """A mutation appending one row to ``table``: the base row of the table with ``changes``."""
    return lambda tables: with_rows(tables, table, [{**BASE[table], **changes}])


def add_patient_with_encounter(**patient: object) -> Callable[[dict[str, pd.DataFrame]], dict[str, pd.DataFrame]]:
    def mutate(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
        tables = with_rows(tables, schema.RAW_PATIENTS, [{**PATIENT, **patient}])
        return with_rows(tables, schema.RAW_ENCOUNTERS, [{**ENCOUNTER, "patient_id": PATIENT["patient_id"]}])

    return mutate


RULE_CASES = [
    # (id, mutation, expected (table, reason) rows of the quarantine)
    ("patient id missing", add("patients", patient_id=None), [("patients", "patients.patient_id: missing")]),
    (
        "sex invalid",
        add("patients", sex="X"),
        [("patients", "patients.sex: not one of F, M, U")],
    ),
    ("sex missing", add("patients", sex=None), [("patients", "patients.sex: missing")]),
    (
        "birth date missing",
        add("patients", birth_date=pd.NaT),
        [("patients", "patients.birth_date: missing or not a date")],
    ),
    (
        "encounter id missing",
        add("encounters", encounter_id=None),
        [("encounters", "encounters.encounter_id: missing")],
    ),
    ("encounter id empty", add("encounters", encounter_id=""), [("encounters", "encounters.encounter_id: missing")]),
    (
        "patient id of encounter missing",
        add("encounters", patient_id=""),
        [("encounters", "encounters.patient_id: missing")],
    ),
    (
        "unknown patient",
        add("encounters", patient_id="P-404"),
        [("encounters", "encounters.patient_id: unknown patient")],
    ),
    (
        "duplicate encounter id",
        add("encounters", encounter_id="E-9001", centre_id="C09"),
        [("encounters", "encounters.encounter_id: duplicate of an earlier encounter")],
    ),
    (
        "encounter off the partition day",
        add("encounters", encounter_date=pd.Timestamp("2024-03-16")),
        [("encounters", "encounters.encounter_date: after the partition day")],
    ),
    (
        "encounter before the partition day",
        add("encounters", encounter_date=pd.Timestamp("2023-12-31")),
        [("encounters", "encounters.encounter_date: before the partition day")],
    ),
    (
        "encounter date missing",
        add("encounters", encounter_date=pd.NaT),
        [("encounters", "encounters.encounter_date: missing or not a date")],
    ),
    (
        "centre level invalid",
        add("encounters", centre_level="quaternary"),
        [
            (
                "encounters",
                "encounters.centre_level: not one of primary, secondary, tertiary",
            )
        ],
    ),
    (
        "consultation type invalid",
        add("encounters", consultation_type="home_visit"),
        [
            (
                "encounters",
                "encounters.consultation_type: not one of primary_care, emergency, outpatient_specialist, inpatient, "
                "telehealth",
            )
        ],
    ),
    ("centre missing", add("encounters", centre_id=None), [("encounters", "encounters.centre_id: missing")]),
    ("region missing", add("encounters", region=""), [("encounters", "encounters.region: missing")]),
    (
        "negative visits",
        add("encounters", prior_visits_365d=-1),
        [("encounters", "encounters.prior_visits_365d: negative visit count")],
    ),
    (
        "born after the encounter",
        add_patient_with_encounter(birth_date=pd.Timestamp("2024-04-01")),
        [("encounters", "encounters.age_years: birth date after the encounter date")],
    ),
    (
        "older than 120",
        add_patient_with_encounter(birth_date=pd.Timestamp("1900-01-01")),
        [("encounters", "encounters.age_years: age above 120 years")],
    ),
    (
        "temperature 60",
        add("vitals", loinc_code="8310-5", value=60.0, unit="Cel"),
        [("vitals", "vitals.value: temperature outside plausible range 30-45 Cel")],
    ),
    (
        "heart rate 300",
        add("vitals", value=300.0),
        [("vitals", "vitals.value: heart rate outside plausible range 20-250 /min")],
    ),
    (
        "spo2 under its alternative code",
        add("vitals", loinc_code="2708-6", value=30.0, unit="%"),
        [("vitals", "vitals.value: spo2 outside plausible range 50-100 %")],
    ),
    (
        "unknown loinc",
        add("vitals", loinc_code="1234-5"),
        [("vitals", "vitals.loinc_code: unknown LOINC code")],
    ),
    ("loinc missing", add("vitals", loinc_code=None), [("vitals", "vitals.loinc_code: missing")]),
    (
        "unit mismatch",
        add("vitals", loinc_code="8310-5", value=100.4, unit="[degF]"),
        [("vitals", "vitals.unit: not the unit of temperature, expected 'Cel'")],
    ),
    ("value missing", add("vitals", value=np.nan), [("vitals", "vitals.value: missing or not a number")]),
    (
        "vital of unknown encounter",
        add("vitals", encounter_id="E-404"),
        [("vitals", "vitals.encounter_id: unknown encounter")],
    ),
    ("vital without encounter", add("vitals", encounter_id=None), [("vitals", "vitals.encounter_id: missing")]),
    (
        "hpo id malformed",
        add("symptoms", hpo_id="HP:12"),
        [("symptoms", "symptoms.hpo_id: not an HPO id (HP:nnnnnnn)")],
    ),
    (
        "hpo id unknown",
        add("symptoms", hpo_id="HP:9999999"),
        [("symptoms", "symptoms.hpo_id: unknown HPO term")],
    ),
    ("severity above 10", add("symptoms", severity=11.0), [("symptoms", "symptoms.severity: outside 0-10")]),
    ("severity below 0", add("symptoms", severity=-1.0), [("symptoms", "symptoms.severity: outside 0-10")]),
    (
        "negative duration",
        add("symptoms", duration_days=-2.0),
        [("symptoms", "symptoms.duration_days: negative duration")],
    ),
    ("present missing", add("symptoms", present=None), [("symptoms", "symptoms.present: missing")]),
    (
        "unknown icd10 comorbidity",
        add("comorbidities", icd10_code="Q99"),
        [("comorbidities", "comorbidities.icd10_code: unknown ICD-10 code")],
    ),
    (
        "malformed icd10 comorbidity",
        add("comorbidities", icd10_code="I1O"),
        [("comorbidities", f"comorbidities.icd10_code: {NOT_ICD10}")],
    ),
    (
        "comorbidity missing",
        add("comorbidities", icd10_code=None),
        [("comorbidities", "comorbidities.icd10_code: missing")],
    ),
]


# A bad diagnosis row of E-9002: the row, and its encounter held back with every child row (never relabelled).
DIAGNOSIS_RULE_CASES = [
    (
        "unknown icd10 diagnosis",
        add("diagnoses", code="Z99.99"),
        [("diagnoses", "diagnoses.code: unknown ICD-10 code")],
    ),
    (
        "malformed icd10 diagnosis",
        add("diagnoses", code="ZZZ.9"),
        [("diagnoses", f"diagnoses.code: {NOT_ICD10}")],
    ),
    (
        "unknown orpha code",
        add("diagnoses", code_system="ORPHA", code="ORPHA:999999"),
        [("diagnoses", "diagnoses.code: unknown ORPHA code")],
    ),
    (
        "orpha code without prefix",
        add("diagnoses", code_system="ORPHA", code="558"),
        [("diagnoses", "diagnoses.code: not an ORPHA code (ORPHA:<number>)")],
    ),
    (
        "unknown code system",
        add("diagnoses", code_system="SNOMED", code="233604007"),
        [
            ("diagnoses", "diagnoses.code: identifier content (phone)"),  # a 9-digit code: digits of a phone number
            ("diagnoses", "diagnoses.code_system: not one of ICD10, ORPHA"),
        ],
    ),
    ("rank 0", add("diagnoses", rank=0), [("diagnoses", "diagnoses.rank: not a positive integer")]),
]
HELD_BACK_E9002 = [
    ("encounters", f"encounters.encounter_id: {LABEL_HELD_BACK}"),
    ("vitals", "vitals.encounter_id: encounter quarantined"),
    ("symptoms", "symptoms.encounter_id: encounter quarantined"),
    ("diagnoses", "diagnoses.encounter_id: encounter quarantined"),  # its I10 row
    ("diagnoses", "diagnoses.encounter_id: encounter quarantined"),  # the bad row, also
    ("comorbidities", "comorbidities.encounter_id: encounter quarantined"),
    ("comorbidities", "comorbidities.encounter_id: encounter quarantined"),
]


def rules(reasons: pd.Series) -> pd.Series:
    """Reasons without their row number."""
    return reasons.str.replace(r" \(row \d+\)$", "", regex=True)


def quarantine_pairs(quarantined: pd.DataFrame) -> list[tuple[str, str]]:
    return sorted(zip(quarantined["table"], rules(quarantined["reason"]), strict=True))


def test_clean_extract_passes_whole() -> None:
    raw = raw_extract()
    result = validate(raw)
    assert result.quarantined.empty
    assert list(result.quarantined.columns) == list(schema.QUARANTINE_COLUMNS)
    for table in schema.RAW_TABLES:
        assert result.counts[table] == {"in": len(raw[table]), "valid": len(raw[table]), "quarantined": 0}
        assert list(result.valid[table].columns) == list(schema.RAW_COLUMNS[table])
    expected_vitals = raw[schema.RAW_VITALS].replace({"loinc_code": {"2708-6": "59408-5"}})
    pd.testing.assert_frame_equal(result.valid[schema.RAW_VITALS], expected_vitals)
    pd.testing.assert_frame_equal(result.valid[schema.RAW_ENCOUNTERS], raw[schema.RAW_ENCOUNTERS])


@pytest.mark.parametrize(
    ("mutate", "expected"), [case[1:] for case in RULE_CASES], ids=[case[0] for case in RULE_CASES]
)
def test_each_rule_quarantines_the_bad_row_only(
    mutate: Callable[[dict[str, pd.DataFrame]], dict[str, pd.DataFrame]], expected: list[tuple[str, str]]
) -> None:
    clean = raw_extract()
    tables = mutate(clean)
    result = validate(tables)
    assert quarantine_pairs(result.quarantined) == sorted(expected)
    for table in schema.RAW_TABLES:
        counts = result.counts[table]
        assert counts["in"] == len(tables[table]) == counts["valid"] + counts["quarantined"]
        bad_rows = int(any(t == table for t, _ in expected))  # every case adds at most one bad row per table
        assert counts["quarantined"] == bad_rows, f"a good row of {table} was quarantined"
        assert len(result.valid[table]) == counts["valid"]
        assert len(result.valid[table]) >= len(clean[table])


@pytest.mark.parametrize(
    ("mutate", "expected"), [c[1:] for c in DIAGNOSIS_RULE_CASES], ids=[c[0] for c in DIAGNOSIS_RULE_CASES]
)
def test_a_bad_diagnosis_row_holds_back_its_encounter_and_children(
    mutate: Callable[[dict[str, pd.DataFrame]], dict[str, pd.DataFrame]], expected: list[tuple[str, str]]
) -> None:
    clean = raw_extract()
    tables = mutate(clean)
    result = validate(tables)
    assert quarantine_pairs(result.quarantined) == sorted(expected + HELD_BACK_E9002)
    assert "E-9002" not in set(result.valid[schema.RAW_ENCOUNTERS]["encounter_id"])
    for table in schema.RAW_TABLES:
        counts = result.counts[table]
        assert counts["in"] == len(tables[table]) == counts["valid"] + counts["quarantined"]
        if table != schema.RAW_PATIENTS:
            assert "E-9002" not in set(result.valid[table]["encounter_id"])
            assert counts["quarantined"] == int(tables[table]["encounter_id"].eq("E-9002").sum())
    held = result.quarantined[result.quarantined["table"] == schema.RAW_ENCOUNTERS]
    assert held["reason"].tolist() == [f"encounters.encounter_id: {LABEL_HELD_BACK} (row 1)"]
    assert held["row_ref"].tolist() == [Pseudonymizer(TEST_KEY)("E-9002")]


@pytest.mark.parametrize(
    ("code_system", "code"),
    [("ICD10", "I10"), ("ORPHA", "ORPHA:778")],
)
def test_an_exact_duplicate_diagnosis_row_holds_nothing_back(code_system: str, code: str) -> None:
    row = {"encounter_id": "E-9003", "code_system": code_system, "code": code, "rank": 3}
    result = validate(with_rows(raw_extract(), schema.RAW_DIAGNOSES, [row, row]))
    assert quarantine_pairs(result.quarantined) == [("diagnoses", "diagnoses.row: exact duplicate of an earlier row")]
    assert result.counts[schema.RAW_ENCOUNTERS]["quarantined"] == 0


def test_a_bad_diagnosis_row_of_an_unknown_or_quarantined_encounter_holds_back_nothing_else() -> None:
    clean = raw_extract()
    rows = [{**DIAGNOSIS, "encounter_id": "E-404", "code": "ZZZ.9"}, {**DIAGNOSIS, "encounter_id": None, "rank": 0}]
    tables = with_rows(clean, schema.RAW_DIAGNOSES, rows)
    tables[schema.RAW_ENCOUNTERS].loc[tables[schema.RAW_ENCOUNTERS]["encounter_id"] == "E-9001", "centre_level"] = "x"
    tables = with_rows(tables, schema.RAW_DIAGNOSES, [{**DIAGNOSIS, "encounter_id": "E-9001", "code": "ZZZ.9"}])
    result = validate(tables)
    encounter_reasons = rules(result.quarantined.loc[result.quarantined["table"] == "encounters", "reason"])
    assert encounter_reasons.tolist() == ["encounters.centre_level: not one of primary, secondary, tertiary"]
    assert result.counts[schema.RAW_ENCOUNTERS]["quarantined"] == 1


def test_a_predicate_accepts_any_well_formed_icd10_code() -> None:
    rows = [{**DIAGNOSIS, "code": code} for code in ("S72.001A", "U07.1", "Z00.00")]
    tables = with_rows(raw_extract(), schema.RAW_DIAGNOSES, rows)
    tables = with_rows(tables, schema.RAW_COMORBIDITIES, [{**COMORBIDITY, "icd10_code": "E78.5"}])
    assert validate(tables, known_icd10=is_icd10_code).quarantined.empty
    by_set = validate(tables)
    assert set(rules(by_set.quarantined["reason"])) >= {"diagnoses.code: unknown ICD-10 code"}


def test_systolic_below_diastolic_quarantines_both_readings() -> None:
    tables = with_rows(
        raw_extract(),
        schema.RAW_VITALS,
        [
            {"encounter_id": "E-9002", "loinc_code": "8480-6", "value": 70.0, "unit": "mm[Hg]"},
            {"encounter_id": "E-9002", "loinc_code": "8462-4", "value": 90.0, "unit": "mm[Hg]"},
        ],
    )
    result = validate(tables)
    assert quarantine_pairs(result.quarantined) == [
        ("vitals", "vitals.value: diastolic above systolic in the same encounter"),
        ("vitals", "vitals.value: systolic below diastolic in the same encounter"),
    ]
    assert result.counts[schema.RAW_VITALS]["quarantined"] == 2
    assert result.valid[schema.RAW_VITALS]["encounter_id"].eq("E-9002").sum() == 1  # its respiratory rate stays


@pytest.mark.parametrize("table", [schema.RAW_PATIENTS, schema.RAW_VITALS, schema.RAW_SYMPTOMS, schema.RAW_DIAGNOSES])
def test_exact_duplicate_rows_keep_the_first(table: str) -> None:
    clean = raw_extract()
    first_row = clean[table].iloc[0].to_dict()
    result = validate(with_rows(clean, table, [first_row]))
    assert quarantine_pairs(result.quarantined) == [(table, f"{table}.row: exact duplicate of an earlier row")]
    assert result.counts[table] == {"in": len(clean[table]) + 1, "valid": len(clean[table]), "quarantined": 1}


def test_conflicting_patient_rows_quarantine_the_patient_and_everything_below() -> None:
    clean = raw_extract()
    conflicting = {**clean[schema.RAW_PATIENTS].iloc[0].to_dict(), "birth_date": pd.Timestamp("1981-06-01")}
    result = validate(with_rows(clean, schema.RAW_PATIENTS, [conflicting]))
    q = result.quarantined
    patients = q[q["table"] == schema.RAW_PATIENTS]
    assert rules(patients["reason"]).tolist() == ["patients.patient_id: conflicting rows for the same patient id"] * 2
    assert rules(q.loc[q["table"] == schema.RAW_ENCOUNTERS, "reason"]).tolist() == [
        "encounters.patient_id: patient quarantined"
    ]
    e9001_children = {t: int(clean[t]["encounter_id"].eq("E-9001").sum()) for t in schema.RAW_TABLES[2:]}
    for table, n_children in e9001_children.items():
        assert result.counts[table]["quarantined"] == n_children
        reasons = rules(q.loc[q["table"] == table, "reason"])
        assert reasons.eq(f"{table}.encounter_id: encounter quarantined").all()
    assert result.counts[schema.RAW_PATIENTS] == {"in": 4, "valid": 2, "quarantined": 2}
    assert "E-9001" not in set(result.valid[schema.RAW_ENCOUNTERS]["encounter_id"])


def test_children_of_a_bad_encounter_go_with_it() -> None:
    clean = raw_extract()
    tables = {t: f.copy() for t, f in clean.items()}
    tables[schema.RAW_ENCOUNTERS].loc[tables[schema.RAW_ENCOUNTERS]["encounter_id"] == "E-9002", "centre_level"] = "x"
    result = validate(tables)
    for table in schema.RAW_TABLES[2:]:
        n_children = int(clean[table]["encounter_id"].eq("E-9002").sum())
        assert result.counts[table]["quarantined"] == n_children
        assert "E-9002" not in set(result.valid[table]["encounter_id"])


def test_a_row_with_two_problems_is_listed_twice_and_counted_once() -> None:
    clean = raw_extract()
    bad = {"encounter_id": "E-404", "loinc_code": "1234-5", "value": 1.0, "unit": "x"}
    result = validate(with_rows(clean, schema.RAW_VITALS, [bad]))
    assert quarantine_pairs(result.quarantined) == [
        ("vitals", "vitals.encounter_id: unknown encounter"),
        ("vitals", "vitals.loinc_code: unknown LOINC code"),
    ]
    assert result.quarantined["row_ref"].nunique() == 1
    assert result.counts[schema.RAW_VITALS] == {
        "in": len(clean["vitals"]) + 1,
        "valid": len(clean["vitals"]),
        "quarantined": 1,
    }


def test_an_off_day_encounter_date_is_not_quoted_in_the_quarantine() -> None:
    """The partition day is the one date element published; the raw encounter date is an identifier."""
    result = validate(add("encounters", encounter_date=pd.Timestamp("2024-03-16"))(raw_extract()))
    q = result.quarantined
    assert len(q) == 1
    assert "2024-03-16" not in q.loc[0, "reason"] + q.loc[0, "row_json"]
    assert "encounter_date" not in json.loads(q.loc[0, "row_json"])


def test_row_ref_is_the_pseudonym_and_row_json_has_no_identifier() -> None:
    clean = raw_extract()
    conflicting = {**clean[schema.RAW_PATIENTS].iloc[0].to_dict(), "birth_date": pd.Timestamp("1981-06-01")}
    tables = with_rows(clean, schema.RAW_PATIENTS, [conflicting])
    tables = with_rows(tables, schema.RAW_ENCOUNTERS, [{**ENCOUNTER, "encounter_id": None, "patient_id": "P-1002"}])
    result = validate(tables)
    q = result.quarantined
    pseudonymize = Pseudonymizer(TEST_KEY)
    assert q["row_ref"].str.fullmatch(r"[0-9a-f]{32}").all()
    patient_refs = set(q.loc[q["table"] == schema.RAW_PATIENTS, "row_ref"])
    assert patient_refs == {pseudonymize("P-1001")}
    child_refs = set(q.loc[q["table"].isin(schema.RAW_TABLES[2:]), "row_ref"])
    assert child_refs == {pseudonymize("E-9001")}

    rows = [json.loads(text) for text in q["row_json"]]
    assert all(set(row).isdisjoint(IDENTIFIER_COLUMNS) for row in rows)
    encounter_rows = [json.loads(t) for t in q.loc[q["table"] == schema.RAW_ENCOUNTERS, "row_json"]]
    assert {r["encounter_key"] for r in encounter_rows} == {pseudonymize("E-9001"), None}
    assert {r["patient_key"] for r in encounter_rows} == {pseudonymize("P-1001"), pseudonymize("P-1002")}
    text = " ".join(q["row_json"]) + " ".join(q["reason"]) + " ".join(q["row_ref"])
    identifiers = [value for value in PATIENT_ROWS[0][:10]] + ["1981-06-01", "1980-06-01", "E-9001", "P-1002"]
    leaked = [value for value in identifiers if value in text]
    assert leaked == []


def test_known_hpo_may_be_a_predicate() -> None:
    tables = add("symptoms", hpo_id="HP:9999999")(raw_extract())
    by_set = validate(tables)
    by_predicate = validate(tables, known_hpo=lambda hpo_id: hpo_id in KNOWN_HPO)
    pd.testing.assert_frame_equal(by_set.quarantined, by_predicate.quarantined)
    assert by_set.counts == by_predicate.counts


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda t: {k: v for k, v in t.items() if k != "symptoms"}, "missing ['symptoms']"),
        (lambda t: {**t, "labs": t["vitals"]}, "unexpected ['labs']"),
        (lambda t: {**t, "vitals": t["vitals"].drop(columns="unit")}, "vitals: missing columns ['unit']"),
        (lambda t: {**t, "patients": t["patients"].assign(ssn="x")}, "unexpected columns ['ssn']"),
    ],
    ids=["missing table", "extra table", "missing column", "extra column"],
)
def test_contract_violations_raise_naming_table_and_column(
    mutate: Callable[[dict[str, pd.DataFrame]], dict[str, pd.DataFrame]], message: str
) -> None:
    with pytest.raises(ExtractSchemaError, match=message.replace("[", r"\[").replace("]", r"\]")):
        validate(mutate(raw_extract()))


def test_partition_day_must_be_iso() -> None:
    with pytest.raises(ValueError, match="partition_day: '15/03/2024' is not YYYY-MM-DD"):
        validate(raw_extract(), partition_day="15/03/2024")


def test_many_rows_with_planted_errors_are_found_exactly() -> None:
    """Thousands of rows through the vectorised path: exactly the planted rows are quarantined."""
    n = 4000
    ids = np.array([f"E{i:05d}" for i in range(n)], dtype=object)
    pids = np.array([f"P{i:05d}" for i in range(n)], dtype=object)
    patients = pd.DataFrame({c: pids if c == "patient_id" else "x" for c in schema.RAW_COLUMNS["patients"]})
    patients["birth_date"] = pd.Timestamp("1970-05-05")
    patients["sex"] = np.where(np.arange(n) % 2, "F", "M").astype(object)
    patients.loc[::500, "sex"] = "?"  # 8 bad patients -> 8 encounters and their children follow
    encounters = pd.DataFrame(
        {
            "encounter_id": ids,
            "patient_id": pids,
            "encounter_date": DAY,
            "centre_id": "C01",
            "centre_level": "primary",
            "region": "North",
            "consultation_type": "emergency",
            "prior_visits_365d": pd.array(np.zeros(n, dtype=int), dtype="Int64"),
        }
    )
    encounters.loc[7::400, "consultation_type"] = "?"  # 10 more bad encounters
    vitals = pd.DataFrame(
        {"encounter_id": np.repeat(ids, 2), "loinc_code": np.tile(["8310-5", "8867-4"], n).astype(object)}
    )
    vitals["value"] = np.tile([37.0, 80.0], n)
    vitals["unit"] = np.tile(["Cel", "/min"], n).astype(object)
    vitals.loc[3::250, "value"] = 999.0  # 32 impossible heart rates (odd rows)
    symptoms = pd.DataFrame(
        {"encounter_id": ids, "hpo_id": "HP:0001945", "present": True, "severity": 5.0, "duration_days": 2.0}
    )
    diagnoses = pd.DataFrame({"encounter_id": ids, "code_system": "ICD10", "code": "J18.9", "rank": 1})
    comorbidities = pd.DataFrame({"encounter_id": ids[:10], "icd10_code": "I10"})
    tables = {
        "patients": patients,
        "encounters": encounters,
        "vitals": vitals,
        "symptoms": symptoms,
        "diagnoses": diagnoses,
        "comorbidities": comorbidities,
    }
    result = validate(tables)

    bad_encounters = set(range(0, n, 500)) | set(range(7, n, 400))
    bad_vital_rows = {2 * e + k for e in bad_encounters for k in (0, 1)} | set(range(3, 2 * n, 250))
    assert result.counts["patients"]["quarantined"] == 8
    assert result.counts["encounters"]["quarantined"] == len(bad_encounters) == 18
    assert result.counts["vitals"]["quarantined"] == len(bad_vital_rows)
    assert result.counts["symptoms"]["quarantined"] == 18
    assert result.counts["comorbidities"]["quarantined"] == 2  # E00000 and E00007 are bad encounters
    assert set(result.valid["encounters"]["encounter_id"]) == {ids[i] for i in range(n) if i not in bad_encounters}
    heart_rate = result.quarantined["reason"].str.startswith("vitals.value: heart rate outside")
    assert heart_rate.sum() == 32


def test_validation_does_not_modify_its_input() -> None:
    raw = raw_extract()
    before = {t: f.copy() for t, f in raw.items()}
    validate_extract(
        raw,
        partition_day=PARTITION_DAY,
        known_icd10=KNOWN_ICD10,
        known_orpha=KNOWN_ORPHA,
        known_hpo=KNOWN_HPO,
        pseudonymize=Pseudonymizer(TEST_KEY),
    )
    for table, frame in before.items():
        pd.testing.assert_frame_equal(raw[table], frame)


@pytest.mark.parametrize(
    ("table", "changes", "kind"),
    [
        ("symptoms", {"hpo_id": "someone@example.org"}, "email"),
        ("diagnoses", {"code": "078-05-1120"}, "ssn"),
        ("vitals", {"unit": "Aurelia Quenby"}, "patient_value"),
        ("encounters", {"consultation_type": "bart.o@example.org"}, "email"),
        ("encounters", {"region": "https://example.org"}, "url"),
        ("comorbidities", {"icd10_code": "10.1.2.3"}, "ip_address"),
    ],
)
def test_identifier_content_is_quarantined_with_a_fingerprint_and_no_value(
    table: str, changes: dict[str, str], kind: str
) -> None:
    result = validate(add(table, **changes)(raw_extract()))
    (column, value), q = next(iter(changes.items())), result.quarantined
    own = q[(q["table"] == table) & (q["field"] == column)]
    row = len(raw_extract()[table])  # the appended row
    assert own["reason"].tolist() == [f"{table}.{column}: identifier content ({kind}) (row {row})"]
    kept = json.loads(own["row_json"].iloc[0])
    assert kept[column] == fingerprint(value, Pseudonymizer(TEST_KEY))
    assert kept[column] == fingerprint(value, Pseudonymizer(TEST_KEY))  # the same value, the same fingerprint
    assert all(v is None or not isinstance(v, str) or v.startswith("fp:") or value not in v for v in kept.values())
    assert value not in " ".join(q["reason"]) + " ".join(q["row_json"])


def test_row_json_keeps_only_values_that_passed_their_checks() -> None:
    result = validate(add("encounters", centre_level="quaternary", region="Leocadia", centre_id="X-1")(raw_extract()))
    kept = json.loads(result.quarantined["row_json"].iloc[0])
    assert kept["consultation_type"] == "primary_care"
    for column in ("centre_level", "region", "centre_id"):
        assert kept[column].startswith("fp:"), column


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [c[1:] for c in RULE_CASES + DIAGNOSIS_RULE_CASES],
    ids=[c[0] for c in RULE_CASES + DIAGNOSIS_RULE_CASES],
)
def test_no_reason_quotes_a_value(
    mutate: Callable[[dict[str, pd.DataFrame]], dict[str, pd.DataFrame]], expected: list[tuple[str, str]]
) -> None:
    clean = raw_extract()
    tables = mutate(clean)
    q = validate(tables).quarantined
    for table in schema.RAW_TABLES:
        for value in tables[table].iloc[len(clean[table]) :].astype(str).to_numpy().ravel():
            vocabulary = {*schema.VITAL_UNITS, *schema.CODE_SYSTEMS, "primary"}  # named by rules, not row values
            if len(value) > 2 and value not in {"nan", "None", "NaT", "True", "False", *vocabulary}:
                assert all(value not in reason for reason in q["reason"]), value


def test_row_numbers_of_the_whole_table_are_named() -> None:
    tables = add("vitals", loinc_code="1234-5")(raw_extract())
    n = len(tables["vitals"])
    numbers = {t: np.arange(len(f)) + 1000 for t, f in tables.items()}
    q = validate(tables, row_numbers=numbers).quarantined
    assert q["reason"].tolist() == [f"vitals.loinc_code: unknown LOINC code (row {999 + n})"]
