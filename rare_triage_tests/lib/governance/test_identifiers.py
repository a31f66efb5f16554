"""The identifier table covers every direct identifier of the raw contract, and none reaches the anonymized tables."""

import re

from rare_triage.lib import schema
from rare_triage.lib.identifiers import (
    DROPPED_COLUMNS,
    IDENTIFIER_COLUMNS,
    IDENTIFIERS,
    SCREENED_VALUE_COLUMNS,
    Treatment,
)
from rare_triage_tests.helpers.governance_extract import anonymized_extract

# Raw columns whose names look like identifiers but identify no person.
NOT_IDENTIFIERS = {
    "hpo_id": "an HPO term",
    "centre_id": "a care centre: a quasi-identifier kept under k-anonymity",
}
IDENTIFIER_LOOKING = re.compile(r"_id$|_date$|name|phone|e?mail|address|city|zip|mrn|ssn|birth")


def test_every_direct_identifier_of_the_patients_table_is_in_the_table() -> None:
    patients = set(schema.RAW_COLUMNS[schema.RAW_PATIENTS]) - {"sex"}  # sex is a quasi-identifier kept
    assert patients == {item.column for item in IDENTIFIERS if item.source == schema.RAW_PATIENTS}


def test_every_identifier_looking_raw_column_is_in_the_table() -> None:
    looking = {c for columns in schema.RAW_COLUMNS.values() for c in columns if IDENTIFIER_LOOKING.search(c)}
    assert looking - set(NOT_IDENTIFIERS) <= set(IDENTIFIER_COLUMNS)
    assert not set(NOT_IDENTIFIERS) & set(IDENTIFIER_COLUMNS)


def test_entries_name_real_columns_and_say_what_they_become() -> None:
    assert len(set(IDENTIFIER_COLUMNS)) == len(IDENTIFIERS)
    anon_encounters = schema.ANON_COLUMNS[schema.ANON_ENCOUNTERS]
    for item in IDENTIFIERS:
        assert item.column in schema.RAW_COLUMNS[item.source], item
        assert all(item.column in schema.RAW_COLUMNS[table] for table in item.screened_in), item
        assert set(item.output) <= set(anon_encounters), item
        assert (item.treatment is Treatment.DROPPED) == (not item.output), item
        assert item.screened_in or item.note, f"{item.column}: say why its values are not screened"


def test_derived_lists() -> None:
    assert set(DROPPED_COLUMNS) == {
        "mrn",
        "national_id",
        "given_name",
        "family_name",
        "phone",
        "email",
        "street_address",
        "city",
    }
    assert "city" not in SCREENED_VALUE_COLUMNS[schema.RAW_PATIENTS]  # a region may share its name
    assert set(SCREENED_VALUE_COLUMNS[schema.RAW_ENCOUNTERS]) == {"encounter_id", "patient_id"}


def test_no_output_contract_has_an_identifier_column() -> None:
    contracts = [*schema.ANON_COLUMNS.values(), schema.QUARANTINE_COLUMNS, schema.FEATURE_KEY_COLUMNS]
    contracts += [schema.FEATURE_CATEGORICAL_COLUMNS, schema.FEATURE_NUMERIC_COLUMNS]
    for columns in contracts:
        assert not set(columns) & set(IDENTIFIER_COLUMNS), columns


def test_anonymized_tables_have_no_identifier_column() -> None:
    for table, frame in anonymized_extract().items():
        assert not set(frame.columns) & set(IDENTIFIER_COLUMNS), table
