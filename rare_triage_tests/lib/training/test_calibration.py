import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.pipeline import Pipeline

from rare_triage.lib.training.calibration import (
    calibrate_classifier,
    calibrate_pipeline,
    choose_calibration,
    compare_calibration,
)
from rare_triage.lib.training.candidates import CandidateSpec, fit_candidate
from rare_triage.lib.training.columns import feature_roles, feature_set_columns, label_codes, model_inputs
from rare_triage_tests.lib.training.conftest import SMALL_PARAMS, Windows

Fitted = tuple[Pipeline, pd.DataFrame, np.ndarray]


@pytest.fixture(scope="module")
def fitted(windows: Windows) -> Fitted:
    columns = feature_set_columns("all", list(windows.train.columns))
    X, y = model_inputs(windows.train, columns), label_codes(windows.train["label"])
    pipeline = fit_candidate(CandidateSpec("xgboost", "class_weight"), X, y, feature_roles(columns), SMALL_PARAMS)
    return pipeline, model_inputs(windows.validation, columns), label_codes(windows.validation["label"])


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_unwrapped_calibrator_predicts_exactly_like_the_frozen_one(fitted: Fitted, method: str) -> None:
    pipeline, X_val, y_val = fitted
    Xt = pipeline[:-1].transform(X_val)
    reference = CalibratedClassifierCV(FrozenEstimator(pipeline[-1]), method=method).fit(Xt, y_val)
    unwrapped = calibrate_classifier(pipeline[-1], Xt, y_val, method)
    assert not any(isinstance(c.estimator, FrozenEstimator) for c in unwrapped.calibrated_classifiers_)
    np.testing.assert_array_equal(unwrapped.predict_proba(Xt), reference.predict_proba(Xt))


def test_calibrated_pipeline_reuses_the_fitted_preprocessing(fitted: Fitted) -> None:
    pipeline, X_val, y_val = fitted
    calibrated = calibrate_pipeline(pipeline, X_val, y_val, "sigmoid")
    assert calibrated.steps[0][1] is pipeline.steps[0][1]
    assert calibrated.predict_proba(X_val.iloc[:10]).shape == (10, 5)


def test_comparison_is_cross_fitted_and_choice_needs_a_real_gain(fitted: Fitted) -> None:
    pipeline, X_val, y_val = fitted
    report = compare_calibration(pipeline, X_val, y_val)
    assert set(report) == {"none", "sigmoid", "isotonic"}
    assert all("brier_multiclass" in v and "ece_orphan" in v for v in report.values())
    chosen = choose_calibration(report)
    best = min(report, key=lambda m: report[m]["brier_multiclass"])
    assert chosen in (best, "none")


def test_choice_rules() -> None:
    report = {
        "none": {"brier_multiclass": 0.300},
        "sigmoid": {"brier_multiclass": 0.299},
        "isotonic": {"brier_multiclass": 0.250},
    }
    assert choose_calibration(report) == "isotonic"
    assert choose_calibration({**report, "isotonic": {"brier_multiclass": 0.299}}) == "none"
    assert choose_calibration(report, "sigmoid") == "sigmoid"
    with pytest.raises(ValueError, match="calibration: mode 'platt'"):
        choose_calibration(report, "platt")
