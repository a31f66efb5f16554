"""The decision policy the service applies, as the platform's `rare_triage/lib/training/thresholds.py` takes it:
flag at orphan probability >= orphan threshold, review band [review, orphan), class orphan when flagged else the
most probable other class."""

from typing import Any

import numpy as np
import pytest

from serving.decision import DecisionPolicy, decide, flag_orphan, in_review_band, predict_codes
from serving.tests.published import CLASS_LABELS

MANIFEST: dict[str, Any] = {"class_labels": CLASS_LABELS, "thresholds": {"orphan": 0.3, "needs_review": 0.2}}
POLICY = DecisionPolicy.from_manifest(MANIFEST)


def row(orphan: float, best_other: str = "none") -> list[float]:
    """Probabilities with `orphan` for the orphan class, the rest mostly on `best_other`."""
    rest = 1.0 - orphan
    values = dict.fromkeys(CLASS_LABELS, rest * 0.1)
    values[best_other] = rest * 0.7
    values["orphan"] = orphan
    return [values[label] for label in CLASS_LABELS]


@pytest.mark.parametrize(
    ("orphan", "flag", "review", "label", "outcome"),
    [
        (0.95, True, False, "orphan", "orphan"),
        (0.30, True, False, "orphan", "orphan"),  # the threshold itself flags (>=)
        (0.2999, False, True, "common_acute", "needs_review"),
        (0.20, False, True, "common_acute", "needs_review"),  # the band includes its lower end
        (0.1999, False, False, "common_acute", "common_acute"),
        (0.0, False, False, "common_acute", "common_acute"),
    ],
)
def test_thresholds_and_band(orphan: float, flag: bool, review: bool, label: str, outcome: str) -> None:
    decided = decide(np.array([row(orphan, "common_acute")], dtype=np.float64), POLICY)

    assert (bool(decided.orphan_flag[0]), bool(decided.needs_review[0])) == (flag, review)
    assert (decided.labels[0], decided.outcomes[0]) == (label, outcome)


def test_a_flag_wins_over_a_more_probable_class_and_an_unflagged_orphan_yields_to_the_next() -> None:
    policy = DecisionPolicy.from_manifest({**MANIFEST, "thresholds": {"orphan": 0.6, "needs_review": 0.5}})
    proba = np.array([[0.5, 0.1, 0.0, 0.0, 0.4], [0.05, 0.1, 0.3, 0.0, 0.55]])

    assert predict_codes(proba, POLICY).tolist() == [4, 4]  # flagged at 0.3 although `none` is more probable
    assert predict_codes(proba, policy).tolist() == [0, 2]  # not flagged at 0.6: the best other class
    assert decide(proba, policy).outcomes == ("none", "needs_review")


def test_without_a_review_threshold_the_band_is_empty() -> None:
    policy = DecisionPolicy.from_manifest({**MANIFEST, "thresholds": {"orphan": 0.3}})
    proba = np.array([row(p) for p in (0.0, 0.29, 0.3, 1.0)])

    assert policy.review_threshold == policy.orphan_threshold == 0.3
    assert in_review_band(proba, policy).tolist() == [False] * 4
    assert flag_orphan(proba, policy).tolist() == [False, False, True, True]


def test_the_orphan_column_is_found_by_its_label() -> None:
    labels = ["orphan", "none"]
    policy = DecisionPolicy.from_manifest({"class_labels": labels, "thresholds": {"orphan": 0.5, "needs_review": 0.4}})

    decided = decide(np.array([[0.45, 0.55], [0.5, 0.5]]), policy)

    assert decided.labels == ("none", "orphan")
    assert decided.needs_review.tolist() == [True, False]


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ({"class_labels": ["a", "b"], "thresholds": {"orphan": 0.3}}, "no 'orphan' class"),
        ({**MANIFEST, "thresholds": {"orphan": 0.2, "needs_review": 0.3}}, "not 0 <= review <= orphan <= 1"),
        ({**MANIFEST, "thresholds": {"orphan": 1.5}}, "not 0 <= review <= orphan <= 1"),
    ],
)
def test_a_policy_that_cannot_decide_is_refused(manifest: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DecisionPolicy.from_manifest(manifest)


def test_probabilities_of_another_width_are_refused() -> None:
    with pytest.raises(ValueError, match=r"not \[N, 5\]"):
        decide(np.zeros((2, 4)), POLICY)
