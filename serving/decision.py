"""The triage decision of a published model: the platform's policy, applied to the served probabilities.

A mirror of `rare_triage/lib/training/thresholds.py` (serving imports none of it), with the thresholds the
manifest carries (`thresholds.orphan`, `thresholds.needs_review`, as `ThresholdPolicy.thresholds()` writes them):
- `flag_orphan`: the orphan probability reaches the orphan threshold (`>=`);
- `in_review_band`: review threshold <= orphan probability < orphan threshold (the manifest's `needs_review.rule`);
- `predict_codes`: orphan when flagged, else the most probable of the other classes;
- `decide`: that label, or `needs_review` inside the review band.
A manifest without `thresholds.needs_review` has an empty band (`ThresholdPolicy.from_bundle` takes the orphan
threshold for it).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

ORPHAN_LABEL: Final = "orphan"
NEEDS_REVIEW_LABEL: Final = "needs_review"


@dataclass(frozen=True)
class DecisionPolicy:
    """The orphan threshold and the lower end of the needs-review band of one published model."""

    class_labels: tuple[str, ...]
    orphan_threshold: float
    review_threshold: float

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> "DecisionPolicy":
        """The policy of a manifest; ValueError naming the field when it cannot decide."""
        labels = tuple(manifest["class_labels"])
        if ORPHAN_LABEL not in labels:
            raise ValueError(f"class_labels: no {ORPHAN_LABEL!r} class in {list(labels)}")
        thresholds = manifest["thresholds"]
        orphan = float(thresholds[ORPHAN_LABEL])
        review = float(thresholds.get(NEEDS_REVIEW_LABEL, orphan))
        if not 0.0 <= review <= orphan <= 1.0:
            raise ValueError(
                f"thresholds: needs_review {review!r} and orphan {orphan!r} are not 0 <= review <= orphan <= 1"
            )
        return cls(labels, orphan, review)

    @property
    def orphan_index(self) -> int:
        return self.class_labels.index(ORPHAN_LABEL)


@dataclass(frozen=True, eq=False)
class Decisions:
    """The decision for each row of a probability matrix."""

    codes: npt.NDArray[np.intp]  # predicted class index (predict_codes)
    orphan_probability: npt.NDArray[np.float64]
    orphan_flag: npt.NDArray[np.bool_]
    needs_review: npt.NDArray[np.bool_]
    labels: tuple[str, ...]  # predicted class label per row
    outcomes: tuple[str, ...]  # decide(): the label, or needs_review inside the band


def orphan_probability(proba: npt.ArrayLike, policy: DecisionPolicy) -> npt.NDArray[np.float64]:
    return np.asarray(proba, dtype=np.float64)[:, policy.orphan_index]


def flag_orphan(proba: npt.ArrayLike, policy: DecisionPolicy) -> npt.NDArray[np.bool_]:
    """True where the orphan probability reaches the orphan threshold."""
    return np.asarray(orphan_probability(proba, policy) >= policy.orphan_threshold)


def in_review_band(proba: npt.ArrayLike, policy: DecisionPolicy) -> npt.NDArray[np.bool_]:
    """True where the orphan probability falls in [review_threshold, orphan_threshold)."""
    p = orphan_probability(proba, policy)
    return np.asarray((p >= policy.review_threshold) & (p < policy.orphan_threshold))


def predict_codes(proba: npt.ArrayLike, policy: DecisionPolicy) -> npt.NDArray[np.intp]:
    """Class index per row: orphan when flagged, else the most probable of the other classes."""
    others = np.array(proba, dtype=np.float64)
    others[:, policy.orphan_index] = -np.inf
    return np.asarray(np.where(flag_orphan(proba, policy), policy.orphan_index, others.argmax(axis=1)), dtype=np.intp)


def decide(proba: npt.ArrayLike, policy: DecisionPolicy) -> Decisions:
    """Every row's class, orphan flag and review band, from probabilities [N, len(class_labels)]."""
    matrix = np.asarray(proba, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] != len(policy.class_labels):
        raise ValueError(f"probabilities of shape {matrix.shape}, not [N, {len(policy.class_labels)}]")
    codes = predict_codes(matrix, policy)
    review = in_review_band(matrix, policy)
    labels = tuple(policy.class_labels[code] for code in codes.tolist())
    return Decisions(
        codes=codes,
        orphan_probability=orphan_probability(matrix, policy),
        orphan_flag=flag_orphan(matrix, policy),
        needs_review=review,
        labels=labels,
        outcomes=tuple(
            NEEDS_REVIEW_LABEL if band else label for label, band in zip(labels, review.tolist(), strict=True)
        ),
    )
