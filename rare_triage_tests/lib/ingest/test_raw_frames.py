"""Conforming source frames: omitted identifiers, typed empty tables, rejects and errors that never quote a value."""

import pandas as pd
import pyarrow as pa
import pytest

from rare_triage.lib import schema
from rare_triage.lib.identifiers import DROPPED_COLUMNS
from rare_triage.lib.ingest.raw_frames import conform_raw_rows, conform_raw_table, empty_raw_table

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
        (
            schema.RAW_VITALS,
            {"encounter_id": ["E-1"], "loinc_code": ["8310-5"], "value": ["high"], "unit": ["Cel"]},
            "value",
        ),
    ],
)
def test_strict_conform_names_column_and_rule_but_never_the_value(
    table: str, frame: dict[str, list[str]], column: str
) -> None:
    with pytest.raises(ValueError, match=rf"table '{table}' column '{column}': expected .*first at row 1") as raised:
        conform_raw_table(pd.DataFrame(frame), table, f"{table}.csv")
    assert frame[column][0] not in str(raised.value)
    assert raised.value.__cause__ is None and raised.value.__context__ is None


def test_bad_cells_drop_their_rows_as_rejects_without_content() -> None:
    symptoms = pd.DataFrame(
        {
            "encounter_id": ["E-1", "E-2", "E-3"],
            "hpo_id": ["HP:0001945"] * 3,
            "present": ["yes", "maybe", "no"],
            "severity": ["3", "x", "2.5"],
        }
    )
    conformed = conform_raw_rows(symptoms, schema.RAW_SYMPTOMS, "symptoms.csv", lines=[2, 3, 5])
    assert conformed.frame["encounter_id"].tolist() == ["E-1", "E-3"]
    assert [(r.line, r.column, r.rule) for r in conformed.rejects] == [
        (3, "present", "expected true/false (missing not allowed)")  # first bad column in contract order
    ]
    assert "maybe" not in str(conformed.rejects[0]) and "E-2" not in str(conformed.rejects[0])


@pytest.mark.parametrize("table", schema.RAW_TABLES)
def test_empty_tables_have_the_contract_dtypes(table: str) -> None:
    header_only = pd.DataFrame({c: pd.Series([], dtype=object) for c in schema.RAW_COLUMNS[table]})
    for frame in (empty_raw_table(table), conform_raw_table(header_only, table, f"{table}.csv")):
        assert frame.dtypes.astype(str).to_dict() == schema.RAW_DTYPES[table]
        arrow = pa.Table.from_pandas(frame, preserve_index=False).schema
        assert not [f.name for f in arrow if pa.types.is_null(f.type)], table


def test_every_raw_column_has_one_dtype() -> None:
    assert {t: tuple(d) for t, d in schema.RAW_DTYPES.items()} == schema.RAW_COLUMNS
    by_column: dict[str, set[str]] = {}
    for dtypes in schema.RAW_DTYPES.values():
        for column, dtype in dtypes.items():
            by_column.setdefault(column, set()).add(dtype)
    assert all(len(found) == 1 for found in by_column.values())
