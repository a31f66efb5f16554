"""Data tests of the synthetic extract for specificity: the ordinary, common ways in which red-flag-like findings
occur in non-orphan patients (isolated fever, known intellectual disability, findings of old age, hemoptysis in
bronchitis), and orphan patients that keep their HPO frequencies, single-finding presentations included."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from rare_triage.lib.ingest.synthetic import SyntheticConfig
from rare_triage.lib.ingest.synthetic.symptoms import ORPHAN_RECORDED_SHARE
from rare_triage.lib.reference.ontology import ReferenceTables
from rare_triage.lib.schema import (
    FEVER_HPO,
    RAW_COMORBIDITIES,
    RAW_DIAGNOSES,
    RAW_ENCOUNTERS,
    RAW_PATIENTS,
    RAW_SYMPTOMS,
)
from rare_triage_tests.lib.ingest.synthetic.helpers import encounter_labels, generate_days

CONFIG = SyntheticConfig(seed=23, encounters_per_day=4000, error_rate=0.0)
DAYS = [dt.date(2025, 1, 8) + dt.timedelta(days=5 * step) for step in range(10)]  # winter weekdays
INTELLECTUAL_DISABILITY = "HP:0001249"
HEMOPTYSIS = "HP:0002105"
RECURRENT_FEVER = "HP:0001954"
AGE_FINDINGS = ("HP:0000365", "HP:0000505", "HP:0001337", "HP:0001324", "HP:0009830", "HP:0001288")


@pytest.fixture(scope="module")
def extract(reference_tables: ReferenceTables) -> dict[str, pd.DataFrame]:
    return generate_days(CONFIG, reference_tables, DAYS)


@pytest.fixture(scope="module")
def labels(extract: dict[str, pd.DataFrame]) -> pd.Series:
    return encounter_labels(extract)


@pytest.fixture(scope="module")
def vocabulary_terms(extract: dict[str, pd.DataFrame], reference_tables: ReferenceTables) -> pd.DataFrame:
    """Distinct (encounter_id, vocab_id) of the present symptoms rolled up to the vocabulary."""
    symptoms = extract[RAW_SYMPTOMS]
    present = symptoms.loc[symptoms["present"], ["encounter_id", "hpo_id"]]
    return present.merge(reference_tables.term_rollup, on="hpo_id")[["encounter_id", "vocab_id"]].drop_duplicates()


@pytest.fixture(scope="module")
def age(extract: dict[str, pd.DataFrame]) -> pd.Series:
    encounters = extract[RAW_ENCOUNTERS].merge(
        extract[RAW_PATIENTS].drop_duplicates("patient_id")[["patient_id", "birth_date"]], on="patient_id"
    )
    years = (encounters["encounter_date"] - encounters["birth_date"]).dt.days / 365.25
    return pd.Series(years.to_numpy(), index=encounters["encounter_id"].to_numpy())


def _with_term(vocabulary_terms: pd.DataFrame, hpo_id: str) -> pd.Index:
    return pd.Index(vocabulary_terms.loc[vocabulary_terms["vocab_id"] == hpo_id, "encounter_id"].unique())


def test_isolated_fever_is_common_in_non_orphans_and_labelled_common(
    vocabulary_terms: pd.DataFrame, labels: pd.Series
) -> None:
    terms_per_encounter = vocabulary_terms.groupby("encounter_id")["vocab_id"].agg(list)
    fever_only = terms_per_encounter.index[terms_per_encounter.map(lambda terms: terms == [FEVER_HPO])]
    fever_only_labels = labels.reindex(fever_only)
    non_orphan = labels[labels != "orphan"]
    assert fever_only_labels.ne("orphan").sum() >= 100
    assert fever_only.isin(non_orphan.index).sum() / len(non_orphan) > 0.003
    shares = fever_only_labels.value_counts(normalize=True)
    assert shares.get("acute", 0.0) > 0.7  # viral illness / fever without source, not a rare disease
    assert shares.get("orphan", 0.0) < 0.05


def test_known_intellectual_disability_is_recorded_at_routine_visits(
    extract: dict[str, pd.DataFrame], vocabulary_terms: pd.DataFrame, labels: pd.Series
) -> None:
    comorbidities = extract[RAW_COMORBIDITIES]
    known = pd.Index(comorbidities.loc[comorbidities["icd10_code"] == "F79", "encounter_id"].unique())
    known = known[labels.reindex(known).ne("orphan").to_numpy()]
    with_id = _with_term(vocabulary_terms, INTELLECTUAL_DISABILITY)
    assert len(known) >= 50
    assert 0.3 < known.isin(with_id).mean() < 0.7
    routine = known[labels.reindex(known).isin(["none", "mild"]).to_numpy()]
    assert routine.isin(with_id).sum() >= 5  # a check-up or a cold of a patient known to have ID
    non_orphan = labels.index[labels != "orphan"]
    share = non_orphan.isin(with_id).mean()
    assert 0.002 < share < 0.02  # about 1% prevalence (Maulik et al. 2011), recorded at about half the visits


def test_elderly_record_findings_of_old_age_more_often_than_the_young(
    vocabulary_terms: pd.DataFrame, labels: pd.Series, age: pd.Series, extract: dict[str, pd.DataFrame]
) -> None:
    symptoms = extract[RAW_SYMPTOMS]
    present = symptoms[symptoms["present"]]
    non_orphan = age[labels.reindex(age.index).ne("orphan").to_numpy()]
    old, young = non_orphan.index[non_orphan >= 70], non_orphan.index[(non_orphan >= 18) & (non_orphan < 40)]
    for hpo_id in AGE_FINDINGS:
        with_term = _with_term(vocabulary_terms, hpo_id).union(present.loc[present["hpo_id"] == hpo_id, "encounter_id"])
        old_share, young_share = old.isin(with_term).mean(), young.isin(with_term).mean()
        assert old_share > 0.02, hpo_id
        assert old_share > 4 * young_share, hpo_id


def test_hemoptysis_and_recurrent_fever_have_common_causes(vocabulary_terms: pd.DataFrame, labels: pd.Series) -> None:
    non_orphan = labels.index[labels != "orphan"]
    for hpo_id in (HEMOPTYSIS, RECURRENT_FEVER):
        assert non_orphan.isin(_with_term(vocabulary_terms, hpo_id)).sum() >= 10, hpo_id


def test_age_windows_of_the_problem_list(extract: dict[str, pd.DataFrame], age: pd.Series) -> None:
    comorbidities = extract[RAW_COMORBIDITIES]
    ages = comorbidities["encounter_id"].map(age)
    for code, low, high in (("R62.8", 0.0, 3.0), ("F88", 0.0, 6.0), ("E34.3", 2.0, 17.0)):
        rows = ages[comorbidities["icd10_code"] == code]
        assert len(rows) > 0, code
        assert rows.between(low, high).all(), code


def test_orphans_keep_hpo_frequencies_and_single_finding_presentations(
    extract: dict[str, pd.DataFrame], reference_tables: ReferenceTables
) -> None:
    diagnoses, symptoms = extract[RAW_DIAGNOSES], extract[RAW_SYMPTOMS]
    orpha = diagnoses[diagnoses["code_system"] == "ORPHA"]
    orpha = orpha.assign(orpha_code=orpha["code"].str[6:].astype("int64"))[["encounter_id", "orpha_code"]]
    annotations = reference_tables.orpha_phenotypes
    pairs = orpha.merge(annotations[annotations["frequency"] > 0], on="orpha_code")
    present = symptoms.loc[symptoms["present"], ["encounter_id", "hpo_id"]]
    pairs = pairs.merge(present.assign(row=1.0), on=["encounter_id", "hpo_id"], how="left")
    pairs["shown"] = pairs.pop("row").notna()
    classes = pd.cut(pairs["frequency"], [0.0, 0.05, 0.3, 0.8, 1.0])
    shown = pairs.groupby(classes, observed=True).agg(shown=("shown", "mean"), frequency=("frequency", "mean"))
    expected = ORPHAN_RECORDED_SHARE * shown["frequency"]
    assert shown["shown"].is_monotonic_increasing
    assert np.all(shown["shown"] > 0.6 * expected)
    assert np.all(shown["shown"][1:] < 1.6 * expected[1:])  # the rarest class gains most from the one forced feature
    features = pairs.groupby("encounter_id")["shown"].sum()
    assert (features >= 1).all()  # every orphan visit shows its disease
    assert (features == 1).mean() > 0.1  # single-finding presentations
    systems = present.merge(reference_tables.term_system, on="hpo_id").groupby("encounter_id")["system_id"].nunique()
    assert (systems.reindex(features.index, fill_value=0) == 1).mean() > 0.02  # single-system presentations
