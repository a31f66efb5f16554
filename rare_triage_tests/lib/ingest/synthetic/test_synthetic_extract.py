"""Data tests of the synthetic extract: contract, determinism, prevalence, realism, no shortcuts."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from rare_triage.lib.ingest.synthetic import SyntheticConfig, generate_extract
from rare_triage.lib.reference.ontology import ReferenceTables
from rare_triage.lib.schema import (
    FEVER_HPO,
    RAW_COLUMNS,
    RAW_COMORBIDITIES,
    RAW_DIAGNOSES,
    RAW_ENCOUNTERS,
    RAW_PATIENTS,
    RAW_SYMPTOMS,
    RAW_VITALS,
)
from rare_triage_tests.lib.ingest.synthetic.checks import problems
from rare_triage_tests.lib.ingest.synthetic.helpers import encounter_labels, generate_days, systems_per_encounter

CLEAN = SyntheticConfig(seed=11, encounters_per_day=3000, error_rate=0.0)
DAYS = [dt.date(2025, 1, 6) + dt.timedelta(days=7 * week + offset) for week in range(4) for offset in (0, 3)]


@pytest.fixture(scope="module")
def extract(reference_tables: ReferenceTables) -> dict[str, pd.DataFrame]:
    return generate_days(CLEAN, reference_tables, DAYS)


@pytest.fixture(scope="module")
def labels(extract: dict[str, pd.DataFrame]) -> pd.Series:
    return encounter_labels(extract)


def test_columns_and_dtypes_follow_the_schema(reference_tables: ReferenceTables) -> None:
    tables = generate_extract(dt.date(2025, 2, 3), SyntheticConfig(encounters_per_day=500), reference_tables)
    assert set(tables) == set(RAW_COLUMNS)
    for name, columns in RAW_COLUMNS.items():
        assert tuple(tables[name].columns) == columns, name
    assert RAW_COLUMNS[RAW_ENCOUNTERS][-1] == "prior_visits_365d"
    encounters = tables[RAW_ENCOUNTERS]
    assert encounters["encounter_date"].dtype == "datetime64[ns]"
    assert (encounters["encounter_date"] == pd.Timestamp("2025-02-03")).all()
    assert encounters["prior_visits_365d"].dtype == "Int64"
    assert tables[RAW_PATIENTS]["birth_date"].dtype == "datetime64[ns]"
    assert tables[RAW_VITALS]["value"].dtype == "float64"
    symptoms = tables[RAW_SYMPTOMS]
    assert symptoms["present"].dtype == "bool"
    assert symptoms["severity"].dtype == symptoms["duration_days"].dtype == "float64"
    assert tables[RAW_DIAGNOSES]["rank"].dtype == "int64"


def test_same_seed_and_day_give_identical_frames(reference_tables: ReferenceTables) -> None:
    day = dt.date(2025, 4, 2)
    first = generate_extract(day, CLEAN, reference_tables)
    second = generate_extract(day, CLEAN, reference_tables)
    for name in RAW_COLUMNS:
        pd.testing.assert_frame_equal(first[name], second[name])
    other_day = generate_extract(dt.date(2025, 4, 3), CLEAN, reference_tables)
    other_seed = generate_extract(
        day, SyntheticConfig(seed=12, encounters_per_day=3000, error_rate=0.0), reference_tables
    )
    assert not first[RAW_ENCOUNTERS]["patient_id"].equals(other_day[RAW_ENCOUNTERS]["patient_id"])
    assert not first[RAW_ENCOUNTERS]["patient_id"].equals(other_seed[RAW_ENCOUNTERS]["patient_id"])


def test_day_must_be_a_date(reference_tables: ReferenceTables) -> None:
    with pytest.raises(ValueError, match=r"day: expected a datetime\.date"):
        generate_extract(dt.datetime(2025, 1, 1, 12), CLEAN, reference_tables)


def test_clean_config_gives_no_invalid_rows(
    extract: dict[str, pd.DataFrame], reference_tables: ReferenceTables
) -> None:
    assert problems(extract, reference_tables) == {}


def test_patients_keep_their_identifiers_across_days(extract: dict[str, pd.DataFrame]) -> None:
    patients = extract[RAW_PATIENTS]
    seen_twice = patients[patients["patient_id"].duplicated(keep=False)]
    assert seen_twice["patient_id"].nunique() > 50
    assert len(seen_twice.drop_duplicates()) == seen_twice["patient_id"].nunique()


def test_repeat_visits_and_prior_visit_counts(extract: dict[str, pd.DataFrame]) -> None:
    encounters = extract[RAW_ENCOUNTERS]
    days_per_patient = encounters.groupby("patient_id")["encounter_date"].nunique()
    assert (days_per_patient >= 2).sum() > 50
    prior = encounters["prior_visits_365d"]
    assert prior.isna().mean() == pytest.approx(0.08, abs=0.02)
    assert prior.min() >= 0
    assert prior.median() >= 2


def test_orphan_share_is_low_overall_and_higher_in_tertiary(
    extract: dict[str, pd.DataFrame], labels: pd.Series
) -> None:
    encounters = extract[RAW_ENCOUNTERS]
    orphan = encounters["encounter_id"].map(labels).eq("orphan")
    assert 0.01 < orphan.mean() < 0.05
    by_level = orphan.groupby(encounters["centre_level"]).mean()
    assert by_level["tertiary"] > 3 * by_level["primary"]
    assert by_level["tertiary"] > by_level["secondary"] > by_level["primary"]


def test_every_acuity_and_checkups_are_present(labels: pd.Series) -> None:
    shares = labels.value_counts(normalize=True)
    for label in ("mild", "acute", "chronic"):
        assert 0.15 < shares[label] < 0.4, label
    assert 0.08 < shares["none"] < 0.3


def test_orphan_diagnoses_and_features(extract: dict[str, pd.DataFrame], reference_tables: ReferenceTables) -> None:
    diagnoses, symptoms = extract[RAW_DIAGNOSES], extract[RAW_SYMPTOMS]
    orpha = diagnoses[diagnoses["code_system"] == "ORPHA"]
    assert orpha["code"].str.fullmatch(r"ORPHA:\d+").all()
    assert (orpha["rank"] == 1).all()
    codes = orpha.assign(orpha_code=orpha["code"].str[6:].astype("int64"))
    present = symptoms[symptoms["present"]]
    features = codes.merge(present, on="encounter_id").merge(
        reference_tables.orpha_phenotypes, on=["orpha_code", "hpo_id"]
    )
    assert set(features["encounter_id"]) == set(codes["encounter_id"])  # every orphan visit shows its disease
    classes = codes.merge(reference_tables.orpha_diseases, on="orpha_code")["prevalence_class"]
    assert classes.value_counts().index[0] == "1-5 / 10 000"


def test_ages_span_children_to_over_89(extract: dict[str, pd.DataFrame]) -> None:
    encounters = extract[RAW_ENCOUNTERS].merge(extract[RAW_PATIENTS].drop_duplicates("patient_id"), on="patient_id")
    age = (encounters["encounter_date"] - encounters["birth_date"]).dt.days / 365.25
    assert age.min() >= 0
    assert (age < 18).mean() > 0.08
    assert (age > 89).mean() > 0.005
    assert age.max() < 106


def test_multimorbidity_rises_with_age(extract: dict[str, pd.DataFrame]) -> None:
    encounters = extract[RAW_ENCOUNTERS].merge(extract[RAW_PATIENTS].drop_duplicates("patient_id"), on="patient_id")
    age = (encounters["encounter_date"] - encounters["birth_date"]).dt.days / 365.25
    count = encounters["encounter_id"].map(extract[RAW_COMORBIDITIES].groupby("encounter_id").size()).fillna(0)
    by_band = count.groupby(pd.cut(age, [0, 18, 40, 60, 80, 120], right=False), observed=True).mean()
    assert by_band.is_monotonic_increasing
    assert by_band.iloc[-1] > 3 * by_band.iloc[0]
    several = count.groupby(age >= 70).apply(lambda values: (values >= 3).mean())
    assert several[True] > 0.4


def test_non_orphan_encounters_are_not_clean(
    extract: dict[str, pd.DataFrame], labels: pd.Series, reference_tables: ReferenceTables
) -> None:
    systems = systems_per_encounter(extract, reference_tables)
    orphan = systems.index.map(labels).to_numpy() == "orphan"
    assert (systems[~orphan] >= 3).mean() > 0.3  # several systems is no giveaway by itself
    assert systems[orphan].median() >= systems[~orphan].median()
    red_flags = set(
        reference_tables.vocabulary.loc[reference_tables.vocabulary["group"] == "orphan_red_flag", "hpo_id"]
    )
    present = extract[RAW_SYMPTOMS][extract[RAW_SYMPTOMS]["present"]]
    rolled = present.merge(reference_tables.term_rollup, on="hpo_id")
    with_flag = set(rolled.loc[rolled["vocab_id"].isin(red_flags), "encounter_id"])
    non_orphan_ids = systems.index[~orphan]
    assert 0.05 < non_orphan_ids.isin(with_flag).mean() < 0.4
    non_vocab = present[~present["hpo_id"].isin(reference_tables.vocabulary["hpo_id"])]
    assert non_vocab["encounter_id"].isin(non_orphan_ids).mean() > 0.3  # specific terms that only roll up


def test_duration_and_prior_visits_overlap_between_orphan_and_chronic(
    extract: dict[str, pd.DataFrame], labels: pd.Series
) -> None:
    symptoms = extract[RAW_SYMPTOMS]
    duration = symptoms.groupby("encounter_id")["duration_days"].max()
    label = duration.index.map(labels)
    orphan_days, chronic_days = duration[label == "orphan"], duration[label == "chronic"]
    assert orphan_days.isna().mean() > chronic_days.isna().mean()  # orphan duration often missing
    assert 0.33 < orphan_days.median() / chronic_days.median() < 3
    encounters = extract[RAW_ENCOUNTERS].set_index("encounter_id")
    prior = encounters["prior_visits_365d"].astype("float64")
    prior_label = prior.index.map(labels)
    orphan_prior, other_prior = prior[prior_label == "orphan"].dropna(), prior[prior_label != "orphan"].dropna()
    assert orphan_prior.median() <= 2.5 * other_prior.median()
    assert (other_prior > orphan_prior.median()).mean() > 0.2


def test_symptom_rows_present_absent_severity_and_duration(
    extract: dict[str, pd.DataFrame], reference_tables: ReferenceTables
) -> None:
    symptoms = extract[RAW_SYMPTOMS]
    assert 0.03 < (~symptoms["present"]).mean() < 0.3
    absent = symptoms[~symptoms["present"]]
    assert absent["severity"].isna().all()
    assert absent["duration_days"].isna().all()
    pain = set(reference_tables.pain_terms["hpo_id"])
    scored = symptoms[symptoms["severity"].notna()]
    assert scored["hpo_id"].map(lambda hpo: hpo == FEVER_HPO or hpo in pain).all()
    fever = symptoms[(symptoms["hpo_id"] == FEVER_HPO) & symptoms["present"]]
    assert fever["severity"].notna().mean() > 0.8
    assert symptoms.loc[symptoms["present"], "duration_days"].notna().mean() > 0.5
    assert not symptoms["hpo_id"].isin(reference_tables.vocabulary["hpo_id"]).all()


def test_fever_rows_match_higher_temperatures(extract: dict[str, pd.DataFrame]) -> None:
    symptoms, vitals = extract[RAW_SYMPTOMS], extract[RAW_VITALS]
    febrile = set(symptoms.loc[(symptoms["hpo_id"] == FEVER_HPO) & symptoms["present"], "encounter_id"])
    temperature = vitals[vitals["loinc_code"] == "8310-5"].set_index("encounter_id")["value"]
    assert temperature[temperature.index.isin(febrile)].median() > 37.8
    assert temperature[~temperature.index.isin(febrile)].median() < 37.2


def test_vitals_missingness_depends_on_the_setting(extract: dict[str, pd.DataFrame]) -> None:
    encounters = extract[RAW_ENCOUNTERS]
    per_encounter = encounters["encounter_id"].map(extract[RAW_VITALS].groupby("encounter_id").size()).fillna(0)
    by_type = per_encounter.groupby(encounters["consultation_type"]).mean()
    assert by_type["telehealth"] < 0.5
    assert 2 < by_type["primary_care"] < 5.5
    assert by_type["emergency"] > 5.5
    assert {"59408-5", "2708-6"} <= set(extract[RAW_VITALS]["loinc_code"])


def test_weekends_are_quieter(reference_tables: ReferenceTables) -> None:
    monday = generate_extract(dt.date(2025, 5, 5), CLEAN, reference_tables)
    sunday = generate_extract(dt.date(2025, 5, 11), CLEAN, reference_tables)
    assert len(sunday[RAW_ENCOUNTERS]) < 0.7 * len(monday[RAW_ENCOUNTERS])


def test_diagnosis_ranks(extract: dict[str, pd.DataFrame], labels: pd.Series) -> None:
    diagnoses = extract[RAW_DIAGNOSES]
    assert diagnoses.groupby("encounter_id")["rank"].min().eq(1).all()
    assert not diagnoses.duplicated(["encounter_id", "rank"]).any()
    checkups = labels.index[labels == "none"]
    assert not diagnoses["encounter_id"].isin(checkups).any()
    assert (diagnoses["rank"] == 2).mean() > 0.05


def test_encounters_before_a_patients_birth_do_not_happen(reference_tables: ReferenceTables) -> None:
    tables = generate_extract(dt.date(2023, 6, 1), CLEAN, reference_tables)
    assert problems(tables, reference_tables) == {}


def test_population_is_persistent_and_mostly_seen_once_a_day(extract: dict[str, pd.DataFrame]) -> None:
    encounters = extract[RAW_ENCOUNTERS]
    per_day = encounters.groupby(["encounter_date", "patient_id"]).size()
    assert per_day.max() <= 4
    assert np.mean(per_day == 1) > 0.95
