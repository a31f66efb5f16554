"""The no_identifiers leak guard: identifier columns and identifier-shaped cells of the anonymized tables."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from rare_triage.lib import schema
from rare_triage.lib.governance.screening import (
    PATIENT_VALUE,
    PatientIdentifierValues,
    identifier_findings,
    identifier_kind,
    quarantine_findings,
    screen_raw_table,
)
from rare_triage.lib.governance.vocabulary import canonical_region
from rare_triage.lib.identifiers import IDENTIFIER_COLUMNS
from rare_triage_tests.helpers.governance_extract import anonymized_extract, raw_extract


def test_anonymized_tables_have_no_finding() -> None:
    assert identifier_findings(anonymized_extract()) == []


@pytest.mark.parametrize("column", IDENTIFIER_COLUMNS)
def test_an_identifier_column_is_found(column: str) -> None:
    anon = anonymized_extract()
    anon[schema.ANON_SYMPTOMS] = anon[schema.ANON_SYMPTOMS].assign(**{column: "x"})
    assert identifier_findings(anon) == [f"symptoms.{column}: identifier column"]


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("aurelia.q@example.org", "email"),
        ("+1 (555) 010-1234", "phone"),
        ("born 1980-06-01", "iso_date"),
        ("02139", "zip5"),
        ("02139-1234", "zip5"),
    ],
)
def test_an_identifier_shaped_value_is_found(value: str, kind: str) -> None:
    anon = anonymized_extract()
    anon[schema.ANON_ENCOUNTERS].loc[0, "region"] = value
    assert f"encounters.region: 1 value(s) shaped like {kind}" in identifier_findings(anon)


def test_repeated_values_count_once_and_the_value_is_not_quoted() -> None:
    anon = anonymized_extract()
    anon[schema.ANON_DIAGNOSES]["code"] = "a@b.org"
    findings = identifier_findings(anon)
    assert findings == ["diagnoses.code: 1 value(s) shaped like email"]


def test_partition_day_pseudonyms_and_numeric_columns_are_exempt() -> None:
    frame = pd.DataFrame(
        {
            "partition_day": ["2024-03-15"],
            "encounter_key": ["0123456789abcdef0123456789abcdef"],
            "patient_key": ["98765432109876543210fedcba987654"],
            "value": [12345.0],
        }
    )
    assert identifier_findings({"t": frame}) == []


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("see https://example.org/x", "url"),
        ("www.example.org", "url"),
        ("10.0.12.7", "ip_address"),
        ("078-05-1120", "ssn"),
        ("12345678Z", "national_id"),
        ("1790262118042", "national_id"),
        ("23/07/1961", "date"),
        ("1961/07/23", "date"),
        ("1961-07-23", "iso_date"),
        ("28013", "zip5"),
    ],
)
def test_identifier_kinds_of_raw_text(value: str, kind: str) -> None:
    assert identifier_kind(value) == kind


def test_no_vocabulary_value_has_an_identifier_shape() -> None:
    vocabulary = [
        *schema.SEXES,
        *schema.CENTRE_LEVELS,
        *schema.CONSULTATION_TYPES,
        *schema.CODE_SYSTEMS,
        *schema.REGIONS,
        *schema.VITAL_LOINC,
        *schema.VITAL_UNITS,
        schema.SPO2_ALT_LOINC,
        "C01",
        "C999",
        "HP:0001945",
        "ORPHA:558",
        "J18.9",
        "E11.9",
    ]
    assert [v for v in vocabulary if identifier_kind(v)] == []


def _patient_values() -> PatientIdentifierValues:
    return PatientIdentifierValues.from_patients(raw_extract()[schema.RAW_PATIENTS])


@pytest.mark.parametrize(
    "text",
    ["Aurelia Quenby", "quenby,  AURELIA", "Quenby Aurelia", "seen by Aurelia Quenby today", "MRN-55501", "Quenby"],
)
def test_patient_values_are_found_as_whole_cells_or_phrases(text: str) -> None:
    assert identifier_kind(text, _patient_values()) == PATIENT_VALUE


@pytest.mark.parametrize("text", ["J18.9", "North", "primary_care", "Quenbyx Aurelia", "Aurelia's visit"])
def test_other_text_is_not_a_patient_value(text: str) -> None:
    assert identifier_kind(text, _patient_values()) is None


def test_patient_values_read_from_arrow_column_by_column_find_the_same_texts() -> None:
    patients = raw_extract()[schema.RAW_PATIENTS]
    from_arrow = PatientIdentifierValues.from_patients(pa.Table.from_pandas(patients, preserve_index=False))
    from_pandas = PatientIdentifierValues.from_patients(patients)
    assert np.array_equal(from_arrow.whole, from_pandas.whole)
    assert np.array_equal(from_arrow.phrases, from_pandas.phrases)
    assert from_arrow.found_in("seen by Aurelia Quenby today") and not from_arrow.found_in("J18.9")


def test_a_vocabulary_value_equal_to_a_patient_value_is_exempt() -> None:
    patients = raw_extract()[schema.RAW_PATIENTS].assign(family_name="Galicia")
    values = PatientIdentifierValues.from_patients(patients)
    frame = pd.DataFrame({"region": ["Galicia", "galicia ", "Aurelia Galicia"]})
    found = screen_raw_table(frame, values, {"region": canonical_region})
    assert found["region"].tolist() == [None, None, PATIENT_VALUE]


def test_quarantine_findings_screen_reasons_and_row_values_but_not_fingerprints() -> None:
    clean = pd.DataFrame(
        {
            "reason": ["symptoms.hpo_id: identifier content (email) (row 3)"],
            "row_json": ['{"encounter_key": "0123456789abcdef0123456789abcdef", "hpo_id": "fp:0123456789abcdef"}'],
        }
    )
    assert quarantine_findings(clean) == []
    leaky = pd.DataFrame({"reason": ["x: 'a@b.org'"], "row_json": ['{"unit": "a@b.org", "mrn": "1"}']})
    assert quarantine_findings(leaky) == [
        "quarantined_records.reason: shaped like email",
        "quarantined_records.row_json.unit: shaped like email",
        "quarantined_records.row_json: identifier column mrn",
    ]
