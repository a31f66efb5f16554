"""Pandera contracts of the governance outputs accept what governance makes and reject what it must not."""

import json
from collections.abc import Callable

import pandas as pd
import pandera.errors
import pandera.pandas as pa
import pytest

from rare_triage.lib import schema
from rare_triage.lib.governance.kanonymity import below_k_quarantine, enforce_k_anonymity
from rare_triage.lib.governance.schemas import validate_anonymized, validate_quarantine
from rare_triage_tests.helpers.governance_extract import anonymized_extract, raw_extract, validate, with_rows

Tables = dict[str, pd.DataFrame]


def test_anonymized_output_passes() -> None:
    anon = anonymized_extract()
    assert anon[schema.ANON_DIAGNOSES].loc[2, "code"] == "ORPHA:558"
    validate_anonymized(anon)


def test_k_anonymized_output_passes() -> None:
    anon = anonymized_extract()
    kept, below_k, _ = enforce_k_anonymity(anon[schema.ANON_ENCOUNTERS], k=2)
    assert below_k.empty
    assert kept["age_band"].eq("*").all()  # three people of different ages: every band suppressed
    validate_anonymized({**anon, schema.ANON_ENCOUNTERS: kept})


def _set(table: str, column: str, value: object, row: int = 0) -> Callable[[Tables], Tables]:
    def mutate(tables: Tables) -> Tables:
        frame = tables[table].copy()
        frame[column] = frame[column].astype(object)
        frame.loc[row, column] = value
        return {**tables, table: frame.infer_objects()}

    return mutate


def _with_frame(table: str, change: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Tables], Tables]:
    return lambda tables: {**tables, table: change(tables[table])}


BAD_OUTPUTS = [
    ("key not a pseudonym", _set("encounters", "encounter_key", "E-9001"), "encounter_key"),
    ("missing key", _set("encounters", "encounter_key", None), "encounter_key"),
    (
        "duplicate key",
        _with_frame("encounters", lambda f: f.assign(encounter_key=f["encounter_key"].iloc[[1, 1, 2]].tolist())),
        "contains duplicate values",
    ),
    ("age above the top code", _set("encounters", "age_years", 95), "less_than_or_equal_to(90)"),
    ("age band unknown", _set("encounters", "age_band", "100+"), "age_band"),
    ("age band not the age's", _set("encounters", "age_band", "80-89"), "age_band must be the band of age_years"),
    ("sex invalid", _set("encounters", "sex", "X"), "sex"),
    ("zip3 too long", _set("encounters", "zip3", "02139"), "zip3"),
    ("year not the partition's", _set("encounters", "encounter_year", 2023), "encounter_year must be the year"),
    ("negative visits", _set("encounters", "prior_visits_365d", -1), "prior_visits_365d"),
    ("extra column", _with_frame("encounters", lambda f: f.assign(city="Springfield")), "city"),
    ("missing column", _with_frame("encounters", lambda f: f.drop(columns="zip3")), "zip3"),
    ("column order", _with_frame("symptoms", lambda f: f[list(reversed(f.columns))]), "column"),
    ("vital out of range", _set("vitals", "value", 60.0), "plausible range"),
    ("vital unit", _set("vitals", "unit", "[degF]"), "plausible range"),
    ("alternative spo2 code", _set("vitals", "loinc_code", "2708-6"), "loinc_code"),
    ("severity above 10", _set("symptoms", "severity", 11.0), "severity"),
    ("present missing", _set("symptoms", "present", None), "present"),
    ("orpha without prefix", _set("diagnoses", "code", "558", row=2), "ORPHA:<number>"),
    ("rank 0", _set("diagnoses", "rank", 0), "rank"),
    ("hpo id malformed", _set("symptoms", "hpo_id", "HP:12"), "hpo_id"),
]


@pytest.mark.parametrize(("mutate", "names"), [c[1:] for c in BAD_OUTPUTS], ids=[c[0] for c in BAD_OUTPUTS])
def test_bad_outputs_raise_schema_errors_naming_the_problem(mutate: Callable[[Tables], Tables], names: str) -> None:
    with pytest.raises(pa.errors.SchemaErrors) as error:
        validate_anonymized(mutate(anonymized_extract()))
    assert names in str(error.value)


def test_missing_table_is_named() -> None:
    anon = anonymized_extract()
    del anon[schema.ANON_COMORBIDITIES]
    with pytest.raises(KeyError, match="comorbidities"):
        validate_anonymized(anon)


def test_children_must_reference_an_anonymized_encounter() -> None:
    anon = anonymized_extract()
    kept = anon[schema.ANON_ENCOUNTERS].iloc[1:]  # e.g. an encounter dropped by k-anonymity
    with pytest.raises(ValueError, match=r"vitals\.encounter_key: 5 rows reference no anonymized encounter"):
        validate_anonymized({**anon, schema.ANON_ENCOUNTERS: kept})


def _quarantine() -> pd.DataFrame:
    bad = {"encounter_id": "E-404", "loinc_code": "1234-5", "value": 1.0, "unit": "x"}
    return validate(with_rows(raw_extract(), schema.RAW_VITALS, [bad])).quarantined


def test_quarantine_passes_and_so_do_below_k_rows() -> None:
    quarantine = _quarantine()
    assert len(quarantine) == 2
    validate_quarantine(quarantine)
    _, below_k, _ = enforce_k_anonymity(anonymized_extract()[schema.ANON_ENCOUNTERS], k=4)
    assert len(below_k) == 3
    validate_quarantine(below_k_quarantine(below_k, partition_day="2024-03-15", k=4))


@pytest.mark.parametrize(
    ("column", "value", "names"),
    [
        ("row_ref", "E-404", "row_ref"),
        ("row_json", json.dumps({"encounter_id": "E-404"}), "without direct identifiers"),
        ("row_json", "not json", "without direct identifiers"),
        ("table", "labs", "table"),
        ("reason", "", "reason"),
    ],
)
def test_bad_quarantine_rows_are_rejected(column: str, value: str, names: str) -> None:
    quarantine = _quarantine()
    quarantine.loc[0, column] = value
    with pytest.raises(pa.errors.SchemaErrors) as error:
        validate_quarantine(quarantine)
    assert names in str(error.value)


@pytest.mark.parametrize(("column", "value"), [("region", "Leocadia Villaseñor"), ("centre_id", "a@b.org")])
def test_a_categorical_outside_its_vocabulary_fails_the_schema(column: str, value: str) -> None:
    anon = anonymized_extract()
    anon[schema.ANON_ENCOUNTERS].loc[0, column] = value
    with pytest.raises(pandera.errors.SchemaErrors):
        validate_anonymized(anon)
