"""The HTML drift report: self-contained, escaped, one plot per drifted feature up to a cap."""

import re

import numpy as np
import pandas as pd
import pytest

from rare_triage.lib import schema
from rare_triage.lib.monitoring.drift import DRIFTED, compute_drift
from rare_triage.lib.monitoring.drift_html import render_drift_html
from rare_triage.lib.monitoring.profile import ReferenceProfile, build_reference_profile
from rare_triage_tests.lib.monitoring.test_drift import (
    CATEGORICAL,
    NUMERIC,
    drift_of,
    encounters,
    predictions,
    reference_profile,
)

HOSTILE = "<script>alert('x')</script>"


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    return reference_profile()


def shifted_window() -> pd.DataFrame:
    window = encounters(5_000, 1, temperature_shift=0.8, flag_prevalence=0.10)
    window.loc[window.index[:500], "centre_id"] = "C99"
    return window


def test_report_shows_decision_reasons_features_and_predictions(profile: ReferenceProfile) -> None:
    window = shifted_window()
    result = drift_of(window, profile)
    page = render_drift_html(result, profile, window)
    assert page.startswith("<!DOCTYPE html>")
    assert 'class="decision retrain"' in page
    for feature in ("temperature_c", "centre_id", "hpo_0001945"):
        assert feature in page
    assert "Prediction drift" in page
    assert "orphan_flag_rate" in page
    assert "&#x27;C99&#x27;" in page  # the reason naming the new centre, escaped


def test_one_image_per_drifted_feature(profile: ReferenceProfile) -> None:
    window = shifted_window()
    result = drift_of(window, profile)
    drifted = result.features_with_status(DRIFTED)
    assert sorted(drifted) == ["centre_id", "temperature_c"]
    page = render_drift_html(result, profile, window)
    assert page.count("<img ") == len(drifted)
    assert len(re.findall(r'src="data:image/png;base64,[A-Za-z0-9+/=]+"', page)) == len(drifted)


def test_plots_are_capped_and_the_rest_counted(profile: ReferenceProfile) -> None:
    window = shifted_window()
    page = render_drift_html(drift_of(window, profile), profile, window, max_plots=1)
    assert page.count("<img ") == 1
    assert "1 more drifted feature(s) not plotted (at most 1 plots)" in page


def test_report_is_self_contained(profile: ReferenceProfile) -> None:
    window = shifted_window()
    page = render_drift_html(drift_of(window, profile), profile, window)
    assert "<script" not in page
    assert "<link" not in page
    assert "http://" not in page
    assert "https://" not in page


def test_hostile_feature_name_is_escaped() -> None:
    rng = np.random.default_rng(0)
    reference = encounters(5_000, 0).assign(**{HOSTILE: rng.normal(0.0, 1.0, 5_000)})
    window = encounters(2_000, 1).assign(**{HOSTILE: rng.normal(2.0, 1.0, 2_000)})
    proba, flags, review = predictions(5_000, 0)
    profile = build_reference_profile(
        reference,
        numeric_columns=[*NUMERIC, HOSTILE],
        categorical_columns=CATEGORICAL,
        probabilities=proba,
        class_labels=schema.LABELS,
        orphan_flag=flags,
        needs_review=review,
        model_version="<b>v1</b>",
    )
    proba, flags, review = predictions(2_000, 1)
    result = compute_drift(profile, window, probabilities=proba, orphan_flag=flags, needs_review=review)
    assert result.features_with_status(DRIFTED) == [HOSTILE]
    page = render_drift_html(result, profile, window)
    assert HOSTILE not in page
    assert "<script" not in page
    assert "<b>v1</b>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert page.count("<img ") == 1


def test_report_without_drift_or_data(profile: ReferenceProfile) -> None:
    window = encounters(5_000, 2)
    page = render_drift_html(drift_of(window, profile), profile, window)
    assert 'class="decision no_drift"' in page
    assert "<img" not in page
    assert "No drifted feature." in page
    small = encounters(10, 2)
    page = render_drift_html(drift_of(small, profile), profile, small)
    assert 'class="decision insufficient_data"' in page
    assert "No prediction drift computed." in page
