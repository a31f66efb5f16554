"""Orphan decision threshold tuned for a target recall, and the "needs review" band below it.

A missed orphan case costs far more than a false alarm, so the threshold is the highest orphan probability
that still reaches the target recall on validation data. Encounters between the review threshold (tuned for
a higher recall) and the orphan threshold are reported as "needs_review" rather than silently cleared.
"""

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from rare_triage.lib import schema
from rare_triage.lib.training.columns import ORPHAN_INDEX

NEEDS_REVIEW_LABEL = "needs_review"


def threshold_for_recall(is_orphan: np.ndarray, scores: np.ndarray, target_recall: float) -> float:
    """The largest t such that flagging `scores >= t` catches at least `target_recall` of the positives."""
    if not 0.0 < target_recall <= 1.0:
        raise ValueError(f"target_recall: must be in (0, 1], got {target_recall}")
    positives = np.sort(np.asarray(scores, dtype=np.float64)[np.asarray(is_orphan, dtype=bool)])[::-1]
    if len(positives) == 0:
        raise ValueError("label: no orphan row to tune the threshold on (widen the validation window)")
    needed = math.ceil(target_recall * len(positives) - 1e-9)
    return float(positives[max(needed, 1) - 1])


@dataclass(frozen=True)
class ThresholdPolicy:
    """Orphan threshold and the lower threshold of the needs-review band, with how they were chosen."""

    orphan_threshold: float
    review_threshold: float
    target_recall: float
    review_recall: float

    def __post_init__(self) -> None:
        if self.review_threshold > self.orphan_threshold:
            raise ValueError(
                f"thresholds: review_threshold {self.review_threshold} is above orphan_threshold "
                f"{self.orphan_threshold}"
            )

    def thresholds(self) -> dict[str, float]:
        """What the manifest carries as `thresholds`."""
        return {schema.ORPHAN_LABEL: self.orphan_threshold, NEEDS_REVIEW_LABEL: self.review_threshold}

    def needs_review(self) -> dict[str, Any]:
        """The needs-review rule as data (what the manifest carries as `needs_review`)."""
        return {
            "label": NEEDS_REVIEW_LABEL,
            "rule": "review_threshold <= orphan_probability < orphan_threshold",
            "orphan_probability_min": self.review_threshold,
            "orphan_probability_max": self.orphan_threshold,
            "tuned_for_recall": {"orphan": self.target_recall, NEEDS_REVIEW_LABEL: self.review_recall},
        }

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_bundle(cls, thresholds: Mapping[str, float], needs_review: Mapping[str, Any]) -> "ThresholdPolicy":
        """Rebuild the policy from what a TrainedModel carries (`thresholds`, `needs_review`)."""
        recalls = needs_review.get("tuned_for_recall", {})
        return cls(
            orphan_threshold=float(thresholds[schema.ORPHAN_LABEL]),
            review_threshold=float(thresholds.get(NEEDS_REVIEW_LABEL, thresholds[schema.ORPHAN_LABEL])),
            target_recall=float(recalls.get(schema.ORPHAN_LABEL, float("nan"))),
            review_recall=float(recalls.get(NEEDS_REVIEW_LABEL, float("nan"))),
        )


def tune_threshold_policy(
    y: np.ndarray, proba: np.ndarray, target_recall: float = 0.95, review_recall: float = 0.99
) -> ThresholdPolicy:
    """Thresholds from validation labels (indices into LABELS) and predicted probabilities."""
    if review_recall < target_recall:
        raise ValueError(f"review_recall: must be >= target_recall ({target_recall}), got {review_recall}")
    is_orphan = np.asarray(y) == ORPHAN_INDEX
    scores = np.asarray(proba)[:, ORPHAN_INDEX]
    return ThresholdPolicy(
        orphan_threshold=threshold_for_recall(is_orphan, scores, target_recall),
        review_threshold=threshold_for_recall(is_orphan, scores, review_recall),
        target_recall=target_recall,
        review_recall=review_recall,
    )


def flag_orphan(proba: np.ndarray, policy: ThresholdPolicy) -> np.ndarray:
    """True where the orphan probability reaches the orphan threshold."""
    return np.asarray(proba)[:, ORPHAN_INDEX] >= policy.orphan_threshold


def in_review_band(proba: np.ndarray, policy: ThresholdPolicy) -> np.ndarray:
    """True where the orphan probability falls in [review_threshold, orphan_threshold)."""
    p = np.asarray(proba)[:, ORPHAN_INDEX]
    return (p >= policy.review_threshold) & (p < policy.orphan_threshold)


def predict_codes(proba: np.ndarray, policy: ThresholdPolicy) -> np.ndarray:
    """Class index per row: orphan when flagged, else the most probable of the other classes."""
    others = np.asarray(proba, dtype=np.float64).copy()
    others[:, ORPHAN_INDEX] = -np.inf
    return np.where(flag_orphan(proba, policy), ORPHAN_INDEX, others.argmax(axis=1))


def decide(proba: np.ndarray, policy: ThresholdPolicy) -> np.ndarray:
    """Outcome per row: a label of LABELS, or "needs_review" inside the review band."""
    labels = np.asarray(schema.LABELS, dtype=object)[predict_codes(proba, policy)]
    return np.where(in_review_band(proba, policy), NEEDS_REVIEW_LABEL, labels)
