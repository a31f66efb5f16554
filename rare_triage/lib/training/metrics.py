"""The numbers a clinical reviewer asks for: discrimination per class, the orphan decision at its threshold,
calibration, the confusion matrix and the same recall and precision by subgroup."""

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, confusion_matrix, f1_score, roc_auc_score

from rare_triage.lib import schema
from rare_triage.lib.training.columns import ORPHAN_INDEX
from rare_triage.lib.training.thresholds import ThresholdPolicy, flag_orphan, in_review_band, predict_codes

SUBGROUP_COLUMNS = ("age_band", "sex", "centre_id")


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else float("nan")


def per_class_auc(y: np.ndarray, proba: np.ndarray) -> dict[str, dict[str, float]]:
    """One-vs-rest ROC-AUC and PR-AUC (average precision) per class; NaN where a class has no row or all rows."""
    out: dict[str, dict[str, float]] = {}
    for index, label in enumerate(schema.LABELS):
        positive = np.asarray(y) == index
        both = 0 < positive.sum() < len(positive)
        out[label] = {
            "n": int(positive.sum()),
            "prevalence": float(positive.mean()) if len(positive) else float("nan"),
            "roc_auc": float(roc_auc_score(positive, proba[:, index])) if both else float("nan"),
            "pr_auc": float(average_precision_score(positive, proba[:, index])) if both else float("nan"),
        }
    return out


def orphan_decision_metrics(is_orphan: np.ndarray, flagged: np.ndarray) -> dict[str, float]:
    """Recall, precision, NPV and flag rates of a yes/no orphan decision."""
    is_orphan, flagged = np.asarray(is_orphan, dtype=bool), np.asarray(flagged, dtype=bool)
    tp = int((is_orphan & flagged).sum())
    fp = int((~is_orphan & flagged).sum())
    fn = int((is_orphan & ~flagged).sum())
    tn = int((~is_orphan & ~flagged).sum())
    return {
        "orphan_recall": _ratio(tp, tp + fn),
        "orphan_precision": _ratio(tp, tp + fp),
        "orphan_npv": _ratio(tn, tn + fn),
        "flag_rate": _ratio(tp + fp, len(flagged)),
        "non_orphan_flag_rate": _ratio(fp, fp + tn),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
    }


def expected_calibration_error(is_positive: np.ndarray, scores: np.ndarray, n_bins: int = 10) -> float:
    """Mean |observed rate - mean score| over equal-width score bins, weighted by bin size."""
    is_positive, scores = np.asarray(is_positive, dtype=np.float64), np.asarray(scores, dtype=np.float64)
    if len(scores) == 0:
        return float("nan")
    bins = np.minimum((scores * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in np.unique(bins):
        members = bins == b
        total += members.sum() * abs(is_positive[members].mean() - scores[members].mean())
    return float(total / len(scores))


def brier_scores(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Multiclass Brier (mean over rows of the summed squared error) and the orphan one-vs-rest Brier."""
    onehot = np.eye(len(schema.LABELS))[np.asarray(y)]
    return {
        "brier_multiclass": float(((proba - onehot) ** 2).sum(axis=1).mean()),
        "brier_orphan": float(((proba[:, ORPHAN_INDEX] - onehot[:, ORPHAN_INDEX]) ** 2).mean()),
    }


def calibration_metrics(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Brier scores and ECE (orphan one-vs-rest, and top-label)."""
    y = np.asarray(y)
    top = proba.argmax(axis=1)
    return {
        **brier_scores(y, proba),
        "ece_orphan": expected_calibration_error(y == ORPHAN_INDEX, proba[:, ORPHAN_INDEX]),
        "ece_top_label": expected_calibration_error(top == y, proba.max(axis=1)),
    }


def confusion(y: np.ndarray, predicted: np.ndarray) -> list[list[int]]:
    """Rows: true label, columns: predicted label, both in LABELS order."""
    matrix = confusion_matrix(y, predicted, labels=list(range(len(schema.LABELS))))
    return [[int(v) for v in row] for row in matrix]


def macro_f1(y: np.ndarray, predicted: np.ndarray) -> float:
    return float(f1_score(y, predicted, labels=list(range(len(schema.LABELS))), average="macro", zero_division=0))


def summary_metrics(y: np.ndarray, proba: np.ndarray, policy: ThresholdPolicy) -> dict[str, float]:
    """Flat metrics of predictions at the policy (what is logged and gated)."""
    y = np.asarray(y)
    is_orphan = y == ORPHAN_INDEX
    aucs = per_class_auc(y, proba)
    predicted = predict_codes(proba, policy)
    review = in_review_band(proba, policy)
    metrics: dict[str, float] = {
        "n": float(len(y)),
        "orphan_prevalence": float(is_orphan.mean()) if len(y) else float("nan"),
        "orphan_roc_auc": aucs[schema.ORPHAN_LABEL]["roc_auc"],
        "orphan_pr_auc": aucs[schema.ORPHAN_LABEL]["pr_auc"],
        "macro_roc_auc": float(np.nanmean([v["roc_auc"] for v in aucs.values()])),
        "macro_f1": macro_f1(y, predicted),
        "macro_f1_argmax": macro_f1(y, proba.argmax(axis=1)),
        **{k: float(v) for k, v in orphan_decision_metrics(is_orphan, flag_orphan(proba, policy)).items()},
        "review_rate": float(review.mean()) if len(y) else float("nan"),
        "orphan_recall_flag_or_review": _ratio(
            float((is_orphan & (flag_orphan(proba, policy) | review)).sum()), float(is_orphan.sum())
        ),
        **calibration_metrics(y, proba),
    }
    for label, values in aucs.items():
        metrics[f"{label}_roc_auc"] = values["roc_auc"]
        metrics[f"{label}_pr_auc"] = values["pr_auc"]
    return metrics


def subgroup_table(
    groups: pd.DataFrame,
    is_orphan: np.ndarray,
    flagged: np.ndarray,
    columns: Sequence[str] = SUBGROUP_COLUMNS,
    min_orphans: int = 20,
) -> pd.DataFrame:
    """Orphan recall, precision and flag rate per value of each subgroup column; `gated` where enough orphans."""
    rows: list[dict[str, Any]] = []
    is_orphan, flagged = np.asarray(is_orphan, dtype=bool), np.asarray(flagged, dtype=bool)
    for column in columns:
        if column not in groups.columns:
            raise ValueError(f"subgroups: column {column!r} is not in the test frame")
        values = groups[column].astype("string").fillna("<missing>").to_numpy()
        for value in sorted(set(values)):
            members = values == value
            decision = orphan_decision_metrics(is_orphan[members], flagged[members])
            n_orphan = int(is_orphan[members].sum())
            rows.append(
                {
                    "attribute": column,
                    "group": str(value),
                    "n": int(members.sum()),
                    "n_orphan": n_orphan,
                    "orphan_recall": decision["orphan_recall"],
                    "orphan_precision": decision["orphan_precision"],
                    "flag_rate": decision["flag_rate"],
                    "gated": n_orphan >= min_orphans,
                }
            )
    return pd.DataFrame(
        rows, columns=["attribute", "group", "n", "n_orphan", "orphan_recall", "orphan_precision", "flag_rate", "gated"]
    )


def finite_or_none(value: float) -> float | None:
    """JSON-friendly float: None for NaN / inf."""
    return float(value) if value is not None and math.isfinite(value) else None
