import math

import numpy as np
import pandas as pd
import pytest

from rare_triage.lib.training.metrics import (
    brier_scores,
    confusion,
    expected_calibration_error,
    orphan_decision_metrics,
    per_class_auc,
    subgroup_table,
    summary_metrics,
)
from rare_triage.lib.training.thresholds import ThresholdPolicy


def test_orphan_decision_metrics_from_counts() -> None:
    is_orphan = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0], dtype=bool)
    flagged = np.array([1, 1, 1, 0, 1, 0, 0, 0, 0, 0], dtype=bool)
    m = orphan_decision_metrics(is_orphan, flagged)
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (3, 1, 1, 5)
    assert m["orphan_recall"] == pytest.approx(0.75)
    assert m["orphan_precision"] == pytest.approx(0.75)
    assert m["orphan_npv"] == pytest.approx(5 / 6)
    assert m["flag_rate"] == pytest.approx(0.4)
    assert m["non_orphan_flag_rate"] == pytest.approx(1 / 6)


def test_recall_without_orphans_is_nan_not_zero() -> None:
    assert math.isnan(orphan_decision_metrics(np.zeros(3, bool), np.zeros(3, bool))["orphan_recall"])


def test_ece_is_zero_when_scores_match_frequencies_and_large_when_not() -> None:
    scores = np.repeat([0.15, 0.85], 100)
    outcome = np.concatenate([np.arange(100) < 15, np.arange(100) < 85])
    assert expected_calibration_error(outcome, scores) == pytest.approx(0.0)
    assert expected_calibration_error(outcome, 1 - scores) == pytest.approx(0.7)


def test_brier_and_confusion() -> None:
    y = np.array([0, 4])
    proba = np.array([[1.0, 0, 0, 0, 0], [0.5, 0, 0, 0, 0.5]])
    scores = brier_scores(y, proba)
    assert scores["brier_multiclass"] == pytest.approx(0.25)
    assert scores["brier_orphan"] == pytest.approx(0.125)
    assert confusion(y, np.array([0, 0]))[4][0] == 1


def test_auc_is_nan_for_an_absent_class() -> None:
    y = np.array([0, 0, 4, 4])
    proba = np.array([[0.9, 0, 0, 0, 0.1], [0.8, 0, 0, 0, 0.2], [0.3, 0, 0, 0, 0.7], [0.1, 0, 0, 0, 0.9]])
    aucs = per_class_auc(y, proba)
    assert aucs["orphan"]["roc_auc"] == 1.0 and aucs["orphan"]["pr_auc"] == 1.0
    assert math.isnan(aucs["common_mild"]["roc_auc"])


def test_summary_metrics_holds_what_the_gates_read() -> None:
    y = np.array([0, 1, 2, 3, 4, 4])
    proba = np.full((6, 5), 0.1)
    proba[np.arange(6), y] = 0.6
    metrics = summary_metrics(y, proba, ThresholdPolicy(0.5, 0.3, 0.95, 0.99))
    for key in (
        "orphan_recall",
        "orphan_pr_auc",
        "orphan_prevalence",
        "non_orphan_flag_rate",
        "macro_f1",
        "ece_orphan",
    ):
        assert key in metrics
    assert metrics["orphan_recall"] == 1.0 and metrics["macro_f1"] == 1.0


def test_subgroup_table_counts_orphans_and_marks_gated_groups() -> None:
    groups = pd.DataFrame({"sex": ["F"] * 30 + ["M"] * 5, "age_band": ["0-9"] * 35, "centre_id": [None] * 35})
    is_orphan = np.array([True] * 25 + [False] * 5 + [True] * 5)
    flagged = np.array([True] * 20 + [False] * 15)
    table = subgroup_table(groups, is_orphan, flagged, min_orphans=20)
    female = table[(table.attribute == "sex") & (table.group == "F")].iloc[0]
    assert female.n_orphan == 25 and female.orphan_recall == pytest.approx(0.8) and bool(female.gated)
    male = table[(table.attribute == "sex") & (table.group == "M")].iloc[0]
    assert male.orphan_recall == 0.0 and not bool(male.gated)
    assert "<missing>" in set(table[table.attribute == "centre_id"].group)
