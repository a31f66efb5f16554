"""FHIR written by others (HL7's R4 examples, the carebundle generator) gets through the importer."""

from pathlib import Path

import pytest

from rare_triage.lib.ingest.fhir.counts import ImportCounts
from rare_triage_tests.lib.ingest.fhir.test_read import FIXTURES, assert_contract, read_tables

HL7 = FIXTURES / "hl7_examples" / "hl7_r4_examples.ndjson"
CAREBUNDLE = FIXTURES / "carebundle" / "carebundle_mixed_bulk.ndjson"

# rows per table, then: encounters with a present finding, problem-list items attached, findings mapped / seen
EXPECTED = {
    HL7: (
        {"patients": 2, "encounters": 2, "vitals": 0, "symptoms": 0, "diagnoses": 0, "comorbidities": 0},
        0,
        3,
        (4, 9),
    ),
    CAREBUNDLE: (
        {"patients": 8, "encounters": 8, "vitals": 48, "symptoms": 0, "diagnoses": 0, "comorbidities": 11},
        0,
        11,
        (0, 11),
    ),
}


@pytest.mark.parametrize("path", list(EXPECTED), ids=lambda p: p.parent.name)
def test_external_fixture_sets_are_imported(path: Path) -> None:
    table_rows, with_finding, attached, (mapped, seen) = EXPECTED[path]
    counts = ImportCounts()
    tables = read_tables(path, counts=counts)
    assert_contract(tables)
    assert {table: len(frame) for table, frame in tables.items()} == table_rows
    assert counts.encounters == table_rows["encounters"] > 0
    assert counts.encounters_with_finding == with_finding
    assert counts.problem_list_attached == attached
    assert (counts.findings_mapped, counts.findings_seen) == (mapped, seen)
    assert counts.comorbidity_rows == table_rows["comorbidities"]
    encounters = tables["encounters"]
    assert encounters[["centre_id", "centre_level", "region"]].notna().all().all()


def test_hl7_examples_an_encounter_diagnosis_is_never_its_own_finding() -> None:
    tables = read_tables(HL7)
    # Condition/stroke is listed in Encounter f203's diagnoses (SNOMED 422504002 maps to HPO Ischemic stroke): what
    # the encounter concluded is its label, so it must not also be a phenotype of that encounter (label leakage)
    assert tables["symptoms"].empty
    assert tables["encounters"].set_index("encounter_id")["centre_level"].to_dict() == {
        "f203": "secondary",  # inpatient class, Organization/2 not in the file
        "home": "primary",
    }


def test_carebundle_problem_list_attached_to_the_encounters() -> None:
    tables = read_tables(CAREBUNDLE)
    comorbidities = tables["comorbidities"]
    assert set(comorbidities["encounter_id"]) <= set(tables["encounters"]["encounter_id"])
    assert sorted(comorbidities["icd10_code"].unique()) == ["E03.9", "E11.9", "E66.9", "E78.5", "I10"]
