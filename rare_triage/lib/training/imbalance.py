"""Imbalance strategies: class weights, or oversampling that happens at fit time only.

Samplers (imbalanced-learn) run inside an imblearn Pipeline during fit and are stripped from the fitted
pipeline afterwards (`servable_pipeline`), so what is served and exported is a plain scikit-learn Pipeline.
"""

from functools import partial
from typing import Any

import numpy as np
from imblearn.over_sampling import SMOTE, RandomOverSampler
from sklearn.pipeline import Pipeline
from sklearn.utils.class_weight import compute_sample_weight

IMBALANCE_STRATEGIES = ("class_weight", "random_oversampling", "smote", "none")
SAMPLER_STRATEGIES = ("random_oversampling", "smote")


def oversampling_targets(y: np.ndarray, ratio: float) -> dict[int, int]:
    """Target count per class: every class raised to at least `ratio` x the largest class (never lowered)."""
    classes, counts = np.unique(y, return_counts=True)
    goal = int(np.ceil(ratio * counts.max()))
    return {int(c): max(int(n), goal) for c, n in zip(classes, counts, strict=True)}


class BinarySnappingSMOTE(SMOTE):
    """SMOTE whose synthetic rows keep 0/1 columns (one-hot categoricals, phenotype flags) at 0 or 1.

    Plain SMOTE interpolates them to fractions (a 0.37 "female"), which means nothing and, measured here,
    made XGBoost six times slower to fit (hundreds of histogram bins instead of two per column).
    """

    def _fit_resample(self, X: Any, y: Any) -> tuple[Any, Any]:
        X_res, y_res = super()._fit_resample(X, y)
        values = np.asarray(X)
        binary = ((values == 0.0) | (values == 1.0)).all(axis=0)
        if binary.any() and len(X_res) > len(values):
            X_res = np.array(X_res, dtype=np.float64, copy=True)
            X_res[len(values) :, binary] = np.round(X_res[len(values) :, binary])
        return X_res, y_res


def make_sampler(strategy: str, ratio: float, seed: int, smallest_class: int) -> Any:
    """The imbalanced-learn sampler of a strategy (None for class_weight / none)."""
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"oversampling_ratio: must be in (0, 1], got {ratio}")
    targets = partial(oversampling_targets, ratio=ratio)
    if strategy == "random_oversampling":
        return RandomOverSampler(sampling_strategy=targets, random_state=seed)
    if strategy == "smote":
        if smallest_class < 2:
            raise ValueError(f"smote: the smallest class has {smallest_class} row(s); SMOTE needs at least 2")
        return BinarySnappingSMOTE(sampling_strategy=targets, k_neighbors=min(5, smallest_class - 1), random_state=seed)
    if strategy in ("class_weight", "none"):
        return None
    raise ValueError(f"imbalance: {strategy!r} is not one of {list(IMBALANCE_STRATEGIES)}")


def balanced_sample_weight(y: np.ndarray) -> np.ndarray:
    """Per-row weights inversely proportional to class frequency (what class_weight='balanced' does)."""
    return np.asarray(compute_sample_weight("balanced", y), dtype=np.float64)


def servable_pipeline(fitted: Any) -> Pipeline:
    """The fitted steps without fit-time samplers, as a plain scikit-learn Pipeline."""
    steps = [(name, step) for name, step in fitted.steps if not hasattr(step, "fit_resample")]
    return Pipeline(steps)
