"""The encoder on a small hand-made model: a format-2 manifest and its phenotype encoding
(fixtures/small_model/), four vocabulary terms (Fever, Recurrent fever, Seizure, Abdominal pain) and three organ
systems (constitutional, nervous, digestive), every expected value worked out by hand from those files."""

import copy
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from serving.contract import Encounter, PublishedCase
from serving.encoding import EncodedBatch, Encoder, EncodingContractError, EncodingReport, PhenotypeEncoding

FIXTURES = Path(__file__).parent / "fixtures" / "small_model"
NAN = math.nan


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return data


MANIFEST = load("manifest.json")
ENCODING = load("phenotype_encoding.json")
ENCODER = Encoder(MANIFEST, ENCODING)

EMPTY_ROW: dict[str, float] = {
    "sex": -1,
    "age_band": -1,
    "centre_id": 3,  # this column has an explicit missing category (code 3)
    "centre_level": -1,
    "region": -1,
    "consultation_type": -1,
    "age_years": NAN,
    "temperature_c": NAN,
    "heart_rate": NAN,
    "respiratory_rate": NAN,
    "spo2": NAN,
    "systolic_bp": NAN,
    "diastolic_bp": NAN,
    "fever_score": NAN,
    "pain_score": NAN,
    "symptom_duration_days": NAN,
    "comorbidity_count": 0,  # no comorbidity row: 0, as the platform counts
    "prior_visits_365d": 0,  # governance counts unknown visits as none
    "n_systems_involved": 0,
    "n_present_terms": 0,
    "n_specific_terms": 0,
    "phenotype_ic_max": 0,
    "phenotype_ic_sum": 0,
    "hpo_0001945": NAN,
    "hpo_0001954": NAN,
    "hpo_0001250": NAN,
    "hpo_0002027": NAN,
    "sys_0025142": NAN,
    "sys_0000707": NAN,
    "sys_0025031": NAN,
}


def f32(value: float) -> float:
    return float(np.float32(value))


def row(batch: EncodedBatch, i: int = 0, encoder: Encoder = ENCODER) -> dict[str, float]:
    return {name: float(value) for name, value in zip(encoder.columns, batch.matrix[i], strict=True)}


def assert_row(actual: dict[str, float], **changes: float) -> None:
    """`actual` equals EMPTY_ROW with `changes` (as float32; NaN equals NaN)."""
    expected = {name: f32(value) for name, value in {**EMPTY_ROW, **changes}.items()}
    assert list(actual) == list(expected)
    different = {k: (actual[k], expected[k]) for k in expected if not np.array_equal(actual[k], expected[k], True)}
    assert not different, different


def encode_one(**fields: Any) -> tuple[dict[str, float], EncodingReport]:
    batch = ENCODER.encode([Encounter(**fields)])
    return row(batch), batch.reports[0]


def manifest_with_columns(columns: list[dict[str, Any]]) -> dict[str, Any]:
    manifest = copy.deepcopy(MANIFEST)
    manifest["input_schema"]["columns"] = [{**column, "index": i} for i, column in enumerate(columns)]
    return manifest


# ---- the phenotype encoding ----


def test_the_fixture_is_a_valid_phenotype_encoding() -> None:
    encoding = PhenotypeEncoding.from_dict(ENCODING)
    assert encoding.hpo_release == "2025-01-16"
    assert encoding.vocabulary_ids == ("HP:0001945", "HP:0001954", "HP:0001250", "HP:0002027")
    assert encoding.terms["HP:0001166"] == (5_123_456, (), ())  # information content in millionths
    assert encoding.fever_terms == frozenset({"HP:0001945"})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": "rare-triage-phenotype-encoding/2"}, "format 'rare-triage-phenotype-encoding/2' is not"),
        ({"format": None}, "format None is not"),
        ({"terms": None}, r"Expected `object`, got `null` - at `\$\.terms`"),
        ({"terms": {"HP:0001945": [0.1, [7], []]}}, r"terms\['HP:0001945'\]: index out of range"),
        ({"terms": {"HP:0001945": [-1.0, [0], []]}}, r"terms\['HP:0001945'\]: information content -1.0"),
        ({"terms": {"HP:1": [0.1, [], []]}}, r"at `key` in `\$\.terms`"),
        ({"vocabulary_ancestors": {"HP:0001945": ["HP:0001945"]}}, "exactly the vocabulary_ids"),
        ({"system_ids": ["HP:0025142", "HP:0025142"]}, "system_ids repeats an id"),
        ({"roll_up": {}}, "unknown field `roll_up`"),
    ],
)
def test_a_bad_phenotype_encoding_is_refused_naming_the_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(EncodingContractError, match=message):
        PhenotypeEncoding.from_dict({**ENCODING, **change})


def test_a_missing_table_is_named() -> None:
    broken = {k: v for k, v in ENCODING.items() if k != "vocabulary_ancestors"}
    with pytest.raises(EncodingContractError, match="missing required field `vocabulary_ancestors`"):
        PhenotypeEncoding.from_dict(broken)


# ---- building the encoder ----


def test_the_encoder_reads_the_manifest_columns_in_order() -> None:
    assert ENCODER.columns == tuple(c["name"] for c in MANIFEST["input_schema"]["columns"])
    assert ENCODER.input_name == "features"
    assert ENCODER.class_labels == ("none", "common_mild", "common_acute", "common_chronic", "orphan")


def test_a_format_1_manifest_with_the_encoding_inline_encodes_the_same() -> None:
    format_1 = {k: v for k, v in MANIFEST.items() if k != "files"} | {"format": 1, "phenotype_encoding": ENCODING}
    encounter = Encounter(sex="M", age_years=12, hpo_observed=["HP:0001954"], hpo_excluded=["HP:0000707"])
    expected = ENCODER.encode([encounter]).matrix
    np.testing.assert_array_equal(
        Encoder(format_1, format_1["phenotype_encoding"]).encode([encounter]).matrix, expected
    )
    prebuilt = PhenotypeEncoding.from_dict(ENCODING)
    np.testing.assert_array_equal(Encoder(MANIFEST, prebuilt).encode([encounter]).matrix, expected)


def numeric(name: str) -> dict[str, Any]:
    return {"name": name, "type": "numeric"}


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ([numeric("spo2"), numeric("bmi")], r"columns\[1\] \('bmi'\): not a feature the encoder computes"),
        ([numeric("hpo_0000002")], r"\('hpo_0000002'\): not a vocabulary term or organ system"),
        ([numeric("sys_0001626")], r"\('sys_0001626'\): not a vocabulary term or organ system"),
        ([numeric("sex")], r"\('sex'\): type 'numeric', the platform's column is categorical"),
        ([{**numeric("spo2"), "categories": [{"code": 0, "value": "a"}]}], "a numeric column has no categories"),
        ([numeric("spo2"), numeric("spo2")], "repeats a column name"),
        ([], "input_schema.columns is empty"),
        (
            [{"name": "sex", "type": "categorical", "categories": [{"code": 1, "value": "F"}], "missing_code": -1}],
            "codes 0..n-1 in order",
        ),
        (
            [{"name": "sex", "type": "categorical", "categories": [{"code": 0, "value": "F"}], "missing_code": 5}],
            "missing_code 5 out of range",
        ),
    ],
)
def test_a_manifest_column_the_encoder_cannot_compute_is_refused_by_name(
    columns: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(EncodingContractError, match=message):
        Encoder(manifest_with_columns(columns), ENCODING)


def test_a_manifest_of_another_shape_or_release_is_refused() -> None:
    with pytest.raises(EncodingContractError, match="missing field 'input_schema'"):
        Encoder({"format": 2}, ENCODING)
    with pytest.raises(EncodingContractError, match=r"Invalid enum value 'float64' - at `\$\.dtype`"):
        Encoder({"input_schema": {**MANIFEST["input_schema"], "dtype": "float64"}}, ENCODING)
    with pytest.raises(EncodingContractError, match="hpo_release '2026-01-01' differs"):
        Encoder({**MANIFEST, "hpo_release": "2026-01-01"}, ENCODING)
    with pytest.raises(EncodingContractError, match=r"index 3 is not its position"):
        bad = copy.deepcopy(MANIFEST)
        bad["input_schema"]["columns"][0]["index"] = 3
        Encoder(bad, ENCODING)


# ---- one encounter ----


def test_an_empty_encounter_is_the_platform_missing_encoding() -> None:
    values, report = encode_one()
    assert_row(values)
    assert report == EncodingReport()


def test_a_full_encounter_worked_out_by_hand() -> None:
    values, report = encode_one(
        sex="F",
        age_years=34.9,
        centre_id=" C02 ",
        centre_level="tertiary",
        region="  MADRID ",
        consultation_type="emergency",
        temperature_c=38.4,
        heart_rate=101,
        respiratory_rate=22,
        spo2=95.5,
        systolic_bp=130,
        diastolic_bp=85,
        fever_score=6,
        pain_score=3,
        symptom_duration_days=4,
        prior_visits_365d=2,
        comorbidity_count=1,
        # low-grade fever (rolls up to Fever), abdominal pain, arachnodactyly (no flag, specific), mode of
        # inheritance (no flag, IC 0), an id outside the release
        hpo_observed=["HP:0011134", "HP:0002027", "HP:0001166", "HP:0000005", "HP:9999999"],
        # seizure, and All (an ancestor of every vocabulary term, no organ system)
        hpo_excluded=["HP:0001250", "HP:0000001"],
    )
    assert_row(
        values,
        sex=1,
        age_band=2,  # 34.9 -> 34 -> "30-39"
        centre_id=1,  # stripped
        centre_level=2,
        region=1,  # folded to "Madrid"
        consultation_type=0,
        age_years=34,
        temperature_c=38.4,
        heart_rate=101,
        respiratory_rate=22,
        spo2=95.5,
        systolic_bp=130,
        diastolic_bp=85,
        fever_score=6,  # low-grade fever is a fever term
        pain_score=3,
        symptom_duration_days=4,
        comorbidity_count=1,
        prior_visits_365d=2,
        n_systems_involved=2,
        n_present_terms=4,  # the unknown id is not a present term (governance drops its row)
        n_specific_terms=1,
        phenotype_ic_max=5.123456,
        phenotype_ic_sum=1.000001 + 0.7 + 5.123456 + 0.0,
        hpo_0001945=1,
        hpo_0001954=0,  # absent through HP:0000001
        hpo_0001250=0,
        hpo_0002027=1,  # present wins over absent
        sys_0025142=1,
        sys_0025031=1,
    )
    assert report == EncodingReport(
        hpo_used=("HP:0011134", "HP:0002027", "HP:0001250", "HP:0000001"),
        hpo_outside=("HP:0001166", "HP:0000005"),
        hpo_unknown=("HP:9999999",),
    )


@pytest.mark.parametrize(
    ("observed", "excluded", "flags"),
    [
        # an excluded term marks absent every vocabulary term it is or is an ancestor of
        ([], ["HP:0001945"], {"hpo_0001945": 0, "hpo_0001954": 0}),
        ([], ["HP:0012531"], {"hpo_0002027": 0}),  # Pain, an ancestor of abdominal pain, no system
        # an excluded organ system marks the system, and the vocabulary under it, absent
        ([], ["HP:0000707"], {"hpo_0001250": 0, "sys_0000707": 0}),
        # Phenotypic abnormality: every vocabulary term and every system absent
        (
            [],
            ["HP:0000118"],
            {"hpo_0001945": 0, "hpo_0001954": 0, "hpo_0001250": 0, "hpo_0002027": 0}
            | {"sys_0025142": 0, "sys_0000707": 0, "sys_0025031": 0},
        ),
        # present wins over absent
        (["HP:0001954"], ["HP:0001945"], {"hpo_0001945": 1, "hpo_0001954": 1, "sys_0025142": 1}),
        (["HP:0007359"], ["HP:0000707"], {"hpo_0001250": 1, "sys_0000707": 1}),
        (
            ["HP:0012531"],
            ["HP:0000118"],
            {"hpo_0001945": 0, "hpo_0001954": 0, "hpo_0001250": 0, "hpo_0002027": 0}
            | {"sys_0025142": 0, "sys_0000707": 1, "sys_0025031": 0},
        ),
        # an excluded term that is no vocabulary ancestor and no system marks nothing
        ([], ["HP:0001166", "HP:0011134"], {}),
    ],
)
def test_flags_follow_the_feature_sql(observed: list[str], excluded: list[str], flags: dict[str, float]) -> None:
    values, _ = encode_one(hpo_observed=observed, hpo_excluded=excluded)
    names = [n for n in EMPTY_ROW if n.startswith(("hpo_", "sys_"))]
    assert {n: values[n] for n in names if not math.isnan(values[n])} == flags


def test_information_content_is_summed_exactly_and_specific_from_4() -> None:
    values, _ = encode_one(hpo_observed=["HP:0001945", "HP:0000707"])  # 0.1 + 0.2
    assert values["phenotype_ic_sum"] == f32(0.3)
    assert values["n_specific_terms"] == 0
    values, _ = encode_one(hpo_observed=["HP:0007359", "HP:0001954", "HP:0000001"])  # 4.0 (specific), 2.5, 0
    assert (values["n_specific_terms"], values["phenotype_ic_max"], values["phenotype_ic_sum"]) == (1, 4.0, 6.5)
    assert values["n_present_terms"] == 3


@pytest.mark.parametrize(
    ("fields", "fever_score", "dropped"),
    [
        ({"hpo_observed": ["HP:0001945"]}, 5, ()),
        ({"hpo_observed": ["HP:0001954"]}, 5, ()),  # under Fever
        ({"hpo_observed": ["HP:0011134", "HP:0001250"]}, 5, ()),  # rolls up to Fever
        ({"hpo_observed": ["HP:0001250"]}, NAN, ("fever_score",)),
        ({"hpo_excluded": ["HP:0001945"]}, NAN, ("fever_score",)),
        ({}, NAN, ("fever_score",)),
    ],
)
def test_the_fever_score_needs_an_observed_fever_term(
    fields: dict[str, Any], fever_score: float, dropped: tuple[str, ...]
) -> None:
    values, report = encode_one(fever_score=5, **fields)
    assert np.array_equal(values["fever_score"], fever_score, equal_nan=True)
    assert report.dropped_fields == dropped


@pytest.mark.parametrize(
    ("observed", "duration", "dropped"),
    [
        (["HP:0001250"], 3, ()),
        (["HP:0000005"], 3, ()),  # a term of the release, even one that sets no flag
        (["HP:9999999"], NAN, ("symptom_duration_days",)),  # outside the release: no observed finding
        ([], NAN, ("symptom_duration_days",)),
    ],
)
def test_the_symptom_duration_needs_an_observed_term(
    observed: list[str], duration: float, dropped: tuple[str, ...]
) -> None:
    values, report = encode_one(symptom_duration_days=3, hpo_observed=observed)
    assert np.array_equal(values["symptom_duration_days"], duration, equal_nan=True)
    assert report.dropped_fields == dropped


def test_the_pain_score_is_taken_as_sent() -> None:  # it may come from the pain-score vital, without any pain term
    values, report = encode_one(pain_score=7)
    assert values["pain_score"] == 7
    assert report.dropped_fields == ()


def test_a_field_the_model_does_not_read_is_not_reported_as_dropped() -> None:
    columns = [c for c in MANIFEST["input_schema"]["columns"] if c["name"] not in {"fever_score", "hpo_0001945"}]
    encoder = Encoder(manifest_with_columns(columns), ENCODING)
    batch = encoder.encode([Encounter(fever_score=5, symptom_duration_days=2)])
    assert batch.reports[0].dropped_fields == ("symptom_duration_days",)
    assert batch.matrix.shape == (1, len(MANIFEST["input_schema"]["columns"]) - 2)


@pytest.mark.parametrize(
    ("fields", "codes", "unseen"),
    [
        ({"centre_id": "C01"}, {"centre_id": 0}, ()),
        ({"centre_id": " C02\t"}, {"centre_id": 1}, ()),
        ({"centre_id": "C7"}, {"centre_id": 2}, ()),  # not a registry code: "other"
        ({"centre_id": "*"}, {"centre_id": 2}, ()),
        ({"centre_id": "C999"}, {"centre_id": -1}, ("centre_id",)),  # a registry code the model never saw
        ({"region": "cataluña"}, {"region": 0}, ()),
        ({"region": "Ｍａｄｒｉｄ"}, {"region": 1}, ()),  # full-width letters fold too
        ({"region": "Atlantis"}, {"region": 2}, ()),  # not a region: "other"
        ({"region": "Bretagne"}, {"region": -1}, ("region",)),  # a region the model never saw
        ({"age_years": 0.5}, {"age_band": 0, "age_years": 0}, ()),
        ({"age_years": 19.99}, {"age_band": 1, "age_years": 19}, ()),
        ({"age_years": 95}, {"age_band": 3, "age_years": 90}, ()),  # top-coded at 90
        ({"age_years": 45}, {"age_band": -1, "age_years": 45}, ("age_band",)),
        ({"sex": "U", "centre_level": "primary"}, {"sex": 3, "centre_level": 0}, ()),
        ({"consultation_type": "telehealth", "sex": "M"}, {"consultation_type": -1, "sex": 2}, ("consultation_type",)),
    ],
)
def test_categoricals_are_published_then_coded(
    fields: dict[str, Any], codes: dict[str, float], unseen: tuple[str, ...]
) -> None:
    values, report = encode_one(**fields)
    assert_row(values, **codes)
    assert report.unseen_categories == unseen


def test_each_id_is_reported_once() -> None:
    values, report = encode_one(
        hpo_observed=["HP:0001250", "HP:0001250", "HP:0000005"],
        hpo_excluded=["HP:0001250", "HP:0000005", "HP:0000005", "HP:1234567", "HP:1234567"],
    )
    assert report == EncodingReport(hpo_used=("HP:0001250",), hpo_outside=("HP:0000005",), hpo_unknown=("HP:1234567",))
    assert (values["n_present_terms"], values["hpo_0001250"], values["sys_0000707"]) == (2, 1, 1)


# ---- batches ----

VARIED = [
    Encounter(),
    Encounter(sex="F", age_years=3, temperature_c=39.1, fever_score=7, hpo_observed=["HP:0001945", "HP:0011134"]),
    Encounter(hpo_excluded=["HP:0000118"], centre_id="C01", region="Madrid", consultation_type="primary_care"),
    Encounter(hpo_observed=["HP:9999999"], symptom_duration_days=10, prior_visits_365d=4),
    Encounter(hpo_observed=["HP:0007359", "HP:0002027"], hpo_excluded=["HP:0001945"], pain_score=8, spo2=91),
    Encounter(age_years=91, sex="M", centre_id="Z1", region="Galicia", comorbidity_count=3),
    Encounter(hpo_observed=["HP:0001166"], hpo_excluded=["HP:0001166"], systolic_bp=140, diastolic_bp=90),
]


def test_a_batch_encodes_as_its_encounters_one_by_one() -> None:
    batch = ENCODER.encode(VARIED)
    assert batch.matrix.dtype == np.float32
    assert batch.matrix.flags["C_CONTIGUOUS"]
    assert batch.matrix.shape == (len(VARIED), len(ENCODER.columns))
    singles = [ENCODER.encode([encounter]) for encounter in VARIED]
    np.testing.assert_array_equal(batch.matrix, np.vstack([s.matrix for s in singles]))
    assert batch.reports == tuple(s.reports[0] for s in singles)
    assert len(batch) == len(VARIED)


def test_an_empty_batch_is_an_empty_matrix() -> None:
    batch = ENCODER.encode([])
    assert batch.matrix.shape == (0, len(ENCODER.columns))
    assert batch.matrix.dtype == np.float32
    assert batch.reports == ()


def test_the_matrix_follows_the_manifest_column_order() -> None:
    reordered = list(reversed(MANIFEST["input_schema"]["columns"]))
    encoder = Encoder(manifest_with_columns(reordered), ENCODING)
    assert encoder.columns == tuple(reversed(ENCODER.columns))
    np.testing.assert_array_equal(encoder.encode(VARIED).matrix, ENCODER.encode(VARIED).matrix[:, ::-1])


# ---- published cases ----


def test_a_published_case_is_encoded_as_the_platform_external_features() -> None:
    batch = ENCODER.encode_phenopacket(
        [
            PublishedCase(
                sex="MALE",
                age="P1Y6M",
                hpo_observed=["HP:0007359", "HP:5210278"],
                hpo_excluded=["HP:0002027", "HP:7777777"],
            )
        ]
    )
    assert_row(
        row(batch),
        sex=2,
        age_band=0,
        centre_id=-1,  # "external": not a category of the model
        age_years=1,
        prior_visits_365d=NAN,  # no governance step: unknown stays missing
        comorbidity_count=NAN,  # a case report says nothing of the problem list
        n_systems_involved=1,
        n_present_terms=2,  # an id outside the release counts, with information content 0
        n_specific_terms=1,
        phenotype_ic_max=4.0,
        phenotype_ic_sum=4.0,
        hpo_0001250=1,
        hpo_0002027=0,
        sys_0000707=1,
    )
    assert batch.reports[0] == EncodingReport(
        hpo_used=("HP:0007359", "HP:0002027"),
        hpo_unknown=("HP:5210278", "HP:7777777"),
        unseen_categories=("centre_id",),
    )


@pytest.mark.parametrize(
    ("case", "sex", "age_band", "age_years"),
    [
        (PublishedCase(), 3, -1, NAN),  # no sex: U; no age: missing
        (PublishedCase(sex="FEMALE", age="P10D"), 1, 0, 0),
        (PublishedCase(sex="OTHER_SEX", age="P18M"), 3, 0, 1),
        (PublishedCase(sex="UNKNOWN_SEX", age="P2W"), 3, 0, 0),
        (PublishedCase(sex="M", age="P95Y"), 2, 3, 90),
        (PublishedCase(sex="F", age="P10Y11M"), 1, 1, 10),
    ],
)
def test_published_case_sex_and_age(case: PublishedCase, sex: float, age_band: float, age_years: float) -> None:
    values = row(ENCODER.encode_phenopacket([case]))
    assert [values["sex"], values["age_band"]] == [sex, age_band]
    assert np.array_equal(values["age_years"], age_years, equal_nan=True)
