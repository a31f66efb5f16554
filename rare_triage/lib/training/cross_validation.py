"""Stratified cross-validation of the candidates on the training window, and the choice among them."""

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from rare_triage.lib.training.augmentation import IncidentalAugmentation
from rare_triage.lib.training.candidates import (
    MODEL_KINDS,
    CandidateSpec,
    ModelParams,
    fit_candidate,
    single_threaded_blas,
)
from rare_triage.lib.training.columns import ORPHAN_INDEX, FeatureRoles
from rare_triage.lib.training.imbalance import IMBALANCE_STRATEGIES
from rare_triage.lib.training.metrics import macro_f1, per_class_auc
from rare_triage.lib.training.thresholds import DEFAULT_TARGET_RECALL, threshold_for_recall

SELECTION_METRICS = ("orphan_pr_auc", "flag_rate_at_target_recall")
# Orphan PR-AUC by default: threshold-free and stable, where the flag rate at 95% recall hinges on the few hardest
# orphan rows of the sample (5% of a few hundred) and moved by several points between folds here.
DEFAULT_SELECTION_METRIC = "orphan_pr_auc"
DEFAULT_SELECTION_TOLERANCE = 0.01
# Slack so that decimal gaps such as 0.055 - 0.045 count as "within 0.01" despite float rounding.
_TOLERANCE_SLACK = 1e-12


@dataclass(frozen=True)
class CandidateResult:
    """Out-of-fold scores of one candidate and what its folds cost."""

    spec: CandidateSpec
    orphan_pr_auc: float
    orphan_roc_auc: float
    macro_f1_argmax: float
    flag_rate_at_target_recall: float  # non-orphan rows flagged at the OOF threshold reaching the target recall
    fit_seconds: float  # mean per fold
    predict_seconds: float  # mean per fold
    rows_per_fit_second: float
    oof_proba: np.ndarray = field(repr=False, compare=False)

    def row(self) -> dict[str, Any]:
        return {
            "candidate": self.spec.name,
            "servable": self.spec.servable,
            "orphan_pr_auc": round(self.orphan_pr_auc, 4),
            "orphan_roc_auc": round(self.orphan_roc_auc, 4),
            "macro_f1_argmax": round(self.macro_f1_argmax, 4),
            "flag_rate_at_target_recall": round(self.flag_rate_at_target_recall, 4),
            "fit_seconds": round(self.fit_seconds, 2),
            "rows_per_fit_second": round(self.rows_per_fit_second, 1),
        }


def stratified_sample(y: np.ndarray, max_rows: int, seed: int = 0) -> np.ndarray:
    """Row positions of a class-stratified sample of at most `max_rows` rows (all rows when fewer)."""
    y = np.asarray(y)
    if max_rows <= 0 or len(y) <= max_rows:
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    picked = []
    for cls in np.unique(y):
        members = np.flatnonzero(y == cls)
        take = max(1, round(len(members) * max_rows / len(y)))
        picked.append(rng.choice(members, size=min(take, len(members)), replace=False))
    return np.sort(np.concatenate(picked))


def cross_validate_candidate(
    spec: CandidateSpec,
    X: pd.DataFrame,
    y: np.ndarray,
    roles: FeatureRoles,
    params: ModelParams,
    *,
    n_splits: int,
    target_recall: float = DEFAULT_TARGET_RECALL,
    augmentation: IncidentalAugmentation | None = None,
) -> CandidateResult:
    """Out-of-fold probabilities of a candidate over StratifiedKFold, scored on the orphan class first."""
    y = np.asarray(y)
    smallest = int(np.bincount(y).min())
    if smallest < n_splits:
        raise ValueError(f"cv_folds: {n_splits} folds need >= {n_splits} rows of every class; smallest has {smallest}")
    oof = np.zeros((len(y), int(y.max()) + 1))
    fit_times, predict_times = [], []
    folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=params.seed)
    for fit_rows, score_rows in folds.split(np.zeros(len(y)), y):
        started = time.perf_counter()
        model = fit_candidate(spec, X.iloc[fit_rows], y[fit_rows], roles, params, augmentation=augmentation)
        fit_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        with single_threaded_blas():
            oof[score_rows] = model.predict_proba(X.iloc[score_rows])
        predict_times.append(time.perf_counter() - started)
    is_orphan = y == ORPHAN_INDEX
    threshold = threshold_for_recall(is_orphan, oof[:, ORPHAN_INDEX], target_recall)
    orphan_auc = per_class_auc(y, oof)["orphan"]
    fit_seconds = float(np.mean(fit_times))
    return CandidateResult(
        spec=spec,
        orphan_pr_auc=orphan_auc["pr_auc"],
        orphan_roc_auc=orphan_auc["roc_auc"],
        macro_f1_argmax=macro_f1(y, oof.argmax(axis=1)),
        flag_rate_at_target_recall=float((oof[~is_orphan, ORPHAN_INDEX] >= threshold).mean()),
        fit_seconds=fit_seconds,
        predict_seconds=float(np.mean(predict_times)),
        rows_per_fit_second=len(y) * (n_splits - 1) / n_splits / fit_seconds if fit_seconds > 0 else float("inf"),
        oof_proba=oof,
    )


def cross_validate_candidates(
    specs: Sequence[CandidateSpec],
    X: pd.DataFrame,
    y: np.ndarray,
    roles: FeatureRoles,
    params: ModelParams,
    *,
    n_splits: int,
    target_recall: float,
    log: Callable[[str], None] | None = None,
    augmentation: IncidentalAugmentation | None = None,
) -> list[CandidateResult]:
    """Every candidate through the same folds (each fold's fit rows augmented when asked); `log` gets one line per
    candidate."""
    results = []
    for spec in specs:
        result = cross_validate_candidate(
            spec, X, y, roles, params, n_splits=n_splits, target_recall=target_recall, augmentation=augmentation
        )
        if log is not None:
            log(f"cv {spec.name}: {result.row()}")
        results.append(result)
    return results


def check_selection_tolerance(tolerance: float) -> None:
    """Raise naming `selection_tolerance` unless it is a number >= 0 (NaN is refused)."""
    if math.isnan(tolerance) or tolerance < 0:
        raise ValueError(
            f"selection_tolerance: must be >= 0 in absolute units of the selection metric, got {tolerance}"
        )


def _sort_key(result: CandidateResult, metric: str) -> tuple[float, float]:
    if metric == "flag_rate_at_target_recall":
        return (result.flag_rate_at_target_recall, -result.orphan_pr_auc)
    return (-result.orphan_pr_auc, result.flag_rate_at_target_recall)


def _metric_value(result: CandidateResult, metric: str) -> float:
    return float(getattr(result, metric))


def _simplicity_key(result: CandidateResult, metric: str) -> tuple[int, int, tuple[float, float]]:
    """Simpler first: model family (MODEL_KINDS order), then imbalance (IMBALANCE_STRATEGIES order), then metric."""
    spec = result.spec
    return (MODEL_KINDS.index(spec.model), IMBALANCE_STRATEGIES.index(spec.imbalance), _sort_key(result, metric))


def _simplest_within(ranked: Sequence[CandidateResult], metric: str, tolerance: float) -> CandidateResult:
    """The simplest of the candidates within `tolerance` of the first (best) one; the best itself when 0."""
    best = ranked[0]
    if tolerance == 0:
        return best
    best_value = _metric_value(best, metric)
    equivalent = [r for r in ranked if abs(_metric_value(r, metric) - best_value) <= tolerance + _TOLERANCE_SLACK]
    return min(equivalent, key=lambda r: _simplicity_key(r, metric))


def choose_candidate(
    results: Sequence[CandidateResult],
    metric: str = DEFAULT_SELECTION_METRIC,
    target_recall: float = DEFAULT_TARGET_RECALL,
    tolerance: float = DEFAULT_SELECTION_TOLERANCE,
) -> tuple[CandidateResult, str]:
    """The simplest servable candidate within `tolerance` of the best servable one by `metric`, and why.

    `tolerance` is in absolute units of `metric`. Candidates within it of the best are equivalent and the simplest
    wins: model family logistic_regression < random_forest < xgboost, then imbalance strategy in
    IMBALANCE_STRATEGIES order, then the metric. With tolerance 0 the best by `metric` is chosen (ties broken by
    the other metric). Two-stage models are never chosen (they cannot be exported to ONNX).
    """
    if metric not in SELECTION_METRICS:
        raise ValueError(f"selection_metric: {metric!r} is not one of {list(SELECTION_METRICS)}")
    check_selection_tolerance(tolerance)
    servable = sorted((r for r in results if r.spec.servable), key=lambda r: _sort_key(r, metric))
    if not servable:
        raise ValueError("candidates: none of them is servable (two-stage models are comparison only)")
    best = servable[0]
    chosen = _simplest_within(servable, metric, tolerance)
    others = [r for r in servable if r is not chosen and r is not best]
    runner_up = f"; next {others[0].spec.name} {_describe(others[0])}" if others else ""
    overall = sorted(results, key=lambda r: _sort_key(r, metric))[0]
    not_servable = (
        f"; best overall was {overall.spec.name} {_describe(overall)} but it cannot be exported to ONNX"
        if overall is not best
        else ""
    )
    why = _why_chosen(chosen, best, metric, tolerance)
    reason = (
        f"{chosen.spec.name}: {why} at orphan recall {target_recall} ({_describe(chosen)}){runner_up}{not_servable}"
    )
    return chosen, reason


def _why_chosen(chosen: CandidateResult, best: CandidateResult, metric: str, tolerance: float) -> str:
    if chosen is best:
        return f"best servable candidate by {metric} in cross-validation"
    return (
        f"simplest servable candidate within {tolerance:g} of the best {metric} in cross-validation "
        f"({best.spec.name} {_metric_value(best, metric):.4f})"
    )


def _describe(result: CandidateResult) -> str:
    return (
        f"non-orphan flag rate {result.flag_rate_at_target_recall:.4f}, orphan PR-AUC {result.orphan_pr_auc:.4f}, "
        f"fit {result.fit_seconds:.1f} s"
    )
