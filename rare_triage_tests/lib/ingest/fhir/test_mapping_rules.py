"""Pure mapping rules: hp.obo cross-references, centre unknowns, problem-list attachment, findings."""

import datetime as dt
from types import SimpleNamespace
from typing import Any

import pytest

from rare_triage.lib.ingest.fhir.counts import ImportCounts
from rare_triage.lib.ingest.fhir.hpo_xrefs import hpo_xref_table, mappable_codes, parse_xref_table, xref_system
from rare_triage.lib.ingest.fhir.problem_list import problem_encounters
from rare_triage_tests.lib.ingest.fhir.test_read import bundle, condition, encounter, mapped, patient, rows

SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
UMLS = "http://www.nlm.nih.gov/research/umls"
OBO = """format-version: 1.2

[Term]
id: HP:0000118
name: Phenotypic abnormality

[Term]
id: HP:0001945
name: Fever
is_a: HP:0000118 ! Phenotypic abnormality
xref: SNOMEDCT_US:386661006
xref: UMLS:C0015967
xref: ICD-10:R50.9 "Fever, unspecified"

[Term]
id: HP:0011010
name: Chronic
xref: SNOMEDCT_US:90734009

[Term]
id: HP:9999999
name: obsolete fever
is_a: HP:0000118
is_obsolete: true
xref: SNOMEDCT_US:386661006
""".splitlines()


def test_parse_xref_table_keeps_current_phenotypes_only() -> None:
    assert parse_xref_table(OBO) == {
        ("SNOMEDCT", "386661006"): ("HP:0001945",),
        ("UMLS", "C0015967"): ("HP:0001945",),
        ("ICD10", "R50.9"): ("HP:0001945",),
    }


@pytest.mark.parametrize(
    ("system", "expected"),
    [(SNOMED, "SNOMEDCT"), (UMLS, "UMLS"), (ICD10CM, "ICD10"), ("http://loinc.org", None), (None, None)],
)
def test_xref_system(system: str | None, expected: str | None) -> None:
    assert xref_system(system) == expected


def test_installed_hp_obo_maps_snomed_and_umls() -> None:
    table = hpo_xref_table()
    assert table[("SNOMEDCT", "386661006")] == ("HP:0001945",)
    assert "HP:0001945" in table[("UMLS", "C0015967")]
    assert mappable_codes([SimpleNamespace(coding=[SimpleNamespace(system=UMLS, code="c0015967")])]) == [
        ("UMLS", "C0015967")
    ]


@pytest.mark.parametrize(
    ("organization", "class_code", "expected"),
    [
        (None, "AMB", ("other", "primary", "other")),
        (None, "EMER", ("other", "secondary", "other")),
        ({"type": [{"coding": [{"code": "dept"}]}]}, "AMB", ("org-1", "secondary", "other")),
        (
            {"type": [{"text": "Tertiary"}], "address": [{"state": "Bretagne"}]},
            "AMB",
            ("org-1", "tertiary", "Bretagne"),
        ),
    ],
)
def test_centre_unknowns_are_explicit(
    organization: dict[str, Any] | None, class_code: str, expected: tuple[str, str, str]
) -> None:
    resources: list[dict[str, Any]] = [patient()]
    extra: dict[str, Any] = {}
    if organization is not None:
        resources.append({"resourceType": "Organization", "id": "org-1", **organization})
        extra["serviceProvider"] = {"reference": "Organization/org-1"}
    counts = ImportCounts()
    tables = mapped(bundle(*resources, encounter(class_code=class_code, **extra)), counts=counts)
    assert rows(tables["encounters"], "centre_id", "centre_level", "region") == [expected]
    assert counts.centre_level_inferred == (organization is None or "text" not in organization["type"][0])


def _condition(onset: str | None = None, status: str = "active", abatement: str | None = None) -> Any:
    day = dt.date.fromisoformat
    return SimpleNamespace(
        clinicalStatus=SimpleNamespace(coding=[SimpleNamespace(code=status, system=None)]),
        onsetDateTime=day(onset) if onset else None,
        onsetPeriod=None,
        recordedDate=None,
        abatementDateTime=day(abatement) if abatement else None,
        abatementPeriod=None,
    )


VISITS = [("e1", dt.date(2024, 1, 1)), ("e2", dt.date(2024, 6, 1)), ("e3", dt.date(2025, 1, 1))]


@pytest.mark.parametrize(
    ("condition_kwargs", "recorded_at", "expected"),
    [
        ({}, None, ["e1", "e2", "e3"]),
        ({"onset": "2024-06-01"}, None, ["e2", "e3"]),
        ({"onset": "2024-03-01", "abatement": "2024-12-01"}, None, ["e2"]),
        ({"onset": "2024-07-01"}, "e0", ["e0", "e3"]),
        ({"status": "resolved"}, "e1", []),
        ({"status": "relapse", "onset": "2025-01-01"}, None, ["e3"]),
    ],
)
def test_problem_encounters(condition_kwargs: dict[str, Any], recorded_at: str | None, expected: list[str]) -> None:
    assert problem_encounters(_condition(**condition_kwargs), VISITS, recorded_at) == expected


def test_problem_list_without_encounter_attaches_by_onset_and_counts() -> None:
    late = encounter("e2", period={"start": "2024-09-01T10:00:00Z"})
    problem = condition("c1", "problem-list-item", ICD10CM, "I10", onsetDateTime="2024-06-01")
    diagnosis_without_encounter = condition("c2", "encounter-diagnosis", ICD10CM, "E11.9")
    counts = ImportCounts()
    tables = mapped(bundle(patient(), encounter(), late, problem, diagnosis_without_encounter), counts=counts)
    assert rows(tables["comorbidities"], "encounter_id", "icd10_code") == [
        ("e2", "I10"),
        ("e1", "E11.9"),
        ("e2", "E11.9"),
    ]
    assert tables["diagnoses"].empty
    assert (counts.problem_list_seen, counts.problem_list_attached, counts.comorbidity_rows) == (2, 2, 3)


@pytest.mark.parametrize(
    ("value", "present"),
    [
        ({}, [True]),
        ({"valueCodeableConcept": {"coding": [{"system": SNOMED, "code": "2667000"}]}}, [False]),
        ({"valueBoolean": False}, [False]),
        ({"dataAbsentReason": {"text": "asked, unknown"}}, []),
    ],
)
def test_snomed_coded_observation_becomes_an_hpo_symptom(value: dict[str, Any], present: list[bool]) -> None:
    finding = {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "code": {"coding": [{"system": SNOMED, "code": "386661006"}]},
        "encounter": {"reference": "Encounter/e1"},
        **value,
    }
    counts = ImportCounts()
    tables = mapped(bundle(patient(), encounter(), finding), counts=counts)
    assert tables["symptoms"]["present"].tolist() == present
    assert set(tables["symptoms"]["hpo_id"]) <= {"HP:0001945"}
    assert (counts.findings_seen, counts.findings_mapped, counts.mapped_share) == (1, 1, 1.0)


def test_condition_finding_without_xref_is_counted_not_mapped() -> None:
    unmapped = condition("c1", "encounter-diagnosis", SNOMED, "39065001", encounter={"reference": "Encounter/e1"})
    with_xref = condition("c2", "problem-list-item", SNOMED, "386661006")
    counts = ImportCounts()
    tables = mapped(bundle(patient(), encounter(), unmapped, with_xref), counts=counts)
    assert rows(tables["symptoms"], "encounter_id", "hpo_id", "present") == [("e1", "HP:0001945", True)]
    assert (counts.findings_seen, counts.findings_mapped, counts.encounters_with_finding) == (2, 1, 1)
    assert counts.problem_list_without_icd10 == 1
