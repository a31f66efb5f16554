"""GA4GH phenopacket v2 JSON -> the service's PublishedCase: what is read, what is reported, errors naming the JSON
path. Three published cases of phenopacket-store (BSD-3-Clause, fixtures/phenopackets/README.md) and small
documents built here."""

import copy
import json
import math
import pickle
from pathlib import Path
from typing import Any

import msgspec
import pytest

from serving.contract import PublishedCase
from serving.encoding import Encoder
from serving.phenopacket import (
    PhenopacketInputError,
    PhenopacketReport,
    UnmappedTerm,
    case_from_phenopacket,
)

FIXTURES = Path(__file__).parent / "fixtures"
PHENOPACKETS = FIXTURES / "phenopackets"
SMALL_MODEL = FIXTURES / "small_model"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PHENOPACKETS / f"{name}.json").read_text(encoding="utf-8"))
    return data


def phenopacket(*features: dict[str, Any], **subject: Any) -> dict[str, Any]:
    return {
        "id": "case-1",
        "subject": {"id": "proband", **subject},
        "phenotypicFeatures": list(features),
        "metaData": {"created": "2026-06-25T00:00:00Z", "phenopacketSchemaVersion": "2.0", "resources": []},
    }


def feature(hpo_id: str, **fields: Any) -> dict[str, Any]:
    return {"type": {"id": hpo_id, "label": "a label"}, **fields}


def error_of(document: Any) -> PhenopacketInputError:
    with pytest.raises(PhenopacketInputError) as caught:
        case_from_phenopacket(document)
    return caught.value


def test_a_published_case_with_age_sex_and_excluded_terms() -> None:
    case, report = case_from_phenopacket(load("PMID_12058348_Patient_1"))
    assert case == PublishedCase(
        sex="MALE",
        age="P4Y9M",
        hpo_observed=["HP:0000316", "HP:0001003", "HP:0000508", "HP:0000358", "HP:0001642"],
        hpo_excluded=["HP:0001639", "HP:0001256", "HP:0006695", "HP:0001634", "HP:0006699", "HP:0006682"],
    )
    assert report == PhenopacketReport(
        features_used=11,
        elements_ignored=(
            "id",
            "diseases",
            "metaData",
            "subject.id",
            "subject.taxonomy",
        ),
    )


def test_a_published_case_without_age_or_sex() -> None:
    unknown_sex, _ = case_from_phenopacket(load("PMID_10851256_family_815"))
    assert (unknown_sex.sex, unknown_sex.age, len(unknown_sex.hpo_observed), unknown_sex.hpo_excluded) == (
        "UNKNOWN_SEX",
        None,
        6,
        ["HP:0001100", "HP:0000639"],
    )
    no_sex, report = case_from_phenopacket(load("PMID_37433783_P2"))
    assert (no_sex.sex, no_sex.age, no_sex.hpo_excluded, report.features_used) == (None, None, [], 6)


def test_the_case_encodes_as_the_platform_encodes_a_published_case() -> None:
    """Through the small model: sex MALE -> M, age P4Y9M -> 4 years (band 0-9), centre `external`."""
    encoder = Encoder(
        json.loads((SMALL_MODEL / "manifest.json").read_text()),
        json.loads((SMALL_MODEL / "phenotype_encoding.json").read_text()),
    )
    case, _ = case_from_phenopacket(
        phenopacket(
            feature("HP:0001250"),
            feature("HP:0001945", excluded=True),
            sex="MALE",
            timeAtLastEncounter={"age": {"iso8601duration": "P4Y9M"}},
        )
    )
    batch = encoder.encode_phenopacket([case])
    row = dict(zip(encoder.columns, batch.matrix[0].tolist(), strict=True))
    assert (row["age_years"], row["hpo_0001250"], row["hpo_0001945"], row["n_present_terms"]) == (4, 1, 0, 1)
    assert math.isnan(row["temperature_c"])
    assert batch.reports[0].hpo_used == ("HP:0001250", "HP:0001945")


@pytest.mark.parametrize(
    ("sex", "expected"),
    [
        ("MALE", "MALE"),
        ("FEMALE", "FEMALE"),
        ("OTHER_SEX", "OTHER_SEX"),
        ("UNKNOWN_SEX", "UNKNOWN_SEX"),
        (2, "MALE"),
        (1, "FEMALE"),
        (0, "UNKNOWN_SEX"),
        (3, "OTHER_SEX"),
    ],
)
def test_sex_and_its_protobuf_numbers(sex: Any, expected: str) -> None:
    case, _ = case_from_phenopacket(phenopacket(sex=sex))
    assert case.sex == expected


@pytest.mark.parametrize("age", ["P6Y", "P3M", "P1Y6M", "P2W", "P10D", "P0.5Y", " P6Y "])
def test_an_iso8601_age(age: str) -> None:
    case, _ = case_from_phenopacket(phenopacket(timeAtLastEncounter={"age": {"iso8601duration": age}}))
    assert case.age == age.strip()


@pytest.mark.parametrize(
    "time",
    [
        {"ageRange": {"start": {"age": {"iso8601duration": "P5Y"}}, "end": {"age": {"iso8601duration": "P10Y"}}}},
        {"ontologyClass": {"id": "HP:0003577", "label": "Congenital onset"}},
        {"timestamp": "2020-01-01T00:00:00Z"},
        {"age": {}},
    ],
    ids=["range", "ontology-class", "timestamp", "empty-age"],
)
def test_another_form_of_age_is_reported_and_left_missing(time: dict[str, Any]) -> None:
    case, report = case_from_phenopacket(phenopacket(timeAtLastEncounter=time))
    assert case.age is None
    assert len(report.notes) == 1
    assert report.notes[0].startswith("subject.timeAtLastEncounter.")
    assert report.notes[0].endswith("the age is left missing")


def test_terms_of_another_ontology_are_reported() -> None:
    case, report = case_from_phenopacket(
        phenopacket(
            feature("HP:0001250"), feature("MONDO:0007947"), feature("NCIT:C3262", excluded=True), feature("free text")
        )
    )
    assert (case.hpo_observed, case.hpo_excluded, report.features_used) == (["HP:0001250"], [], 1)
    assert report.terms_not_mapped == (
        UnmappedTerm(path="phenotypicFeatures[1].type.id", id="MONDO:0007947", reason="not an HPO term"),
        UnmappedTerm(path="phenotypicFeatures[2].type.id", id="NCIT:C3262", reason="not an HPO term"),
        UnmappedTerm(path="phenotypicFeatures[3].type.id", id="WITHHELD", reason="not an HPO term"),
    )


def test_each_term_once_per_list_and_the_feature_details_are_reported() -> None:
    case, report = case_from_phenopacket(
        phenopacket(
            feature("HP:0001250", onset={"age": {"iso8601duration": "P1Y"}}, modifiers=[{"id": "HP:0012828"}]),
            feature("HP:0001250", excluded=False),
            feature("HP:0001250", excluded=True),
            feature("HP:0001945", severity={"id": "HP:0012826"}, evidence=[]),
        )
    )
    assert (case.hpo_observed, case.hpo_excluded) == (["HP:0001250", "HP:0001945"], ["HP:0001250"])
    assert report.features_used == 4
    assert report.elements_ignored == (
        "id",
        "metaData",
        "subject.id",
        "phenotypicFeatures[].onset",
        "phenotypicFeatures[].modifiers",
        "phenotypicFeatures[].severity",
        "phenotypicFeatures[].evidence",
    )


def test_an_empty_phenopacket_is_an_empty_case() -> None:
    case, report = case_from_phenopacket({})
    assert case == PublishedCase()
    assert report == PhenopacketReport(features_used=0)


@pytest.mark.parametrize(
    ("document", "path", "problem"),
    [
        ([], "$", "expected a JSON object (a phenopacket)"),
        ({"subject": "x"}, "subject", "must be a JSON object"),
        (phenopacket(sex="M"), "subject.sex", "not one of MALE, FEMALE, UNKNOWN_SEX, OTHER_SEX"),
        (phenopacket(sex=7), "subject.sex", "not one of MALE, FEMALE, UNKNOWN_SEX, OTHER_SEX"),
        (
            phenopacket(timeAtLastEncounter={"age": {"iso8601duration": "P1Y2M3DT4H"}}),
            "subject.timeAtLastEncounter.age.iso8601duration",
            "not an ISO 8601 duration like P6Y, P3M, P1Y6M, P2W or P10D",
        ),
        (
            phenopacket(timeAtLastEncounter={"age": {"iso8601duration": 6}}),
            "subject.timeAtLastEncounter.age.iso8601duration",
            "must be a string",
        ),
        (phenopacket(timeAtLastEncounter="P6Y"), "subject.timeAtLastEncounter", "must be a JSON object"),
        ({"phenotypicFeatures": {}}, "phenotypicFeatures", "must be a JSON array"),
        (
            {"phenotypicFeatures": [feature("HP:0001250"), "HP:0001945"]},
            "phenotypicFeatures[1]",
            "must be a JSON object",
        ),
        (
            phenopacket({"type": {"label": "Seizure"}}),
            "phenotypicFeatures[0].type.id",
            "missing (an ontology class id such as HP:0001250)",
        ),
        (phenopacket(feature("HP:123")), "phenotypicFeatures[0].type.id", "not an HPO id like HP:0001250"),
        (
            phenopacket(feature("HP:0001250", excluded="true")),
            "phenotypicFeatures[0].excluded",
            "must be true or false",
        ),
        (
            phenopacket(feature("HP:0001250", negated=True)),
            "phenotypicFeatures[0].negated",
            "a phenopacket schema v1 field: send v2 (`excluded`)",
        ),
        (
            {**phenopacket(), "metaData": {"phenopacketSchemaVersion": "1.0.0"}},
            "metaData.phenopacketSchemaVersion",
            "a phenopacket schema v1 document: send schema v2 (2.0)",
        ),
        (
            phenopacket(*[feature(f"HP:{n:07d}") for n in range(1, 258)]),
            "phenotypicFeatures",
            "257 distinct observed terms: more than 256",
        ),
    ],
    ids=[
        "not-object",
        "subject",
        "sex",
        "sex-number",
        "duration",
        "duration-type",
        "time",
        "features",
        "feature",
        "no-id",
        "malformed-hpo",
        "excluded",
        "negated",
        "v1",
        "too-many",
    ],
)
def test_an_unreadable_document_names_the_json_path(document: Any, path: str, problem: str) -> None:
    error = error_of(document)
    assert (error.json_path, error.problem, str(error)) == (path, problem, f"{path}: {problem}")


def test_no_subject_value_in_a_report_or_an_error() -> None:
    planted = {"id": "Quillfeather-Zephyrine", "dateOfBirth": "1961-09-27T00:00:00Z", "alternateIds": ["MRN-77341982"]}
    document = load("PMID_12058348_Patient_1")
    document["subject"] |= planted
    _, report = case_from_phenopacket(document)
    text = msgspec.json.encode(report).decode()
    assert "subject.dateOfBirth" in text and "subject.alternateIds" in text
    for value in ("Quillfeather", "1961-09-27", "MRN-77341982"):
        assert value not in text
    broken = copy.deepcopy(document)
    broken["subject"]["sex"] = "Quillfeather"
    broken["phenotypicFeatures"][0]["type"]["id"] = "HP:Zephyrine"
    error = error_of(broken)
    assert "Quillfeather" not in str(error)
    broken["subject"]["sex"] = "MALE"
    assert "Zephyrine" not in str(error_of(broken))
    unreadable_key = {**phenopacket(), "Quillfeather Zephyrine": 1}
    assert "Quillfeather" not in msgspec.json.encode(case_from_phenopacket(unreadable_key)[1]).decode()


def test_the_error_is_a_value_error_that_survives_pickling() -> None:
    error = PhenopacketInputError("phenotypicFeatures[2].excluded", "must be true or false")
    copied = pickle.loads(pickle.dumps(error))
    assert isinstance(copied, PhenopacketInputError)
    assert isinstance(copied, ValueError)
    assert (copied.json_path, copied.problem, str(copied)) == (error.json_path, error.problem, str(error))


def test_the_case_round_trips_as_the_service_receives_json() -> None:
    case, _ = case_from_phenopacket(load("PMID_10851256_family_815"))
    assert msgspec.json.decode(msgspec.json.encode(case), type=PublishedCase) == case
