"""FHIR R4 Bundles -> the service's Encounter: the platform importer's rules, reports, errors naming the field, and
no personal value anywhere in a report or an error. Small Bundles built here, plus the HL7 examples (CC0) and one
carebundle patient (Apache-2.0) of fixtures/fhir/ (see its README)."""

import json
import pickle
import re
from pathlib import Path
from typing import Any

import msgspec
import pytest

from serving.contract import Encounter
from serving.encoding import Encoder, PhenotypeEncoding
from serving.fhir import (
    WITHHELD,
    FhirInputError,
    FhirMappingReport,
    MappingNote,
    UnmappedCode,
    encounter_from_bundle,
)

FIXTURES = Path(__file__).parent / "fixtures"
SMALL_MODEL = FIXTURES / "small_model"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
HPO = "http://purl.obolibrary.org/obo/hp.owl"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
BASE = "https://rare-triage.example.org/fhir"
SMALL_ENCODING = PhenotypeEncoding.from_dict(json.loads((SMALL_MODEL / "phenotype_encoding.json").read_text()))


# ---- builders ----


def bundle(*resources: dict[str, Any], bundle_type: str = "collection") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": bundle_type, "entry": [{"resource": r} for r in resources]}


def patient(**fields: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1990-06-15", **fields}


def encounter(class_code: str = "AMB", **fields: Any) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "id": "e1",
        "status": "finished",
        "class": {"system": ACT, "code": class_code},
        "subject": {"reference": "Patient/p1"},
        "period": {"start": "2024-03-04T10:00:00+01:00"},
        **fields,
    }


def observation(code: str, system: str = LOINC, **fields: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": "Patient/p1"},
        "encounter": {"reference": "Encounter/e1"},
        **fields,
    }


def quantity(value: Any, code: str | None = None, unit: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"value": value}
    if code is not None:
        out |= {"system": UCUM, "code": code}
    if unit is not None:
        out["unit"] = unit
    return out


def vital(loinc: str, value: Any, code: str | None = None, unit: str | None = None, **fields: Any) -> dict[str, Any]:
    return observation(loinc, valueQuantity=quantity(value, code, unit), **fields)


def blood_pressure(systolic: float, diastolic: float) -> dict[str, Any]:
    return observation(
        "85354-9",
        component=[
            {"code": {"coding": [{"system": LOINC, "code": "8480-6"}]}, "valueQuantity": quantity(systolic, "mm[Hg]")},
            {"code": {"coding": [{"system": LOINC, "code": "8462-4"}]}, "valueQuantity": quantity(diastolic, "mm[Hg]")},
        ],
    )


def phenotype(hpo_id: str, *components: dict[str, Any], system: str = HPO, **fields: Any) -> dict[str, Any]:
    return observation(hpo_id, system=system, **({"component": list(components)} if components else {}), **fields)


def answer(code: str, system: str = LOINC) -> dict[str, Any]:
    return {"valueCodeableConcept": {"coding": [{"system": system, "code": code}]}}


def severity(value: float) -> dict[str, Any]:
    return {"code": {"coding": [{"system": SNOMED, "code": "246112005"}]}, "valueInteger": value}


def duration(value: float, unit: str | None) -> dict[str, Any]:
    return {
        "code": {"coding": [{"system": SNOMED, "code": "103335007"}]},
        "valueQuantity": quantity(value, unit) if unit else {"value": value},
    }


def condition(code: str, system: str = ICD10, category: str | None = "problem-list-item", **fields: Any) -> dict:
    out: dict[str, Any] = {
        "resourceType": "Condition",
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": "Patient/p1"},
        **fields,
    }
    if category is not None:
        out["category"] = [{"coding": [{"system": CATEGORY, "code": category}]}]
    return out


def status(code: str) -> dict[str, Any]:
    return {"coding": [{"system": CLINICAL, "code": code}]}


def mapped(*resources: dict[str, Any], **options: Any) -> tuple[Encounter, FhirMappingReport]:
    """The encounter of a Bundle of patient(), encounter() and `resources`."""
    return encounter_from_bundle(bundle(patient(), encounter(), *resources), **options)


def error_of(document: Any) -> FhirInputError:
    with pytest.raises(FhirInputError) as caught:
        encounter_from_bundle(document)
    return caught.value


def report_text(report: FhirMappingReport) -> str:
    return msgspec.json.encode(report).decode()


def ndjson(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# ---- vitals ----


def test_vitals_map_with_their_units() -> None:
    request, report = mapped(
        vital("8310-5", 37.2, "Cel"),
        vital("8867-4", 88, unit="beats/minute"),  # unit text only, normalised to /min
        vital("9279-1", 16, unit="breaths/min"),
        vital("2708-6", 97, "%"),  # SpO2's other LOINC code
        blood_pressure(121, 79),
        vital("29463-7", 70.5, "kg"),  # weight: not read
    )
    assert (request.temperature_c, request.heart_rate, request.respiratory_rate, request.spo2) == (37.2, 88, 16, 97)
    assert (request.systolic_bp, request.diastolic_bp) == (121, 79)
    assert report.resources_used == {"Patient": 1, "Encounter": 1, "Observation": 5}
    assert report.codes_not_mapped == (
        UnmappedCode(
            path="entry[7].resource.code",
            system=LOINC,
            code="29463-7",
            reason="not a vital sign, pain score or finding the platform reads",
        ),
    )


@pytest.mark.parametrize(
    "sent", [quantity(102.2, "[degF]"), quantity(102.2, unit="°F"), quantity(102.2, unit="degF")], ids=str
)
def test_fahrenheit_is_converted_to_celsius(sent: dict[str, Any]) -> None:
    request, _ = mapped(observation("8310-5", valueQuantity=sent))
    assert request.temperature_c == pytest.approx(39.0)


def test_several_readings_are_averaged() -> None:
    request, _ = mapped(vital("8867-4", 80, "/min"), vital("8867-4", 91, "/min"), blood_pressure(120, 80))
    assert request.heart_rate == 85.5
    assert request.systolic_bp == 120


@pytest.mark.parametrize(
    ("sent", "path", "shown"),
    [
        (quantity(38.1, "mm[Hg]"), "entry[2].resource.valueQuantity.code", "'mm[Hg]'"),
        (quantity(38.1, unit="mmHg"), "entry[2].resource.valueQuantity.unit", "'mmHg'"),
        (quantity(38.1), "entry[2].resource.valueQuantity.unit", "no unit"),
    ],
)
def test_a_unit_that_is_not_the_vitals_is_an_error(sent: dict[str, Any], path: str, shown: str) -> None:
    error = error_of(bundle(patient(), encounter(), observation("8310-5", valueQuantity=sent)))
    assert error.field_path == path
    assert error.problem == f"{shown} is not a unit of body temperature (expected 'Cel' or '[degF]')"
    assert str(error) == f"{path}: {error.problem}"


def test_a_reading_without_a_number_is_an_error() -> None:
    assert error_of(bundle(patient(), encounter(), vital("8867-4", None, "/min"))).field_path == (
        "entry[2].resource.valueQuantity.value"
    )
    assert error_of(bundle(patient(), encounter(), vital("8867-4", "88", "/min"))).problem == (
        "must be a finite JSON number"
    )


def test_an_implausible_reading_is_left_out_and_reported() -> None:
    request, report = mapped(vital("8310-5", 50.0, "Cel"), vital("8310-5", 38.0, "Cel"), vital("59408-5", 30, "%"))
    assert request.temperature_c == 38.0
    assert request.spo2 is None
    assert report.notes == (
        MappingNote(
            path="entry[2].resource.valueQuantity.value",
            field="temperature_c",
            reason="outside the plausible range 30-45 Cel: the platform quarantines the reading",
        ),
        MappingNote(
            path="entry[4].resource.valueQuantity.value",
            field="spo2",
            reason="outside the plausible range 50-100 %: the platform quarantines the reading",
        ),
    )


def test_systolic_below_diastolic_leaves_both_out() -> None:
    request, report = mapped(blood_pressure(70, 90))
    assert (request.systolic_bp, request.diastolic_bp) == (None, None)
    assert [(n.path, n.field) for n in report.notes] == [
        ("entry[2].resource.component[0].valueQuantity.value", "systolic_bp"),
        ("entry[2].resource.component[1].valueQuantity.value", "diastolic_bp"),
    ]


# ---- phenotypes ----


@pytest.mark.parametrize(
    ("value", "present"),
    [
        (answer("LA9633-4"), True),
        (answer("LA9634-2"), False),
        (answer("373066001", SNOMED), True),
        (answer("373067005", SNOMED), False),
        ({"valueBoolean": True}, True),
        ({"valueBoolean": False}, False),
        ({}, True),  # a phenotype recorded without a value is present
    ],
    ids=["LA9633-4", "LA9634-2", "snomed-yes", "snomed-no", "true", "false", "no-value"],
)
def test_hpo_findings_are_present_or_absent(value: dict[str, Any], present: bool) -> None:
    request, report = mapped(phenotype("HP:0001250", **value))
    assert (request.hpo_observed, request.hpo_excluded) == ((["HP:0001250"], []) if present else ([], ["HP:0001250"]))
    assert report.resources_used["Observation"] == 1


@pytest.mark.parametrize(
    ("system", "code"),
    [
        ("http://purl.obolibrary.org/obo/hp.owl", "HP:0001250"),
        ("http://human-phenotype-ontology.org", "HP_0001250"),
        ("https://human-phenotype-ontology.org", "0001250"),
    ],
)
def test_the_hpo_systems_and_code_forms_the_platform_accepts(system: str, code: str) -> None:
    request, _ = mapped(phenotype(code, system=system))
    assert request.hpo_observed == ["HP:0001250"]


def test_the_interpretation_does_not_decide_presence() -> None:
    """As the platform's importer: the value decides, `interpretation` (normal, abnormal) is not read."""
    normal: dict[str, Any] = {
        "interpretation": [
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "N"}]}
        ]
    }
    request, _ = mapped(phenotype("HP:0001250", **normal), phenotype("HP:0001945", **normal, valueBoolean=False))
    assert (request.hpo_observed, request.hpo_excluded) == (["HP:0001250"], ["HP:0001945"])


def test_more_phenotypes_than_the_contract_takes_is_an_error() -> None:
    error = error_of(bundle(patient(), encounter(), *[phenotype(f"HP:{n:07d}") for n in range(1, 258)]))
    assert (error.field_path, error.problem) == ("entry", "257 distinct hpo_observed terms: more than 256")


def test_a_phenotype_recorded_as_unknown_gives_nothing() -> None:
    request, report = mapped(phenotype("HP:0001250", dataAbsentReason={"text": "asked, unknown"}))
    assert (request.hpo_observed, request.hpo_excluded) == ([], [])
    assert report.notes[0].field == "hpo_observed"
    assert report.ignored[0].path == "entry[2].resource"


def test_a_malformed_hpo_code_or_answer_is_an_error() -> None:
    malformed = error_of(bundle(patient(), encounter(), phenotype("HP:12")))
    assert (malformed.field_path, malformed.problem) == (
        "entry[2].resource.code.coding",
        "an HPO coding whose code is not an HPO id like HP:0001945",
    )
    other = error_of(bundle(patient(), encounter(), phenotype("HP:0001250", **answer("LA4489-6"))))
    assert other.field_path == "entry[2].resource.valueCodeableConcept"


def test_the_pain_score_goes_on_the_pain_phenotype() -> None:
    scored, _ = mapped(observation(PAIN_SCORE := "72514-3", valueInteger=6))
    assert (scored.hpo_observed, scored.pain_score) == (["HP:0012531"], 6)
    none, _ = mapped(observation(PAIN_SCORE, valueQuantity={"value": 0, "code": "{score}", "system": UCUM}))
    assert (none.hpo_observed, none.hpo_excluded, none.pain_score) == ([], ["HP:0012531"], None)
    on_row, _ = mapped(
        phenotype("HP:0012531"), observation(PAIN_SCORE, valueInteger=3), observation(PAIN_SCORE, valueInteger=5)
    )
    assert (on_row.hpo_observed, on_row.pain_score) == (["HP:0012531"], 5)  # the highest, on the existing row


def test_scores_without_the_phenotype_encoding_sit_on_fever_and_pain_only() -> None:
    request, report = mapped(
        phenotype("HP:0001945", severity(7)),
        phenotype("HP:0002027", severity(4)),  # Abdominal pain: a pain term only the ontology knows
    )
    assert (request.fever_score, request.pain_score) == (7, None)
    assert report.notes == (
        MappingNote(
            path="entry[3].resource",
            field="pain_score",
            reason="a severity on a term other than Fever or Pain: read only with the model's phenotype encoding",
        ),
    )


def test_scores_with_the_phenotype_encoding_follow_the_feature_sql() -> None:
    """The small model's encoding: Recurrent fever (HP:0001954) and HP:0011134 roll up to Fever, Abdominal pain
    (HP:0002027) is under Pain, Seizure (HP:0001250) is neither, HP:0000009 is outside the release."""
    request, report = mapped(
        phenotype("HP:0011134", severity(6)),
        phenotype("HP:0002027", severity(4), duration(2, "d")),
        phenotype("HP:0001250", severity(9), duration(3, "wk")),
        phenotype("HP:0000009", severity(8), duration(400, "d")),
        phenotype=SMALL_ENCODING,
    )
    assert (request.fever_score, request.pain_score, request.symptom_duration_days) == (6, 4, 21)
    assert request.hpo_observed == ["HP:0011134", "HP:0002027", "HP:0001250", "HP:0000009"]
    assert [(n.path, n.reason) for n in report.notes] == [
        ("entry[4].resource", "a severity on a term that is neither a fever nor a pain term: the platform reads none")
    ]


@pytest.mark.parametrize(
    ("component", "days"),
    [(duration(2, "wk"), 14), (duration(1, "mo"), 30.4375), (duration(36, "h"), 1.5), (duration(5, None), 5)],
    ids=["wk", "mo", "h", "no-unit"],
)
def test_durations_in_days(component: dict[str, Any], days: float) -> None:
    request, _ = mapped(phenotype("HP:0001250", component))
    assert request.symptom_duration_days == days


def test_a_duration_from_the_onset_and_the_rows_governance_quarantines() -> None:
    onset, _ = mapped(phenotype("HP:0001250", effectivePeriod={"start": "2024-02-23"}))
    assert onset.symptom_duration_days == 10
    later, report = mapped(
        phenotype("HP:0001250", effectivePeriod={"start": "2024-03-09"}), phenotype("HP:0001945", severity(11))
    )
    assert (later.hpo_observed, later.symptom_duration_days, later.fever_score) == ([], None, None)
    assert [n.reason for n in report.notes] == [
        "negative duration: the platform quarantines it",
        "severity outside 0-10: the platform quarantines it",
    ]
    bad_unit = error_of(bundle(patient(), encounter(), phenotype("HP:0001250", duration(2, "kg"))))
    assert bad_unit.field_path == "entry[2].resource.component[0].valueQuantity.code"


# ---- findings coded in SNOMED CT, ICD-10, UMLS ----

XREFS = {
    ("SNOMEDCT", "386661006"): ("HP:0001945",),
    ("ICD10", "R56.9"): ("HP:0001250",),
    ("UMLS", "C0018681"): ("HP:0002315",),
    ("SNOMEDCT", "195967001"): ("HP:0002099",),
}


def test_findings_map_through_the_cross_references_given() -> None:
    request, report = mapped(
        observation("386661006", SNOMED, **answer("2667000", SNOMED)),  # Fever: Absent
        observation("R56.9", "http://hl7.org/fhir/sid/icd-10-cm"),  # no value: present
        observation("c0018681", "http://www.nlm.nih.gov/research/umls", valueBoolean=True),
        observation("22298006", SNOMED),  # no cross-reference
        condition("195967001", SNOMED, onsetDateTime="2010-01-01"),  # problem-list history: present
        hpo_xrefs=XREFS,
    )
    assert request.hpo_observed == ["HP:0001250", "HP:0002315", "HP:0002099"]
    assert request.hpo_excluded == ["HP:0001945"]
    assert report.codes_not_mapped == (
        UnmappedCode(path="entry[5].resource.code", system=SNOMED, code="22298006", reason="no HPO cross-reference"),
    )


def test_without_cross_references_findings_are_reported() -> None:
    request, report = mapped(observation("386661006", SNOMED), condition("195967001", SNOMED))
    assert (request.hpo_observed, request.comorbidity_count) == ([], 0)
    assert {(c.code, c.reason) for c in report.codes_not_mapped} == {
        ("386661006", "no HPO cross-reference table given to the mapping"),
        ("195967001", "no HPO cross-reference table given to the mapping"),
    }


def test_an_encounter_diagnosis_is_never_a_finding_of_its_encounter() -> None:
    request, report = mapped(
        condition("195967001", SNOMED, category="encounter-diagnosis", encounter={"reference": "Encounter/e1"}),
        hpo_xrefs=XREFS,
    )
    assert request.hpo_observed == []
    assert report.ignored[0].reason == "an encounter diagnosis: the outcome the model predicts, never an input"


# ---- comorbidities ----


def test_comorbidities_are_the_active_problems_of_the_encounter_day() -> None:
    request, report = mapped(
        condition("E11.9", clinicalStatus=status("active"), onsetDateTime="2015-01-01"),
        condition("e11.9", ICD10CM),  # the same code again: counted once
        condition("I10", category=None),  # no category and no encounter: a problem
        condition("J45.9", abatementDateTime="2025-01-01"),  # abated after the encounter: still active
        condition("K21.9", onsetDateTime="2015-01-01", encounter={"reference": "Encounter/e1"}),
        condition("N18.3", clinicalStatus=status("resolved")),
        condition("M81.0", onsetDateTime="2024-05-01"),  # onset after the encounter
        condition("F32.9", abatementDateTime="2023-12-31"),  # abated before it
        condition("G43.9", subject={"reference": "Patient/someone-else"}),
        condition("E66.9", verificationStatus={"coding": [{"code": "refuted"}]}),
        condition("J18.9", category="encounter-diagnosis", encounter={"reference": "Encounter/e1"}),
        condition("E78", onsetPeriod={"start": "2025-01-01"}, encounter={"reference": "Encounter/e1"}),
    )
    # E11.9, I10, J45.9, K21.9 and E78: recorded at this encounter, attached whatever its onset, as the importer does
    assert request.comorbidity_count == 5
    reasons = [i.reason for i in report.ignored]
    assert reasons == [
        "clinicalStatus not active",
        "not active on the encounter's day (onset after it, or abated by then)",
        "not active on the encounter's day (onset after it, or abated by then)",
        "not the Patient's",
        "verificationStatus refuted or entered-in-error",
        "an encounter diagnosis: the outcome the model predicts, never an input",
    ]


def test_a_malformed_icd10_code_is_left_out_and_reported() -> None:
    request, report = mapped(condition("E1"), condition("I10"))
    assert request.comorbidity_count == 1
    assert report.notes == (
        MappingNote(
            path="entry[2].resource.code",
            field="comorbidity_count",
            reason="not an ICD-10 code: the platform quarantines it",
        ),
    )


# ---- which resources are the encounter's ----


def test_observations_of_another_encounter_or_day_are_left_out() -> None:
    no_link = {"encounter": None}
    request, report = mapped(
        vital("8867-4", 70, "/min", encounter={"reference": "Encounter/other"}),
        vital("8867-4", 80, "/min", **no_link, effectiveDateTime="2024-03-04T08:00:00+01:00"),  # same day: linked
        vital("8867-4", 90, "/min", **no_link, effectiveDateTime="2024-03-03"),
        vital("8867-4", 100, "/min", **no_link, issued="2024-03-04T09:00:00Z"),  # issued on the day: linked
        vital("8867-4", 110, "/min", status="entered-in-error"),
    )
    assert request.heart_rate == 90  # 80 and 100
    assert [(i.path, i.reason) for i in report.ignored] == [
        ("entry[2].resource", "belongs to another Encounter"),
        ("entry[4].resource", "no Encounter reference, and not the patient's on the encounter's day"),
        ("entry[6].resource", "status entered-in-error"),
    ]


def test_a_cancelled_encounter_and_its_observations_are_left_out() -> None:
    cancelled = encounter(id="e0", status="cancelled")
    request, report = encounter_from_bundle(
        bundle(patient(), cancelled, encounter(), vital("8867-4", 70, "/min", encounter={"reference": "Encounter/e0"}))
    )
    assert request.heart_rate is None
    assert [i.reason for i in report.ignored] == [
        "status cancelled: not held",
        "its Encounter is cancelled or entered in error",
    ]
    only_cancelled = error_of(bundle(patient(), cancelled))
    assert only_cancelled.field_path == "entry[1].resource.status"


def test_without_an_encounter_the_bundle_is_the_encounter() -> None:
    request, report = encounter_from_bundle(
        bundle(patient(), vital("8867-4", 70, "/min", encounter=None), phenotype("HP:0001250"), condition("I10"))
    )
    assert (request.heart_rate, request.hpo_observed, request.comorbidity_count) == (70, ["HP:0001250"], 1)
    assert (request.age_years, request.centre_id, request.consultation_type) == (None, None, None)
    assert {n.field for n in report.notes} == {"age_years", "centre_id"}


@pytest.mark.parametrize(
    ("resources", "path", "problem"),
    [
        ([encounter()], "entry", "no Patient: a Bundle holds the one patient of the encounter"),
        (
            [patient(), patient(id="p2"), encounter()],
            "entry[1].resource",
            "a second Patient (the first is entry[0].resource): one patient per Bundle",
        ),
        (
            [patient(), encounter(), encounter(id="e2")],
            "entry[2].resource",
            "a second Encounter (the first is entry[1].resource): send one encounter per Bundle",
        ),
        (
            [patient(), encounter(subject={"reference": "Patient/p2"})],
            "entry[1].resource.subject",
            "does not reference the Bundle's Patient (entry[0].resource)",
        ),
        ([patient(), encounter(subject=None)], "entry[1].resource.subject", "must reference the Patient"),
        (
            [patient(), encounter(period={"start": "2024-03"})],
            "entry[1].resource.period.start",
            "a full date is required (value withheld)",
        ),
        (
            [patient(), encounter(period=None)],
            "entry[1].resource.period.start",
            "a full date is required (value withheld)",
        ),
    ],
    ids=["no-patient", "two-patients", "two-encounters", "other-subject", "no-subject", "partial-start", "no-period"],
)
def test_one_patient_and_one_encounter_per_bundle(resources: list[dict[str, Any]], path: str, problem: str) -> None:
    error = error_of(bundle(*resources))
    assert (error.field_path, error.problem) == (path, problem)


# ---- patient: sex and age ----


@pytest.mark.parametrize(("gender", "sex"), [("male", "M"), ("female", "F"), ("other", "U"), ("unknown", "U")])
def test_sex_from_gender(gender: str, sex: str) -> None:
    request, report = encounter_from_bundle(bundle(patient(gender=gender), encounter()))
    assert request.sex == sex
    assert not report.notes


def test_a_missing_gender_is_u_and_another_is_an_error() -> None:
    request, report = encounter_from_bundle(bundle(patient(gender=None), encounter()))
    assert request.sex == "U"
    assert report.notes[0].field == "sex"
    error = error_of(bundle(patient(gender="woman"), encounter()))
    assert (error.field_path, error.problem) == ("entry[0].resource.gender", "not one of male, female, other, unknown")


@pytest.mark.parametrize(
    ("birth", "start", "age"),
    [
        ("1990-03-05", "2024-03-04T10:00:00+01:00", 33),  # birthday tomorrow
        ("1990-03-04", "2024-03-04T10:00:00+01:00", 34),  # birthday today
        ("1990-03-05", "2024-03-04T23:30:00-05:00", 33),  # the day as written, not converted to UTC
        ("1990-03-05", "2024-03-05", 34),
        ("2024-03-04", "2024-03-04", 0),
        ("1904-03-04", "2024-03-04", 120),
    ],
)
def test_age_in_completed_years_at_the_encounter_day(birth: str, start: str, age: int) -> None:
    request, _ = encounter_from_bundle(bundle(patient(birthDate=birth), encounter(period={"start": start})))
    assert request.age_years == age


@pytest.mark.parametrize(("birth", "age"), [("1990", 33), ("1990-02", 34)])
def test_a_partial_birth_date_is_imputed_to_its_middle(birth: str, age: int) -> None:
    request, report = encounter_from_bundle(bundle(patient(birthDate=birth), encounter()))
    assert request.age_years == age  # 1990-07-01, 1990-02-15 at 2024-03-04
    assert report.notes == (
        MappingNote(
            path="entry[0].resource.birthDate",
            field="age_years",
            reason="partial date: imputed to the middle of its year or month",
        ),
    )


def test_an_impossible_age_is_an_error_and_a_missing_one_is_reported() -> None:
    after = error_of(bundle(patient(birthDate="2024-03-05"), encounter()))
    assert (after.field_path, after.problem) == (
        "entry[0].resource.birthDate",
        "after the Encounter's period.start (values withheld)",
    )
    assert error_of(bundle(patient(birthDate="1903-03-03"), encounter())).problem.startswith("more than 120 years")
    assert error_of(bundle(patient(birthDate="1990-02-30"), encounter())).field_path == "entry[0].resource.birthDate"
    request, report = encounter_from_bundle(bundle(patient(birthDate=None), encounter()))
    assert request.age_years is None
    assert report.notes[0] == MappingNote(
        path="entry[0].resource.birthDate", field="age_years", reason="missing: no age"
    )


# ---- centre, consultation type, prior visits ----


@pytest.mark.parametrize(
    ("fields", "consultation"),
    [
        ({"class_code": "EMER"}, "emergency"),
        ({"class_code": "IMP"}, "inpatient"),
        ({"class_code": "VR"}, "telehealth"),
        ({"class_code": "AMB"}, "primary_care"),
        ({"class_code": "AMB", "serviceType": {"text": "Cardiology"}}, "outpatient_specialist"),
        (
            {"class_code": "AMB", "type": [{"coding": [{"system": SNOMED, "code": "11429006"}]}]},
            "outpatient_specialist",
        ),
        (
            {
                "class_code": "EMER",
                "type": [{"coding": [{"system": f"{BASE}/CodeSystem/consultation-type", "code": "telehealth"}]}],
            },
            "telehealth",
        ),
    ],
)
def test_consultation_type_as_the_importer_derives_it(fields: dict[str, Any], consultation: str) -> None:
    request, _ = encounter_from_bundle(bundle(patient(), encounter(**fields)))
    assert request.consultation_type == consultation


def test_a_class_the_importer_does_not_map_leaves_the_consultation_type_missing() -> None:
    request, report = encounter_from_bundle(bundle(patient(), encounter("HH")))
    assert request.consultation_type is None
    assert report.notes[0].field == "consultation_type"


def test_the_centre_of_the_encounter() -> None:
    parent = {
        "resourceType": "Organization",
        "id": "C07",
        "type": [{"text": "Tertiary"}],
        "address": [{"state": "Madrid"}],
    }
    department = {
        "resourceType": "Organization",
        "id": "dept-1",
        "type": [{"coding": [{"code": "dept"}]}],
        "partOf": {"reference": "Organization/C07"},
    }
    request, report = encounter_from_bundle(
        bundle(patient(), encounter(serviceProvider={"reference": "Organization/dept-1"}), department, parent)
    )
    assert (request.centre_id, request.centre_level, request.region) == ("dept-1", "tertiary", "Madrid")
    assert report.resources_used["Organization"] == 2

    location = {
        "resourceType": "Location",
        "id": "L1",
        "address": {"state": "Bretagne"},
        "managingOrganization": {"reference": "Organization/C12"},
    }
    unrelated = {"resourceType": "Organization", "id": "C99"}
    request, report = encounter_from_bundle(
        bundle(patient(), encounter("EMER", location=[{"location": {"reference": "Location/L1"}}]), location, unrelated)
    )
    assert (request.centre_id, request.centre_level, request.region) == ("C12", "secondary", "Bretagne")
    assert report.ignored[-1].reason == "not the centre of the Encounter"

    nothing, _ = encounter_from_bundle(bundle(patient(), encounter()))
    assert (nothing.centre_id, nothing.centre_level, nothing.region) == ("other", "primary", "other")


@pytest.mark.parametrize(
    ("value", "visits"), [({"valueInteger": 3}, 3), ({"valueInteger": -1}, None), ({"valueString": "x"}, None)]
)
def test_prior_visits_from_the_extension(value: dict[str, Any], visits: int | None) -> None:
    extension = [{"url": f"{BASE}/StructureDefinition/prior-visits-365d", **value}]
    request, report = encounter_from_bundle(bundle(patient(), encounter(extension=extension)))
    assert request.prior_visits_365d == visits
    assert (visits is None) == any(n.field == "prior_visits_365d" for n in report.notes)


# ---- Bundle envelope and structure ----


@pytest.mark.parametrize(
    ("document", "path", "problem"),
    [
        ([], "$", "expected a JSON object (a FHIR Bundle)"),
        ({"resourceType": "Patient"}, "resourceType", "expected 'Bundle', got 'Patient'"),
        ({"resourceType": "Bundle"}, "type", "missing one of collection, transaction, batch, document, searchset"),
        (
            {"resourceType": "Bundle", "type": "message"},
            "type",
            "not one of collection, transaction, batch, document, searchset",
        ),
        ({"resourceType": "Bundle", "type": "collection", "entry": {}}, "entry", "must be a JSON array"),
        (
            {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": patient()}, "x"]},
            "entry[1]",
            "must be a JSON object",
        ),
        (
            {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"id": "x"}}]},
            "entry[0].resource.resourceType",
            "missing",
        ),
        (
            bundle(patient(), encounter(), {**phenotype("HP:0001250"), "code": {"coding": {}}}),
            "entry[2].resource.code.coding",
            "must be a JSON array",
        ),
        (
            bundle(patient(), encounter(), phenotype("HP:0001250", valueBoolean="yes")),
            "entry[2].resource.valueBoolean",
            "must be true or false",
        ),
        (
            bundle(patient(), encounter(period={"start": "yesterday"})),
            "entry[1].resource.period.start",
            "not a FHIR date or dateTime (value withheld)",
        ),
        (bundle(patient(gender=1), encounter()), "entry[0].resource.gender", "must be a string"),
    ],
    ids=[
        "not-object",
        "not-bundle",
        "no-type",
        "message",
        "entry-object",
        "entry-string",
        "no-resource-type",
        "coding",
        "boolean",
        "date",
        "gender",
    ],
)
def test_a_structurally_invalid_bundle_names_the_field(document: Any, path: str, problem: str) -> None:
    error = error_of(document)
    assert (error.field_path, error.problem) == (path, problem)


def test_the_error_is_a_value_error_that_survives_pickling() -> None:
    error = FhirInputError("entry[3].resource.valueQuantity.unit", "'mmHg' is not a unit of body temperature")
    copy = pickle.loads(pickle.dumps(error))
    assert isinstance(copy, FhirInputError)
    assert isinstance(copy, ValueError)
    assert (copy.field_path, copy.problem, str(copy)) == (error.field_path, error.problem, str(error))


@pytest.mark.parametrize("bundle_type", ["collection", "transaction", "batch", "document", "searchset"])
def test_accepted_bundle_types(bundle_type: str) -> None:
    resources = [patient(), encounter(), vital("8867-4", 70, "/min")]
    if bundle_type == "document":
        resources.insert(0, {"resourceType": "Composition", "status": "final"})
    request, report = encounter_from_bundle(bundle(*resources, bundle_type=bundle_type))
    assert request.heart_rate == 70
    assert report.resources_ignored == ({"Composition": 1} if bundle_type == "document" else {})


def test_a_transaction_of_urn_uuid_references() -> None:
    """Resources without ids, referenced by their fullUrl, as a transaction creates them."""
    p, e = "urn:uuid:0b8a6c1e-1d2f-4c1a-9b7e-5f3a2d1c0e9f", "urn:uuid:7e6d5c4b-3a29-4817-a6b5-c4d3e2f1a0b9"
    entries = [
        {"fullUrl": p, "resource": {k: v for k, v in patient().items() if k != "id"}},
        {"fullUrl": e, "resource": {k: v for k, v in encounter(subject={"reference": p}).items() if k != "id"}},
        {"fullUrl": "urn:uuid:1", "resource": vital("8867-4", 70, "/min", encounter={"reference": e})},
        {"fullUrl": "urn:uuid:2", "resource": vital("8867-4", 99, "/min", encounter={"reference": "urn:uuid:9"})},
    ]
    request, report = encounter_from_bundle({"resourceType": "Bundle", "type": "transaction", "entry": entries})
    assert request.heart_rate == 70
    assert report.ignored[0].reason == "belongs to another Encounter"


# ---- no personal value in a report or an error ----

PERSONAL = {
    "resourceType": "Patient",
    "id": "PAT-Quillfeather-7734",
    "identifier": [
        {"type": {"coding": [{"code": "MR"}]}, "value": "MRN-77341982"},
        {"system": "urn:oid:1.2.250.1.213.1.4.8", "value": "2610975123456"},
    ],
    "name": [{"family": "Quillfeather", "given": ["Zephyrine", "Odile"], "text": "Zephyrine Quillfeather"}],
    "telecom": [{"system": "phone", "value": "+33 6 98 76 54 32"}, {"system": "email", "value": "zq@example.org"}],
    "address": [{"line": ["12 rue des Lilas"], "city": "Villeurbanne", "postalCode": "69100"}],
    "gender": "female",
    "birthDate": "1961-09-27",
}
PLANTED = (
    "Quillfeather", "Zephyrine", "Odile", "MRN-77341982", "77341982", "2610975123456", "98 76 54 32", "698765432",
    "zq@example.org", "rue des Lilas", "Villeurbanne", "69100", "1961-09-27", "PAT-Quillfeather",
)  # fmt: skip


def assert_nothing_planted(text: str) -> None:
    found = [value for value in PLANTED if value.casefold() in text.casefold()]
    assert not found, found


def personal_encounter(**fields: Any) -> dict[str, Any]:
    return encounter(**{"subject": {"reference": "Patient/PAT-Quillfeather-7734"}, **fields})


def test_no_personal_value_in_a_report() -> None:
    """The planted values, also where a careless source puts them: codes, code systems, units."""
    resources = [
        PERSONAL,
        personal_encounter(),
        observation("MRN-77341982"),  # a code that is a record number
        observation("1234-5", system="urn:system:Zephyrine Quillfeather"),
        observation("zq@example.org", system=SNOMED),
        observation("Villeurbanne-69100", system="http://example.org/codes"),
        condition("Quillfeather", system="urn:oid:1.2.3", subject={"reference": "Patient/PAT-Quillfeather-7734"}),
        {"resourceType": "Practitioner", "name": [{"family": "Brightwater"}]},
    ]
    _, report = encounter_from_bundle(bundle(*resources))
    text = report_text(report)
    assert_nothing_planted(text)
    assert "Brightwater" not in text
    assert [(c.system, c.code) for c in report.codes_not_mapped] == [
        (LOINC, WITHHELD),
        (WITHHELD, "1234-5"),
        (SNOMED, WITHHELD),
        ("http://example.org/codes", WITHHELD),
        ("urn:oid:1.2.3", WITHHELD),
    ]


def test_no_personal_value_in_an_error() -> None:
    broken = [
        [PERSONAL, personal_encounter(), vital("8310-5", 38.0, unit="Zephyrine")],
        [PERSONAL, personal_encounter(), vital("8310-5", 38.0, unit="+33 6 98 76 54 32")],
        [PERSONAL, personal_encounter(period={"start": "2024-03-04"}), phenotype("MRN-77341982")],
        [PERSONAL, personal_encounter(period={"start": "1961-09-26"})],  # born after the encounter
        [PERSONAL, personal_encounter(period={"start": "Quillfeather"})],
        [PERSONAL, {**PERSONAL, "gender": "Zephyrine"}, personal_encounter()],
        [{**PERSONAL, "gender": "Quillfeather"}, personal_encounter()],
        [{**PERSONAL, "birthDate": "1961-19-27"}, personal_encounter()],
        [PERSONAL, personal_encounter(subject={"reference": "Patient/MRN-77341982"})],
        [PERSONAL, personal_encounter(), personal_encounter(id="e2")],
    ]
    errors = [error_of(bundle(*resources)) for resources in broken]
    for error in errors:
        assert_nothing_planted(f"{error} {error.field_path} {error.problem} {error!r}")
    assert errors[0].problem == f"'{WITHHELD}' is not a unit of body temperature (expected 'Cel' or '[degF]')"
    assert errors[0].__cause__ is None and errors[0].__context__ is None


def test_no_personal_value_of_the_hl7_examples_in_the_report() -> None:
    resources = [
        r for r in ndjson(FIXTURES / "fhir" / "hl7_examples" / "hl7_r4_examples.ndjson") if subject_key(r) == "f201"
    ]
    _, report = encounter_from_bundle(bundle(*resources))
    text = report_text(report)
    for value in ("Roel", "Bor", "Roelof", "+31612345678", "+31201234567", "123456789", "1960-03-13", "1055RW"):
        assert not re.search(rf"\b{re.escape(value)}\b", text), value


# ---- fixtures written by others ----


def subject_key(resource: dict[str, Any]) -> str | None:
    """The patient id a resource is about (its own for a Patient)."""
    if resource["resourceType"] == "Patient":
        return str(resource["id"])
    reference = (resource.get("subject") or {}).get("reference", "")
    return reference.removeprefix("Patient/") or None


def test_hl7_examples_inpatient_stay() -> None:
    """Roel (f201) and his inpatient Encounter f203 (2013-03-11), with five Conditions, none counted: resolved or
    inactive, a fever problem of another encounter, a sepsis problem coded in SNOMED CT only."""
    resources = [
        r for r in ndjson(FIXTURES / "fhir" / "hl7_examples" / "hl7_r4_examples.ndjson") if subject_key(r) == "f201"
    ]
    request, report = encounter_from_bundle(bundle(*resources))
    assert msgspec.to_builtins(request) == {
        "patient_id": "f201",  # the Patient's id, the platform importer's patient_id
        "sex": "M",
        "age_years": 52.0,  # born 1960-03-13
        "centre_id": "2",  # Organization/2, not in the file
        "centre_level": "secondary",  # inpatient class
        "region": "other",
        "consultation_type": "inpatient",
        "comorbidity_count": 0,
    }
    assert report.resources_used == {"Patient": 1, "Encounter": 1}
    assert report.resources_ignored == {"Condition": 5}
    assert report.codes_not_mapped == (
        UnmappedCode(
            path="entry[4].resource.code",
            system=SNOMED,
            code="10001005",
            reason="no HPO cross-reference table given to the mapping",
        ),
    )


def test_hl7_examples_home_visit() -> None:
    """Patient `example` and the home-health Encounter `home` (2015-01-17): vitals of other days, a finding of
    another Encounter, a class the importer does not map."""
    resources = [
        r for r in ndjson(FIXTURES / "fhir" / "hl7_examples" / "hl7_r4_examples.ndjson") if subject_key(r) == "example"
    ]
    xrefs = {**XREFS, ("SNOMEDCT", "43478001"): ("HP:0002027",)}  # abdominal tenderness, for the example
    request, report = encounter_from_bundle(bundle(*resources), hpo_xrefs=xrefs)
    assert (request.sex, request.age_years, request.consultation_type) == ("M", 40.0, None)
    assert (request.hpo_observed, request.comorbidity_count) == ([], 0)
    assert (request.heart_rate, request.temperature_c, request.systolic_bp) == (None, None, None)
    assert {(i.resource_type, i.reason) for i in report.ignored} >= {
        ("Observation", "no Encounter reference, and not the patient's on the encounter's day"),
        ("Observation", "belongs to another Encounter"),
    }
    assert any(n.field == "consultation_type" for n in report.notes)


def test_carebundle_patient() -> None:
    """An ambulatory visit of 2026-01-01 with a full vital-sign set, labs (not read) and two problem-list items."""
    resources = ndjson(FIXTURES / "fhir" / "carebundle" / "carebundle_one_patient.ndjson")
    request, report = encounter_from_bundle(bundle(*resources))
    assert msgspec.to_builtins(request) == {
        "patient_id": "6d367230-21b3-5816-8d8c-5239028c388f",  # the Patient's id, not its identifier
        "sex": "F",
        "age_years": 77.0,  # born 1948-06-06
        "centre_id": "other",
        "centre_level": "primary",
        "region": "other",
        "consultation_type": "primary_care",
        "temperature_c": 36.8,
        "heart_rate": 81.0,
        "respiratory_rate": 13.0,
        "spo2": 96.0,
        "systolic_bp": 128.0,
        "diastolic_bp": 75.0,
        "comorbidity_count": 2,  # E78.5, E66.9
    }
    assert report.resources_used == {"Patient": 1, "Encounter": 1, "Condition": 2, "Observation": 5}
    assert report.resources_ignored == {"Observation": 8, "DiagnosticReport": 2, "Practitioner": 1}
    assert {c.code for c in report.codes_not_mapped} == {
        "2093-3", "2085-9", "13457-7", "2571-8", "4548-4", "8302-2", "29463-7", "39156-5",
    }  # fmt: skip
    assert {c.system for c in report.codes_not_mapped} == {LOINC}
    assert "Dummett" not in report_text(report) and "6D367230" not in report_text(report)


def test_the_encounter_encodes_with_a_published_model() -> None:
    manifest = json.loads((SMALL_MODEL / "manifest.json").read_text())
    encoder = Encoder(manifest, SMALL_ENCODING)
    request, _ = mapped(
        vital("8310-5", 101.3, "[degF]"),
        phenotype("HP:0001945", severity(6)),
        phenotype("HP:0002027", severity(3)),
        phenotype("HP:0001250", **answer("LA9634-2")),
        condition("I10"),
        phenotype=SMALL_ENCODING,
    )
    batch = encoder.encode([request])
    report = batch.reports[0]
    assert report.hpo_used == ("HP:0001945", "HP:0002027", "HP:0001250")
    assert not report.dropped_fields and not report.hpo_unknown
    row = dict(zip(encoder.columns, batch.matrix[0].tolist(), strict=True))
    assert row["temperature_c"] == pytest.approx(38.5, abs=1e-5)
    assert (row["fever_score"], row["pain_score"], row["comorbidity_count"]) == (6, 3, 1)
    assert (row["hpo_0001945"], row["hpo_0002027"], row["hpo_0001250"]) == (1, 1, 0)
