"""The reference profile: bins that suit flags and continuous values, predictions, JSON round trip, no identifiers."""

import json

import numpy as np
import pandas as pd
import pytest

from rare_triage.lib import schema
from rare_triage.lib.monitoring.profile import (
    MISSING_CATEGORY,
    ReferenceProfile,
    build_reference_profile,
)
from rare_triage.lib.testing.synthetic_features import synthesize_features
from rare_triage.lib.training.columns import NON_FEATURE_COLUMNS
from rare_triage_tests.lib.monitoring.test_drift import CATEGORICAL, NUMERIC, encounters, predictions, reference_profile


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    return reference_profile()


def test_binary_flag_gets_one_bin_per_value(profile: ReferenceProfile) -> None:
    flag = profile.numeric[NUMERIC.index("hpo_0001945")]
    assert flag.discrete
    assert flag.values == (0.0, 1.0)
    assert flag.edges == (0.5,)
    assert flag.proportions[1] == pytest.approx(0.02, abs=0.005)
    assert flag.sample == ()  # tested with chi-square on the bins, no KS sample needed


def test_counts_are_discrete_and_vitals_get_quantile_bins(profile: ReferenceProfile) -> None:
    visits = profile.numeric[NUMERIC.index("prior_visits_365d")]
    assert visits.discrete
    assert len(visits.proportions) == len(visits.values)
    temperature = profile.numeric[NUMERIC.index("temperature_c")]
    assert not temperature.discrete
    assert len(temperature.proportions) == len(temperature.edges) + 1
    assert list(temperature.edges) == sorted(set(temperature.edges))
    assert max(temperature.proportions) < 0.25  # roughly equal-mass bins, ties at rounded values allowed
    assert sum(temperature.proportions) == pytest.approx(1.0)
    assert len(temperature.sample) == 5_000
    assert temperature.missing_rate == pytest.approx(0.1, abs=0.01)
    assert temperature.mean == pytest.approx(36.9, abs=0.02)
    assert temperature.std == pytest.approx(0.4, abs=0.02)


def test_point_mass_at_the_minimum_does_not_leave_an_empty_first_bin() -> None:
    rng = np.random.default_rng(3)
    duration = np.where(rng.random(10_000) < 0.4, 0.0, rng.exponential(10.0, 10_000))
    frame = pd.DataFrame({"symptom_duration_days": duration})
    proba, flags, review = predictions(10_000, 3)
    profile = build_reference_profile(
        frame,
        numeric_columns=["symptom_duration_days"],
        categorical_columns=[],
        probabilities=proba,
        class_labels=schema.LABELS,
        orphan_flag=flags,
        needs_review=review,
        model_version="v1",
    )
    (column,) = profile.numeric
    assert column.proportions[0] == pytest.approx(0.4, abs=0.02)
    assert min(column.proportions) > 0.05


def test_categorical_shares_count_missing_as_a_category(profile: ReferenceProfile) -> None:
    sex = profile.categorical[CATEGORICAL.index("sex")]
    assert sex.categories[-1] == MISSING_CATEGORY
    assert sex.categories[:2] == ("F", "M")
    shares = dict(zip(sex.categories, sex.shares, strict=True))
    assert shares[MISSING_CATEGORY] == pytest.approx(0.02, abs=0.005) == sex.missing_rate
    assert sum(sex.shares) == pytest.approx(1.0)


def test_prediction_profile(profile: ReferenceProfile) -> None:
    proba, flags, review = predictions(20_000, 0)
    reference = profile.predictions
    assert reference.class_labels == schema.LABELS
    expected = np.bincount(proba.argmax(axis=1), minlength=5) / 20_000
    assert reference.class_shares == pytest.approx(expected)
    assert reference.flag_rate == pytest.approx(flags.mean())
    assert reference.review_rate == pytest.approx(review.mean())
    assert reference.orphan_probability.name == "orphan_probability"
    assert len(reference.orphan_probability.sample) == 5_000


def test_profile_is_seeded(profile: ReferenceProfile) -> None:
    assert reference_profile() == profile
    assert reference_profile(seed=1) != profile


def test_round_trip_through_dict_and_json(profile: ReferenceProfile) -> None:
    assert ReferenceProfile.from_dict(profile.to_dict()) == profile
    restored = ReferenceProfile.from_json_bytes(profile.to_json_bytes())
    assert restored == profile
    assert json.loads(profile.to_json_bytes())["format"] == 1


def test_an_all_missing_column_round_trips_without_nan() -> None:
    frame = encounters(1_000, 1).assign(heart_rate=np.nan)
    proba, flags, review = predictions(1_000, 1)
    profile = build_reference_profile(
        frame,
        numeric_columns=["heart_rate"],
        categorical_columns=["sex"],
        probabilities=proba,
        class_labels=schema.LABELS,
        orphan_flag=flags,
        needs_review=review,
        model_version="v1",
    )
    (heart_rate,) = profile.numeric
    assert heart_rate.missing_rate == 1.0
    assert heart_rate.mean is None
    text = profile.to_json_bytes().decode()
    assert "NaN" not in text
    assert ReferenceProfile.from_json_bytes(text.encode()) == profile


def test_unknown_format_is_rejected(profile: ReferenceProfile) -> None:
    with pytest.raises(ValueError, match="format"):
        ReferenceProfile.from_dict(profile.to_dict() | {"format": 99})
    with pytest.raises(ValueError, match="malformed"):
        ReferenceProfile.from_dict({"format": 1, "model_version": "v1"})


@pytest.mark.parametrize("column", [*NON_FEATURE_COLUMNS, "patient_id", "mrn", "encounter_id", "zip_code"])
def test_profile_rejects_keys_identifiers_and_the_label(column: str) -> None:
    frame = encounters(100, 1).assign(**{column: "x"})
    proba, flags, review = predictions(100, 1)
    with pytest.raises(ValueError, match=column):
        build_reference_profile(
            frame,
            numeric_columns=["heart_rate"],
            categorical_columns=[column],
            probabilities=proba,
            class_labels=schema.LABELS,
            orphan_flag=flags,
            needs_review=review,
            model_version="v1",
        )


def test_profile_holds_no_key_value(profile: ReferenceProfile) -> None:
    keys = encounters(20_000, 0)["encounter_key"].head(100)
    text = profile.to_json_bytes().decode()
    assert not any(key in text for key in keys)
    assert "encounter_key" not in text
    assert "patient_key" not in text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"numeric_columns": ["no_such_column"]}, "no_such_column"),
        ({"categorical_columns": ["heart_rate"]}, "named twice"),
        ({"probabilities": np.ones((10, 5))}, "probabilities"),
        ({"orphan_flag": np.ones(3, dtype=bool)}, "orphan_flag"),
        ({"class_labels": ("a", "b", "c", "d", "e")}, "orphan"),
        ({"numeric_columns": ["sex"]}, "sex"),
    ],
)
def test_bad_arguments_are_named(change: dict[str, object], message: str) -> None:
    proba, flags, review = predictions(100, 1)
    arguments: dict[str, object] = {
        "numeric_columns": ["heart_rate"],
        "categorical_columns": [],
        "probabilities": proba,
        "class_labels": schema.LABELS,
        "orphan_flag": flags,
        "needs_review": review,
        "model_version": "v1",
    } | change
    with pytest.raises(ValueError, match=message):
        build_reference_profile(encounters(100, 1), **arguments)  # type: ignore[arg-type]


def test_profile_of_the_full_features_table_stays_small() -> None:
    """Every model input of the features table (~120 columns); the size is driven by the continuous samples."""
    frame = synthesize_features(20_000, seed=0)
    columns = [c for c in frame.columns if c not in NON_FEATURE_COLUMNS]
    categorical = [c for c in columns if c in schema.FEATURE_CATEGORICAL_COLUMNS]
    proba, flags, review = predictions(len(frame), 0)
    profile = build_reference_profile(
        frame,
        numeric_columns=[c for c in columns if c not in categorical],
        categorical_columns=categorical,
        probabilities=proba,
        class_labels=schema.LABELS,
        orphan_flag=flags,
        needs_review=review,
        model_version="v1",
    )
    assert len(profile.feature_names) == len(columns) > 100
    assert len(profile.to_json_bytes()) < 2_000_000
