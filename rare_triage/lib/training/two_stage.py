"""Two-stage classifier: any disease vs none, then which kind of disease among the diseased.

Kept as a comparison candidate only: skl2onnx has no converter for it, so it is never the served model.
"""

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone

from rare_triage.lib.training.imbalance import balanced_sample_weight


class TwoStageClassifier(ClassifierMixin, BaseEstimator):
    """P(none) = 1 - P(disease); P(k) = P(disease) * P(k | disease) for every other class k."""

    def __init__(self, first: Any, second: Any, none_class: int = 0, balanced: bool = True) -> None:
        self.first = first
        self.second = second
        self.none_class = none_class
        self.balanced = balanced

    def fit(self, X: Any, y: np.ndarray) -> "TwoStageClassifier":
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        if self.none_class not in self.classes_:
            raise ValueError(f"two-stage: class {self.none_class} (none) is absent from y")
        diseased = y != self.none_class
        self.disease_classes_ = self.classes_[self.classes_ != self.none_class]
        self.first_ = clone(self.first).fit(X, diseased.astype(int), **self._weights(diseased.astype(int)))
        inner = np.searchsorted(self.disease_classes_, y[diseased])
        self.second_ = clone(self.second).fit(X[diseased], inner, **self._weights(inner))
        return self

    def _weights(self, y: np.ndarray) -> dict[str, np.ndarray]:
        return {"sample_weight": balanced_sample_weight(y)} if self.balanced else {}

    def predict_proba(self, X: Any) -> np.ndarray:
        p_disease = self.first_.predict_proba(X)[:, 1]
        p_kind = self.second_.predict_proba(X)
        out = np.zeros((len(p_disease), len(self.classes_)))
        out[:, np.searchsorted(self.classes_, self.none_class)] = 1.0 - p_disease
        out[:, np.searchsorted(self.classes_, self.disease_classes_)] = p_disease[:, None] * p_kind
        return out

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(self.classes_[self.predict_proba(X).argmax(axis=1)])
