"""Conforming source frames: which identifiers a source may omit, and errors that never quote an identifier."""

import pandas as pd
import pytest

from rare_triage.lib import schema
from rare_triage.lib.identifiers import DROPPED_COLUMNS
from rare_triage.lib.ingest.raw_frames import conform_raw_table

PATIENT = {"patient_id": ["P-1"], "zip_code": ["02139"], "birth_date": ["1980-06-01"], "sex": ["F"]}


def test_a_source_may_omit_the_identifiers_governance_drops() -> None:
    frame = conform_raw_table(pd.DataFrame(PATIENT), schema.RAW_PATIENTS, "patients.csv")
    assert list(frame.columns) == list(schema.RAW_COLUMNS[schema.RAW_PATIENTS])
    assert frame[list(DROPPED_COLUMNS)].isna().all().all()


@pytest.mark.parametrize("column", ["patient_id", "zip_code", "birth_date"])
def test_identifiers_governance_transforms_are_required(column: str) -> None:
    partial = pd.DataFrame({k: v for k, v in PATIENT.items() if k != column})
    with pytest.raises(ValueError, match=rf"missing required column\(s\) {column}"):
        conform_raw_table(partial, schema.RAW_PATIENTS, "patients.csv")


@pytest.mark.parametrize(
    ("table", "frame", "column"),
    [
        (schema.RAW_PATIENTS, {**PATIENT, "birth_date": ["01/06/1980"]}, "birth_date"),
        (
            schema.RAW_ENCOUNTERS,
            {
                "encounter_id": ["E-1"],
                "patient_id": ["P-1"],
                "encounter_date": ["15/03/2024"],
                "centre_id": ["C01"],
                "centre_level": ["primary"],
                "region": ["North"],
                "consultation_type": ["primary_care"],
            },
            "encounter_date",
        ),
    ],
)
def test_a_bad_identifier_value_is_withheld(table: str, frame: dict[str, list[str]], column: str) -> None:
    with pytest.raises(ValueError, match=rf"column '{column}'.*value withheld \(identifier\)") as raised:
        conform_raw_table(pd.DataFrame(frame), table, f"{table}.csv")
    assert frame[column][0] not in str(raised.value)


def test_a_bad_measure_is_quoted() -> None:
    vitals = pd.DataFrame({"encounter_id": ["E-1"], "loinc_code": ["8310-5"], "value": ["high"], "unit": ["Cel"]})
    with pytest.raises(ValueError, match=r"column 'value'.*row 1 value 'high'"):
        conform_raw_table(vitals, schema.RAW_VITALS, "vitals.csv")
