"""Probability calibration (Platt / isotonic) fitted on validation data, kept only if it helps.

The calibrator wraps the already fitted classifier (FrozenEstimator while fitting); the wrapper is then
removed from the fitted CalibratedClassifierCV, because skl2onnx has no converter for FrozenEstimator and
the unwrapped estimator is the very same fitted object (predictions are unchanged, see the tests).
"""

from typing import Any

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline

from rare_triage.lib.training.metrics import calibration_metrics

CALIBRATION_METHODS = ("sigmoid", "isotonic")
CALIBRATION_MODES = ("auto", "none", *CALIBRATION_METHODS)


def _unfreeze(calibrated: CalibratedClassifierCV) -> CalibratedClassifierCV:
    for inner in calibrated.calibrated_classifiers_:
        if isinstance(inner.estimator, FrozenEstimator):
            inner.estimator = inner.estimator.estimator
    if isinstance(calibrated.estimator, FrozenEstimator):
        calibrated.estimator = calibrated.estimator.estimator
    return calibrated


def calibrate_classifier(classifier: Any, Xt: np.ndarray, y: np.ndarray, method: str) -> CalibratedClassifierCV:
    """A CalibratedClassifierCV over the fitted classifier, its calibrators fitted on (Xt, y)."""
    if method not in CALIBRATION_METHODS:
        raise ValueError(f"calibration: method {method!r} is not one of {list(CALIBRATION_METHODS)}")
    calibrated = CalibratedClassifierCV(FrozenEstimator(classifier), method=method)
    calibrated.fit(Xt, y)
    return _unfreeze(calibrated)


def calibrate_pipeline(pipeline: Pipeline, X: Any, y: np.ndarray, method: str) -> Pipeline:
    """The same fitted preprocessing, the classifier wrapped by a calibrator fitted on (X, y)."""
    preprocess = Pipeline(pipeline.steps[:-1])
    name, classifier = pipeline.steps[-1]
    calibrated = calibrate_classifier(classifier, preprocess.transform(X), np.asarray(y), method)
    return Pipeline([*pipeline.steps[:-1], (name, calibrated)])


def compare_calibration(pipeline: Pipeline, X: Any, y: np.ndarray, seed: int = 0) -> dict[str, dict[str, float]]:
    """Brier and ECE of each method on validation, cross-fitted on two halves (a calibrator never scores the
    rows it was fitted on)."""
    y = np.asarray(y)
    preprocess = Pipeline(pipeline.steps[:-1])
    classifier = pipeline.steps[-1][1]
    Xt = preprocess.transform(X)
    raw = classifier.predict_proba(Xt)
    report = {"none": calibration_metrics(y, raw)}
    folds = list(StratifiedKFold(n_splits=2, shuffle=True, random_state=seed).split(Xt, y))
    for method in CALIBRATION_METHODS:
        proba = np.zeros_like(raw)
        for fit_rows, score_rows in folds:
            calibrated = calibrate_classifier(classifier, Xt[fit_rows], y[fit_rows], method)
            proba[score_rows] = calibrated.predict_proba(Xt[score_rows])
        report[method] = calibration_metrics(y, proba)
    return report


def choose_calibration(report: dict[str, dict[str, float]], mode: str = "auto", min_gain: float = 0.01) -> str:
    """The method with the lowest multiclass Brier if it beats no calibration by `min_gain` (relative), else
    "none"; a fixed `mode` other than auto is returned as is."""
    if mode not in CALIBRATION_MODES:
        raise ValueError(f"calibration: mode {mode!r} is not one of {list(CALIBRATION_MODES)}")
    if mode != "auto":
        return mode
    baseline = report["none"]["brier_multiclass"]
    best = min(CALIBRATION_METHODS, key=lambda m: report[m]["brier_multiclass"])
    return best if report[best]["brier_multiclass"] < baseline * (1.0 - min_gain) else "none"
