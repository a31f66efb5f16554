"""The input contract: what it accepts, and validation errors that name the offending field."""

import typing
from typing import Any

import msgspec
import pytest

from serving.contract import (
    CENTRE_LEVELS,
    CONSULTATION_TYPES,
    MAX_HPO_TERMS,
    PHENOPACKET_SEX,
    SEXES,
    CentreLevel,
    ConsultationType,
    Encounter,
    PhenopacketSex,
    PublishedCase,
    Sex,
)

FULL_ENCOUNTER: dict[str, Any] = {
    "sex": "F",
    "age_years": 34.5,
    "centre_id": "C03",
    "centre_level": "secondary",
    "region": "Madrid",
    "consultation_type": "emergency",
    "temperature_c": 38.4,
    "heart_rate": 96,
    "respiratory_rate": 18,
    "spo2": 97,
    "systolic_bp": 120,
    "diastolic_bp": 80,
    "fever_score": 4,
    "pain_score": 3.5,
    "symptom_duration_days": 5,
    "prior_visits_365d": 2,
    "comorbidity_count": 1,
    "hpo_observed": ["HP:0001945", "HP:0002027"],
    "hpo_excluded": ["HP:0002094"],
}


def test_the_closed_vocabularies_are_the_literal_types() -> None:
    assert typing.get_args(Sex) == SEXES
    assert typing.get_args(CentreLevel) == CENTRE_LEVELS
    assert typing.get_args(ConsultationType) == CONSULTATION_TYPES
    assert set(typing.get_args(PhenopacketSex)) == {*PHENOPACKET_SEX, *SEXES}


def test_every_field_is_optional_and_a_full_encounter_round_trips_through_json() -> None:
    assert msgspec.json.decode(b"{}", type=Encounter) == Encounter()
    full = msgspec.json.decode(msgspec.json.encode(FULL_ENCOUNTER), type=Encounter)
    assert msgspec.json.decode(msgspec.json.encode(full), type=Encounter) == full
    assert full.hpo_observed == ["HP:0001945", "HP:0002027"]
    assert full.heart_rate == 96.0
    assert msgspec.json.encode(Encounter()) == b"{}"  # absent fields stay absent


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature_c", 29.9),
        ("temperature_c", 45.1),
        ("heart_rate", 251),
        ("respiratory_rate", 3),
        ("spo2", 100.5),
        ("systolic_bp", 49),
        ("diastolic_bp", 161),
        ("fever_score", 10.5),
        ("pain_score", -1),
        ("age_years", 120.5),
        ("age_years", -0.1),
        ("symptom_duration_days", -1),
        ("prior_visits_365d", -1),
        ("prior_visits_365d", 2.5),
        ("comorbidity_count", -3),
        ("sex", "female"),
        ("centre_level", "quaternary"),
        ("consultation_type", "walk_in"),
        ("centre_id", ""),
        ("region", "x" * 101),
        ("heart_rate", True),
        ("temperature_c", "37.5"),
        ("hpo_observed", "HP:0001945"),
    ],
)
def test_a_bad_value_is_a_validation_error_naming_its_field(field: str, value: object) -> None:
    with pytest.raises(msgspec.ValidationError, match=rf"at `\$\.{field}`"):
        msgspec.json.decode(msgspec.json.encode({**FULL_ENCOUNTER, field: value}), type=Encounter)


@pytest.mark.parametrize("bad_id", ["HP:123", "hp:0001945", "HP:00019450", "HP:0001945\n", " HP:0001945", "ORPHA:558"])
def test_a_malformed_hpo_id_names_its_list_and_position(bad_id: str) -> None:
    payload = {"hpo_observed": ["HP:0001945"], "hpo_excluded": ["HP:0002094", bad_id]}
    with pytest.raises(msgspec.ValidationError, match=r"at `\$\.hpo_excluded\[1\]`"):
        msgspec.convert(payload, Encounter)


def test_hpo_lists_are_bounded() -> None:
    ids = [f"HP:{i:07d}" for i in range(MAX_HPO_TERMS)]
    assert len(msgspec.convert({"hpo_observed": ids}, Encounter).hpo_observed) == MAX_HPO_TERMS
    with pytest.raises(msgspec.ValidationError, match=r"length <= 256 - at `\$\.hpo_observed`"):
        msgspec.convert({"hpo_observed": [*ids, "HP:0001945"]}, Encounter)


def test_an_unknown_field_is_refused_by_name() -> None:
    with pytest.raises(msgspec.ValidationError, match="unknown field `patient_name`"):
        msgspec.convert({**FULL_ENCOUNTER, "patient_name": "x"}, Encounter)


def test_systolic_below_diastolic_is_refused_naming_both_fields() -> None:
    with pytest.raises(msgspec.ValidationError, match="systolic_bp: below diastolic_bp"):
        msgspec.convert({"systolic_bp": 70, "diastolic_bp": 90}, Encounter)
    assert msgspec.convert({"systolic_bp": 90, "diastolic_bp": 90}, Encounter).systolic_bp == 90.0


def test_errors_inside_a_batch_name_the_encounter() -> None:
    body = msgspec.json.encode([FULL_ENCOUNTER, {**FULL_ENCOUNTER, "spo2": 20}])
    with pytest.raises(msgspec.ValidationError, match=r"at `\$\[1\]\.spo2`"):
        msgspec.json.decode(body, type=list[Encounter])


def test_published_case_accepts_phenopacket_sex_and_iso8601_ages() -> None:
    case = msgspec.convert(
        {"sex": "UNKNOWN_SEX", "age": "P1Y6M", "hpo_observed": ["HP:0001166"], "hpo_excluded": []}, PublishedCase
    )
    assert case == PublishedCase(sex="UNKNOWN_SEX", age="P1Y6M", hpo_observed=["HP:0001166"])
    for age in ("P6Y", "P3M", "P2W", "P10D", "P0.5Y", "P1Y2M3W4D"):
        assert msgspec.convert({"age": age}, PublishedCase).age == age


@pytest.mark.parametrize(
    ("field", "value"),
    [("sex", "male"), ("age", "P"), ("age", "PT3H"), ("age", "6Y"), ("age", "P6Y\n"), ("age", "P-1Y"), ("age", 6)],
)
def test_a_bad_published_case_names_its_field(field: str, value: object) -> None:
    with pytest.raises(msgspec.ValidationError, match=rf"at `\$\.{field}`"):
        msgspec.convert({field: value}, PublishedCase)
