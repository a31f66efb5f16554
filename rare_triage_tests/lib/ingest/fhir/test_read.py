"""FHIR R4 Bundles to the raw tables: fixture round trips, mapping rules and validation errors."""

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from rare_triage.lib.ingest.fhir.bundle import RARE_TRIAGE_FHIR_BASE
from rare_triage.lib.ingest.fhir.counts import ImportCounts
from rare_triage.lib.ingest.fhir.read import FhirFile, bundle_to_tables, read_fhir_file
from rare_triage.lib.ingest.raw_contract import Reject
from rare_triage.lib.schema import RAW_COLUMNS, RAW_DTYPES, RAW_STRING_DTYPE, RAW_TABLES
from rare_triage_tests.fixtures import FHIR_FIXTURES

FIXTURES = FHIR_FIXTURES
MARFAN = FIXTURES / "collection_marfan_outpatient.json"
PNEUMONIA = FIXTURES / "transaction_pneumonia_emergency.json"
PRIMARY_CARE = FIXTURES / "searchset_primary_care.ndjson"
FIXTURE_FILES = (MARFAN, PNEUMONIA, PRIMARY_CARE)

LOINC = "http://loinc.org"
SEX = ("male", "female", "other", "unknown")
PRIOR_VISITS = f"{RARE_TRIAGE_FHIR_BASE}/StructureDefinition/prior-visits-365d"
HPO = "http://human-phenotype-ontology.org"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"


def assert_contract(tables: dict[str, pd.DataFrame]) -> None:
    """Every raw table, exactly the contract columns in order, the contract dtypes (schema.RAW_DTYPES), str ids."""
    assert set(tables) == set(RAW_TABLES)
    for table, frame in tables.items():
        assert tuple(frame.columns) == RAW_COLUMNS[table], table
        for column in frame.columns:
            expected = RAW_DTYPES[table][column]
            assert str(frame[column].dtype) == expected, (table, column, frame[column].dtype)
            if expected == RAW_STRING_DTYPE:
                assert all(v is pd.NA or isinstance(v, str) for v in frame[column]), (table, column)


def mapped(document: dict[str, Any], counts: ImportCounts | None = None) -> dict[str, pd.DataFrame]:
    """The raw tables of one Bundle, every resource of which must be mapped (no reject)."""
    result = bundle_to_tables(document, counts=counts)
    assert result.rejects == (), result.rejects
    return result.tables


def read_tables(source: Path | bytes, name: str | None = None, counts: ImportCounts | None = None) -> dict[str, Any]:
    """The raw tables of a FHIR file, every resource of which must be mapped (no reject)."""
    result = read_fhir_file(source, name=name, counts=counts)
    assert result.rejects == (), result.rejects
    return result.tables


def only_reject(result: FhirFile) -> Reject:
    assert len(result.rejects) == 1, result.rejects
    return result.rejects[0]


def bundle(*resources: dict[str, Any], bundle_type: str = "collection") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": bundle_type, "entry": [{"resource": r} for r in resources]}


def patient(pid: str = "p1", **fields: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "gender": "female", "birthDate": "1990-01-01", **fields}


def encounter(eid: str = "e1", class_code: str = "AMB", **fields: Any) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "id": eid,
        "status": "finished",
        "class": {"system": ACT, "code": class_code},
        "subject": {"reference": "Patient/p1"},
        "period": {"start": "2024-03-04T10:00:00+01:00"},
        **fields,
    }


def hpo_observation(oid: str, hpo_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": HPO, "code": hpo_id}]},
        "encounter": {"reference": "Encounter/e1"},
        **fields,
    }


def loinc_observation(oid: str, code: str, value: float, unit: str, **fields: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "encounter": {"reference": "Encounter/e1"},
        "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
        **fields,
    }


def condition(cid: str, category: str, system: str, code: str, **fields: Any) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": cid,
        "category": [{"coding": [{"system": CATEGORY, "code": category}]}],
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": "Patient/p1"},
        **fields,
    }


def rows(frame: pd.DataFrame, *columns: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in frame[list(columns)].itertuples(index=False)]


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.name)
def test_fixture_files_map_to_exact_contract(path: Path) -> None:
    tables = read_tables(path)
    assert_contract(tables)
    assert len(tables["patients"]) >= 1
    assert len(tables["encounters"]) >= 1
    assert len(tables["symptoms"]) >= 1


def test_bytes_and_path_give_the_same_tables() -> None:
    from_path = read_tables(PRIMARY_CARE)
    from_bytes = read_tables(PRIMARY_CARE.read_bytes())
    for table in RAW_TABLES:
        pd.testing.assert_frame_equal(from_path[table], from_bytes[table])


def test_collection_bundle_patient_and_encounter() -> None:
    tables = read_tables(MARFAN)
    person = tables["patients"].iloc[0].to_dict()
    assert person == {
        "patient_id": "PAT-7731",
        "mrn": "MRN-00482913",
        "national_id": "2070559350123",
        "given_name": "Camille Anne",
        "family_name": "Lefebvre",
        "phone": "+33 6 12 34 56 78",
        "email": "camille.lefebvre@example.org",
        "street_address": "14 rue des Tilleuls, Apt 3",
        "city": "Roubaix",
        "zip_code": "59100",
        "birth_date": pd.Timestamp("2007-05-19"),
        "sex": "F",
    }
    visit = tables["encounters"].iloc[0]
    assert visit["encounter_id"] == "ENC-20240304-0017"
    assert visit["patient_id"] == "PAT-7731"
    assert visit["encounter_date"] == pd.Timestamp("2024-03-04")
    assert (visit["centre_id"], visit["centre_level"], visit["region"]) == (
        "ORG-CHU-NORD",
        "tertiary",
        "Hauts-de-France",
    )
    assert visit["consultation_type"] == "outpatient_specialist"
    assert pd.isna(visit["prior_visits_365d"])


def test_collection_bundle_vitals_keep_known_loinc_only() -> None:
    vitals = read_tables(MARFAN)["vitals"]
    assert sorted(rows(vitals, "loinc_code", "value", "unit")) == [
        ("59408-5", 98.0, "%"),
        ("8310-5", 36.8, "Cel"),
        ("8462-4", 64.0, "mm[Hg]"),
        ("8480-6", 118.0, "mm[Hg]"),
        ("8867-4", 92.0, "/min"),
        ("9279-1", 18.0, "/min"),
    ]


def test_collection_bundle_symptoms_severity_duration_and_pain_score() -> None:
    symptoms = read_tables(MARFAN)["symptoms"].set_index("hpo_id")
    assert symptoms.loc["HP:0001166", "present"]
    assert not symptoms.loc["HP:0001945", "present"]
    assert symptoms.loc["HP:0001083", "duration_days"] == pytest.approx(8 * 30.4375)
    assert symptoms.loc["HP:0002650", "duration_days"] == (dt.date(2024, 3, 4) - dt.date(2023, 9, 1)).days
    assert symptoms.loc["HP:0100749", ["severity", "duration_days"]].tolist() == [4.0, 42.0]
    # pain score 4 with no Pain row: a present Pain row carries it
    assert symptoms.loc["HP:0012531", ["present", "severity"]].tolist() == [True, 4.0]
    # the SNOMED-only problem-list item maps to HPO through hp.obo's xref (Asthma)
    assert symptoms.loc["HP:0002099", "present"]
    assert len(symptoms) == 7


def test_collection_bundle_diagnoses_and_problem_list() -> None:
    tables = read_tables(MARFAN)
    assert rows(tables["diagnoses"], "code_system", "code", "rank") == [
        ("ORPHA", "ORPHA:558", 1),
        ("ICD10", "Q87.4", 1),
        ("ICD10", "M41.2", 2),
    ]
    # problem-list item without encounter links to the patient's encounter; SNOMED-only one is ignored
    assert rows(tables["comorbidities"], "encounter_id", "icd10_code") == [("ENC-20240304-0017", "J45.9")]


def test_transaction_bundle_resolves_urn_references_and_converts_fahrenheit() -> None:
    tables = read_tables(PNEUMONIA)
    encounter_id = "8f3e2d1c-0b9a-4f7e-8d6c-5b4a3f2e1d09"
    visit = tables["encounters"].iloc[0]
    assert visit["encounter_id"] == encounter_id
    assert visit["patient_id"] == "d1c4a0b2-6e8f-4a3b-8f1e-2a9b7c3d4e51"
    assert visit["encounter_date"] == pd.Timestamp("2024-03-04")  # local day of 22:15-05:00
    assert (visit["centre_level"], visit["region"], visit["consultation_type"]) == ("secondary", "IL", "emergency")
    assert visit["prior_visits_365d"] == 2
    person = tables["patients"].iloc[0]
    assert (person["mrn"], person["national_id"], person["sex"]) == ("004417762", "999-41-7762", "M")
    temperature = tables["vitals"].set_index("loinc_code").loc["8310-5"]
    assert temperature["unit"] == "Cel"
    assert temperature["value"] == pytest.approx(39.0)
    symptoms = tables["symptoms"].set_index("hpo_id")
    assert symptoms.loc["HP:0001945", ["severity", "duration_days"]].tolist() == [7.0, 3.0]
    assert symptoms.loc["HP:0012735", "duration_days"] == pytest.approx(3.0)  # 72 h
    assert set(tables["vitals"]["encounter_id"]) == {encounter_id}
    assert rows(tables["diagnoses"], "code", "rank") == [("J18.9", 1)]
    assert rows(tables["comorbidities"], "icd10_code") == [("J44.9",)]


def test_ndjson_bundles_skip_cancelled_and_erroneous_records() -> None:
    tables = read_tables(PRIMARY_CARE)
    assert tables["encounters"]["encounter_id"].tolist() == ["ENC-20240305-0101", "ENC-20240305-0102"]
    assert tables["encounters"]["consultation_type"].tolist() == ["telehealth", "primary_care"]
    # centre from the Location's managing Organization
    assert tables["encounters"]["centre_id"].tolist() == ["ORG-MSP-ARRAS", "ORG-MSP-ARRAS"]
    assert "ENC-20240305-0103" not in set(tables["vitals"]["encounter_id"])
    assert 210.0 not in set(tables["vitals"]["value"])  # entered-in-error heart rate
    assert rows(tables["comorbidities"], "encounter_id", "icd10_code") == [("ENC-20240305-0102", "E11.9")]
    person = tables["patients"].set_index("patient_id").loc["PAT-9102"]
    assert person["birth_date"] == pd.Timestamp("1985-07-15")  # partial date imputed mid-month
    assert person["national_id"] == "1850762041088"  # NNFRA identifier


def test_ndjson_pain_scores_fill_pain_rows() -> None:
    symptoms = read_tables(PRIMARY_CARE)["symptoms"]
    pain = symptoms[symptoms["hpo_id"] == "HP:0012531"]
    assert rows(pain, "encounter_id", "present", "severity") == [
        ("ENC-20240305-0101", True, 6.0),  # existing Pain row got the score
        ("ENC-20240305-0102", False, 0.0),  # score 0 without Pain row: an absent row
    ]
    fatigue = symptoms[symptoms["hpo_id"] == "HP:0012378"].iloc[0]
    assert fatigue["duration_days"] == 14.0  # effectivePeriod.start 2024-02-20


def test_observation_without_status_is_rejected_with_resource_and_field() -> None:
    broken = hpo_observation("obs-no-status", "HP:0001945")
    del broken["status"]
    result = bundle_to_tables(bundle(patient(), encounter(), broken, hpo_observation("o2", "HP:0002315")))
    found = only_reject(result)
    assert (found.file, found.table, found.line, found.column) == ("FHIR Bundle", "symptoms", None, "status")
    assert found.rule.endswith("(Bundle entry 3)")
    assert result.tables["encounters"]["encounter_id"].tolist() == ["e1"]
    assert result.tables["symptoms"]["hpo_id"].tolist() == ["HP:0002315"]  # the other Observation is read


def test_invalid_resource_in_ndjson_names_file_and_line(tmp_path: Path) -> None:
    good = json.loads(PRIMARY_CARE.read_text().splitlines()[0])
    bad = copy.deepcopy(good)
    bad["entry"][0]["resource"]["period"]["start"] = "05/03/2024"
    path = tmp_path / "broken.ndjson"
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    result = read_fhir_file(path)
    found = only_reject(result)
    assert (found.file, found.table, found.line, found.column) == (str(path), "encounters", 2, "period.start")
    assert found.rule.endswith("(Bundle entry 1)")
    assert "05/03/2024" not in str(found)
    # line 1 is read; line 2 repeats it but for its encounter, which is left out with its Observations
    alone = read_tables(json.dumps(good).encode(), name="good.ndjson")
    for table in RAW_TABLES:
        pd.testing.assert_frame_equal(result.tables[table], alone[table], obj=table)
    assert result.counts.observations_left_out > 0


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"resourceType": "Patient", "id": "p1"}, ("resourceType", "expected a FHIR Bundle, got Patient")),
        ({"resourceType": "Bundle", "type": "document", "entry": []}, ("type", "'document' is not one of")),
        ({"resourceType": "Bundle", "entry": []}, ("type", "")),
    ],
)
def test_non_bundles_and_unsupported_bundle_types_are_one_reject(
    document: dict[str, Any], message: tuple[str, str]
) -> None:
    result = bundle_to_tables(document)
    found = only_reject(result)
    assert (found.table, found.line, found.column) == ("encounters", None, message[0])
    assert found.rule.startswith(message[1])
    assert all(frame.empty for frame in result.tables.values())


def test_unknown_resources_and_codes_are_ignored() -> None:
    tables = mapped(
        bundle(
            patient(),
            encounter(),
            {"resourceType": "MedicationRequest", "id": "m1", "unexpected": "not validated"},
            loinc_observation("weight", "29463-7", 70.0, "kg"),
            loinc_observation("hba1c", "4548-4", 6.1, "%", encounter=None),
        )
    )
    assert tables["vitals"].empty
    assert len(tables["encounters"]) == 1


@pytest.mark.parametrize(
    ("class_code", "extra", "expected"),
    [
        ("AMB", {}, "primary_care"),
        (
            "AMB",
            {"serviceType": {"coding": [{"system": "http://snomed.info/sct", "code": "394579002"}]}},
            "outpatient_specialist",
        ),
        (
            "AMB",
            {"type": [{"coding": [{"system": "http://snomed.info/sct", "code": "11429006"}]}]},
            "outpatient_specialist",
        ),
        ("EMER", {}, "emergency"),
        ("IMP", {}, "inpatient"),
        ("ACUTE", {}, "inpatient"),
        ("VR", {}, "telehealth"),
        (
            "AMB",
            {
                "type": [
                    {
                        "coding": [
                            {"system": f"{RARE_TRIAGE_FHIR_BASE}/CodeSystem/consultation-type", "code": "telehealth"}
                        ]
                    }
                ]
            },
            "telehealth",
        ),
        ("HH", {}, "HH"),  # unmapped: passed through for governance to quarantine
    ],
)
def test_consultation_type_from_encounter_class(class_code: str, extra: dict[str, Any], expected: str) -> None:
    tables = mapped(bundle(patient(), encounter(class_code=class_code, **extra)))
    assert tables["encounters"]["consultation_type"].tolist() == [expected]


def test_ambulatory_visit_at_a_tertiary_centre_is_specialist() -> None:
    hospital = {
        "resourceType": "Organization",
        "id": "org-1",
        "type": [{"text": "Tertiary"}],
        "address": [{"state": "Bretagne"}],
    }
    tables = mapped(bundle(hospital, patient(), encounter(serviceProvider={"reference": "Organization/org-1"})))
    assert rows(tables["encounters"], "centre_id", "centre_level", "region", "consultation_type") == [
        ("org-1", "tertiary", "Bretagne", "outpatient_specialist")
    ]


def test_centre_outside_the_bundle_keeps_its_id_with_explicit_unknowns() -> None:
    tables = mapped(bundle(patient(), encounter(serviceProvider={"reference": "Organization/C09"})))
    assert rows(tables["encounters"], "centre_id", "centre_level", "region") == [("C09", "primary", "other")]


@pytest.mark.parametrize(
    ("gender", "sex"), [("male", "M"), ("female", "F"), ("other", "U"), ("unknown", "U"), (None, "U")]
)
def test_gender_to_sex(gender: str | None, sex: str) -> None:
    person = patient()
    person["gender"] = gender
    assert mapped(bundle(person))["patients"]["sex"].tolist() == [sex]


def test_invalid_gender_rejects_the_patient_naming_the_field() -> None:
    result = bundle_to_tables(bundle(patient(gender="mal"), encounter()))
    found = only_reject(result)
    assert (found.table, found.column) == ("patients", "gender")
    assert found.rule == f"not one of {', '.join(SEX)} (Bundle entry 1)"
    assert result.tables["patients"].empty
    # its encounter is read: governance quarantines it (unknown patient), as for a CSV patient row rejected
    assert result.tables["encounters"]["patient_id"].tolist() == ["p1"]


@pytest.mark.parametrize(
    ("value", "present"),
    [
        ({"valueCodeableConcept": {"coding": [{"system": LOINC, "code": "LA9633-4"}]}}, [True]),
        ({"valueCodeableConcept": {"coding": [{"system": LOINC, "code": "LA9634-2"}]}}, [False]),
        ({"valueBoolean": False}, [False]),
        ({}, [True]),  # a recorded phenotype without value is present
        ({"dataAbsentReason": {"coding": [{"code": "asked-unknown"}]}}, []),
    ],
)
def test_hpo_observation_presence(value: dict[str, Any], present: list[bool]) -> None:
    tables = mapped(bundle(patient(), encounter(), hpo_observation("o1", "HP:0001250", **value)))
    assert tables["symptoms"]["present"].tolist() == present


def test_hpo_observation_with_unknown_answer_is_rejected_naming_the_field() -> None:
    answer = {"valueCodeableConcept": {"coding": [{"system": LOINC, "code": "LA4489-6"}]}}
    result = bundle_to_tables(bundle(patient(), encounter(), hpo_observation("o1", "HP:0001250", **answer)))
    found = only_reject(result)
    assert (found.table, found.column) == ("symptoms", "valueCodeableConcept")
    assert found.rule.startswith("neither present") and found.rule.endswith("(Bundle entry 3)")
    assert result.tables["symptoms"].empty and len(result.tables["encounters"]) == 1


def test_malformed_hpo_code_is_rejected_naming_the_field() -> None:
    result = bundle_to_tables(bundle(patient(), encounter(), hpo_observation("o1", "fever")))
    found = only_reject(result)
    assert (found.table, found.column) == ("symptoms", "code.coding.code")
    assert found.rule == "not an HPO id like HP:0001945 (Bundle entry 3)"


def test_a_vital_that_cannot_be_mapped_is_one_reject_of_vitals_and_adds_no_row() -> None:
    panel = loinc_observation("bp", "85354-9", 0, "mm[Hg]")
    del panel["valueQuantity"]
    panel["component"] = [
        {"code": {"coding": [{"system": LOINC, "code": "8480-6"}]}, "valueQuantity": {"value": 120, "code": "mm[Hg]"}},
        {"code": {"coding": [{"system": LOINC, "code": "8462-4"}]}, "valueQuantity": {"code": "mm[Hg]"}},
    ]
    result = bundle_to_tables(bundle(patient(), encounter(), panel, loinc_observation("hr", "8867-4", 71.0, "/min")))
    found = only_reject(result)
    assert (found.table, found.column) == ("vitals", "valueQuantity.value")
    assert result.tables["vitals"]["loinc_code"].tolist() == ["8867-4"]  # not the panel's systolic half


@pytest.mark.parametrize(("effective", "linked"), [("2024-03-04T09:00:00Z", 1), ("2024-03-05", 0), (None, 0)])
def test_vital_without_encounter_goes_to_the_same_day_encounter(effective: str | None, linked: int) -> None:
    vital = loinc_observation("t1", "8310-5", 38.2, "Cel", encounter=None, effectiveDateTime=effective)
    counts = ImportCounts()
    tables = mapped(bundle(patient(), encounter(), {**vital, "subject": {"reference": "Patient/p1"}}), counts=counts)
    assert len(tables["vitals"]) == linked
    assert counts.observations_unlinked == 1 - linked


def test_encounter_without_start_is_rejected_with_its_observations_and_diagnoses() -> None:
    icd = "http://hl7.org/fhir/sid/icd-10"
    counts = ImportCounts()
    result = bundle_to_tables(
        bundle(
            patient(),
            encounter(period={"end": "2024-03-04"}),
            encounter("e2"),
            hpo_observation("o1", "HP:0001945"),
            hpo_observation("o2", "HP:0001945", encounter={"reference": "Encounter/e2"}),
            condition("c1", "encounter-diagnosis", icd, "J06.9", encounter={"reference": "Encounter/e1"}),
            condition("c2", "problem-list-item", icd, "E11.9"),
        ),
        counts=counts,
    )
    found = only_reject(result)
    assert (found.table, found.line, found.column) == ("encounters", None, "period.start")
    assert found.rule == "a full date is required (Bundle entry 2)"
    assert result.tables["encounters"]["encounter_id"].tolist() == ["e2"]
    assert result.tables["symptoms"]["encounter_id"].tolist() == ["e2"]
    assert result.tables["diagnoses"].empty
    assert rows(result.tables["comorbidities"], "encounter_id", "icd10_code") == [("e2", "E11.9")]
    assert (counts.observations_left_out, counts.conditions_left_out, counts.encounters) == (1, 1, 1)


@pytest.mark.parametrize(
    ("fields", "column"),
    [
        ({"period": {"start": "1492-10-12"}}, "period.start"),  # beyond the years the raw tables hold
        ({"extension": [{"url": PRIOR_VISITS, "valueDecimal": 2.5}]}, "extension"),
        ({"subject": {"reference": "Group/g1"}}, "subject"),
    ],
)
def test_encounter_mapping_problems_reject_the_encounter_only(fields: dict[str, Any], column: str) -> None:
    result = bundle_to_tables(bundle(patient(), encounter(**fields), encounter("e2")))
    assert (only_reject(result).table, only_reject(result).column) == ("encounters", column)
    assert result.tables["encounters"]["encounter_id"].tolist() == ["e2"]


@pytest.mark.parametrize(
    ("system", "code", "expected"),
    [
        ("http://www.orpha.net", "558", ("ORPHA", "ORPHA:558")),
        ("https://www.orpha.net", "ORPHA:342", ("ORPHA", "ORPHA:342")),
        ("https://www.orpha.net/", "Orphanet_98896", ("ORPHA", "ORPHA:98896")),
        ("http://hl7.org/fhir/sid/icd-10", "g71.0", ("ICD10", "G71.0")),
        ("http://hl7.org/fhir/sid/icd-10-cm", "E84.0", ("ICD10", "E84.0")),
    ],
)
def test_diagnosis_code_systems(system: str, code: str, expected: tuple[str, str]) -> None:
    diagnosis = condition("c1", "encounter-diagnosis", system, code, encounter={"reference": "Encounter/e1"})
    tables = mapped(bundle(patient(), encounter(), diagnosis))
    assert rows(tables["diagnoses"], "code_system", "code", "rank") == [(*expected, 1)]


def test_malformed_orpha_code_names_the_field() -> None:
    diagnosis = condition(
        "c1", "encounter-diagnosis", "http://www.orpha.net", "Marfan", encounter={"reference": "Encounter/e1"}
    )
    result = bundle_to_tables(bundle(patient(), encounter(), diagnosis))
    found = only_reject(result)
    assert (found.table, found.column) == ("diagnoses", "code.coding.code")
    assert found.rule == "not an ORPHA code like ORPHA:558 (Bundle entry 3)"
    assert result.tables["diagnoses"].empty and len(result.tables["encounters"]) == 1


def test_diagnosis_ranks_listed_first_then_bundle_order() -> None:
    icd = "http://hl7.org/fhir/sid/icd-10"
    listed = encounter(diagnosis=[{"condition": {"reference": "Condition/c2"}, "rank": 1}])
    on_encounter = {"encounter": {"reference": "Encounter/e1"}}
    tables = mapped(
        bundle(
            patient(),
            listed,
            condition("c1", "encounter-diagnosis", icd, "R50.9", **on_encounter),
            condition("c2", "encounter-diagnosis", icd, "A41.9", **on_encounter),
            condition("c3", "encounter-diagnosis", icd, "N39.0", **on_encounter),
            condition("c4", "encounter-diagnosis", icd, "R05", verificationStatus={"coding": [{"code": "refuted"}]}),
        )
    )
    assert rows(tables["diagnoses"], "code", "rank") == [("R50.9", 2), ("A41.9", 1), ("N39.0", 3)]


def test_inactive_problems_are_not_comorbidities() -> None:
    icd = "http://hl7.org/fhir/sid/icd-10"
    tables = mapped(
        bundle(
            patient(),
            encounter(),
            condition("c1", "problem-list-item", icd, "E11.9", clinicalStatus={"coding": [{"code": "active"}]}),
            condition("c2", "problem-list-item", icd, "I10", clinicalStatus={"coding": [{"code": "resolved"}]}),
            condition("c3", "problem-list-item", icd, "J45.9"),
        )
    )
    assert rows(tables["comorbidities"], "encounter_id", "icd10_code") == [("e1", "E11.9"), ("e1", "J45.9")]


def test_ndjson_of_bare_resources_is_read_as_one_collection() -> None:
    lines = [patient(), encounter(), loinc_observation("hr", "8867-4", 71.0, "/min")]
    tables = read_tables("\n".join(json.dumps(r) for r in lines).encode(), name="export.ndjson")
    assert rows(tables["vitals"], "encounter_id", "loinc_code", "value") == [("e1", "8867-4", 71.0)]


def test_repeated_patient_across_bundles_is_one_row() -> None:
    lines = [bundle(patient(), encounter("e1")), bundle(patient(), encounter("e2"))]
    tables = read_tables("\n".join(json.dumps(b) for b in lines).encode(), name="visits.ndjson")
    assert tables["patients"]["patient_id"].tolist() == ["p1"]
    assert tables["encounters"]["encounter_id"].tolist() == ["e1", "e2"]


def test_empty_bundle_gives_empty_tables_with_contract_dtypes() -> None:
    tables = mapped(bundle())
    assert_contract(tables)
    assert all(frame.empty for frame in tables.values())


def test_an_invalid_organization_is_logged_and_counted_and_its_encounters_keep_the_centre_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hospital = {"resourceType": "Organization", "id": "org-1", "type": "Tertiary", "active": "Sophie Moreau"}
    counts = ImportCounts()
    result = bundle_to_tables(
        bundle(hospital, patient(), encounter(serviceProvider={"reference": "Organization/org-1"})), counts=counts
    )
    assert result.rejects == ()  # it describes a centre, no row: not a reject of encounters
    assert counts.centre_resources_invalid == 1
    assert rows(result.tables["encounters"], "centre_id", "centre_level") == [("org-1", "primary")]
    assert any("Organization (entry 1)" in m for m in caplog.messages)
    assert not any("Sophie" in m or "Tertiary" in m for m in caplog.messages)
