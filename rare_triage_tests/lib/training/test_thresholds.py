import numpy as np
import pytest

from rare_triage.lib.training.thresholds import (
    NEEDS_REVIEW_LABEL,
    ThresholdPolicy,
    decide,
    flag_orphan,
    predict_codes,
    recall_lower_bound,
    threshold_for_flag_rate,
    threshold_for_recall,
    tune_threshold_policy,
)


@pytest.mark.parametrize(
    ("target", "expected"),
    [(1.0, 0.1), (0.75, 0.5), (0.5, 0.8), (0.25, 0.9), (0.95, 0.1), (0.3, 0.8)],
)
def test_threshold_is_the_highest_reaching_the_target_recall(target: float, expected: float) -> None:
    is_orphan = np.array([True, True, True, True, False, False])
    scores = np.array([0.9, 0.8, 0.5, 0.1, 0.7, 0.05])
    threshold = threshold_for_recall(is_orphan, scores, target)
    assert threshold == expected
    assert (scores[is_orphan] >= threshold).mean() >= target


def test_threshold_needs_orphans_and_a_valid_target() -> None:
    with pytest.raises(ValueError, match="no orphan row"):
        threshold_for_recall(np.array([False]), np.array([0.3]), 0.9)
    with pytest.raises(ValueError, match="target_recall"):
        threshold_for_recall(np.array([True]), np.array([0.3]), 0.0)


def _proba(orphan: list[float]) -> np.ndarray:
    p = np.asarray(orphan)
    rest = (1 - p)[:, None] * np.array([[0.4, 0.3, 0.2, 0.1]])
    return np.column_stack([rest, p])


def test_policy_tunes_a_review_band_below_the_orphan_threshold() -> None:
    rng = np.random.default_rng(0)
    y = np.where(rng.random(2000) < 0.05, 4, 0)
    orphan_p = np.clip(np.where(y == 4, rng.beta(5, 2, 2000), rng.beta(1, 8, 2000)), 0, 1)
    policy = tune_threshold_policy(y, _proba(list(orphan_p)), target_recall=0.9, review_recall=0.99)
    assert policy.review_threshold <= policy.orphan_threshold
    assert (orphan_p[y == 4] >= policy.orphan_threshold).mean() >= 0.9
    assert (orphan_p[y == 4] >= policy.review_threshold).mean() >= 0.99


def test_review_recall_below_target_is_refused() -> None:
    with pytest.raises(ValueError, match="review_recall"):
        tune_threshold_policy(np.array([4, 0]), _proba([0.9, 0.1]), target_recall=0.95, review_recall=0.9)


def test_decide_flags_reviews_and_otherwise_takes_the_best_other_class() -> None:
    policy = ThresholdPolicy(orphan_threshold=0.5, review_threshold=0.2, target_recall=0.95, review_recall=0.99)
    proba = _proba([0.6, 0.3, 0.1])
    assert flag_orphan(proba, policy).tolist() == [True, False, False]
    assert predict_codes(proba, policy).tolist() == [4, 0, 0]
    assert decide(proba, policy).tolist() == ["orphan", NEEDS_REVIEW_LABEL, "none"]


def test_policy_round_trips_through_the_bundle_fields() -> None:
    policy = ThresholdPolicy(0.4, 0.1, 0.95, 0.99)
    assert ThresholdPolicy.from_bundle(policy.thresholds(), policy.needs_review()) == policy
    assert policy.needs_review()["orphan_probability_min"] == 0.1
    with pytest.raises(ValueError, match="review_threshold"):
        ThresholdPolicy(0.1, 0.4, 0.95, 0.99)


@pytest.mark.parametrize(("rate", "flagged"), [(0.2, 2), (0.25, 2), (0.3, 3), (0.05, 0), (1.0, 10)])
def test_threshold_for_a_flag_rate_flags_at_most_that_share_of_non_orphans(rate: float, flagged: int) -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.99])
    is_orphan = np.array([False] * 10 + [True])
    threshold = threshold_for_flag_rate(is_orphan, scores, rate)
    assert int((scores[~is_orphan] >= threshold).sum()) == flagged
    with pytest.raises(ValueError, match="max_flag_rate"):
        threshold_for_flag_rate(is_orphan, scores, 0.0)


def test_a_flag_rate_budget_raises_the_threshold_and_says_so() -> None:
    rng = np.random.default_rng(0)
    y = np.array([4] * 50 + [0] * 950)
    orphan_p = np.concatenate([rng.uniform(0.2, 1.0, 50), rng.uniform(0.0, 0.6, 950)])
    free = tune_threshold_policy(y, _proba(list(orphan_p)), target_recall=0.95, review_recall=0.99)
    assert free.limited_by == "target_recall" and (orphan_p[y == 0] >= free.orphan_threshold).mean() > 0.1
    capped = tune_threshold_policy(
        y, _proba(list(orphan_p)), target_recall=0.95, review_recall=0.99, max_flag_rate=0.04
    )
    assert capped.limited_by == "flag_rate_budget"
    assert (orphan_p[y == 0] >= capped.orphan_threshold).mean() <= 0.04
    assert capped.review_threshold == free.review_threshold <= capped.orphan_threshold
    assert capped.needs_review()["orphan_threshold_limited_by"] == "flag_rate_budget"
    assert ThresholdPolicy.from_bundle(capped.thresholds(), capped.needs_review()) == capped
    loose = tune_threshold_policy(y, _proba(list(orphan_p)), target_recall=0.95, review_recall=0.99, max_flag_rate=0.9)
    assert loose == ThresholdPolicy(**{**free.__dict__, "max_flag_rate": 0.9})


def test_the_wilson_bound_is_the_point_estimate_at_one_half_and_below_it_above() -> None:
    caught = np.array([90, 127, 130])
    np.testing.assert_allclose(recall_lower_bound(caught, 130, 0.5), caught / 130)
    assert (recall_lower_bound(caught, 130, 0.9) < caught / 130).all()
    with pytest.raises(ValueError, match="recall_confidence"):
        recall_lower_bound(caught, 130, 1.0)


def test_a_confident_recall_target_lowers_the_threshold_to_catch_more() -> None:
    scores = np.linspace(1.0, 0.01, 130)
    is_orphan = np.ones(130, dtype=bool)
    point = threshold_for_recall(is_orphan, scores, 0.95)
    confident = threshold_for_recall(is_orphan, scores, 0.95, confidence=0.9)
    assert (scores >= point).sum() == 124  # ceil(0.95 * 130)
    assert (scores >= confident).sum() == 127  # the smallest count whose 90% lower bound reaches 0.95
    assert recall_lower_bound(np.array([127]), 130, 0.9)[0] >= 0.95 > recall_lower_bound(np.array([126]), 130, 0.9)[0]
    few = threshold_for_recall(np.ones(10, dtype=bool), np.linspace(1, 0.1, 10), 0.95, confidence=0.9)
    assert few == 0.1  # no count reaches it with 10 cases: every positive is caught
