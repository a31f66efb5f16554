"""Realized performance on hand-built predictions and outcomes whose every figure is worked out by hand."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from rare_triage.lib.monitoring.performance import (
    PERFORMANCE_COLUMNS,
    RELIABILITY_COLUMNS,
    realized_labels,
    realized_performance,
    reliability_table,
    wilson_interval,
)

A, B, C, D, E = (f"{i:032x}" for i in range(1, 6))


def predictions() -> pd.DataFrame:
    """Week 2025-W10 (model 3): r1 flagged, orphan 7 days later (TP); r2 flagged, mild then none (FP); r3 not flagged,
    orphan then none (FN: any orphan wins); r4 follow-ups only the same day and after the horizon (unlabelled); r5 no
    patient key (unlabelled); r6 not flagged, acute (TN). Week 2025-W11 (model 4): r7, no follow-up (unlabelled)."""
    rows = [
        ("r1", "2025-03-03T09:00:00Z", "3", A, 0.9, True),
        ("r2", "2025-03-03T23:59:59Z", "3", B, 0.8, True),
        ("r3", "2025-03-04T08:00:00Z", "3", C, 0.2, False),
        ("r4", "2025-03-04T08:00:00Z", "3", D, 0.1, False),
        ("r5", "2025-03-05T08:00:00Z", "3", None, 0.7, True),
        ("r6", "2025-03-05T08:00:00Z", "3", E, 0.05, False),
        ("r7", "2025-03-10T08:00:00Z", "4", A, 0.6, True),
    ]
    return pd.DataFrame(
        rows, columns=["request_id", "timestamp", "model_version", "patient_key", "p_orphan", "orphan_flag"]
    )


def outcomes() -> pd.DataFrame:
    rows = [
        (A, "2025-03-10", "orphan"),
        (B, "2025-03-05", "common_mild"),
        (B, "2025-03-20", "none"),
        (C, "2025-03-06", "orphan"),
        (C, "2025-03-07", "none"),
        (D, "2025-03-04", "orphan"),  # the day of the prediction: not a follow-up
        (D, "2025-06-03", "orphan"),  # 91 days later: past the horizon
        (E, "2025-03-06", "common_acute"),
    ]
    return pd.DataFrame(rows, columns=["patient_key", "partition_day", "label"])


def test_realized_labels_follow_the_patient_over_the_horizon() -> None:
    labelled = realized_labels(predictions(), outcomes())
    assert labelled["realized_label"].tolist() == ["orphan", "none", "orphan", None, None, "common_acute", None]
    assert labelled["iso_week"].tolist() == ["2025-W10"] * 6 + ["2025-W11"]

    short = realized_labels(predictions(), outcomes(), horizon_days=5)
    assert short["realized_label"].tolist()[:3] == [None, "common_mild", "orphan"]


def test_a_tie_on_the_latest_day_takes_the_label_coming_last() -> None:
    follow = pd.DataFrame(
        [(A, "2025-03-04", "common_chronic"), (A, "2025-03-04", "common_mild")],
        columns=["patient_key", "partition_day", "label"],
    )
    assert realized_labels(predictions().iloc[:1], follow)["realized_label"].tolist() == ["common_chronic"]


def test_weekly_performance_by_model_version() -> None:
    table = realized_performance(predictions(), outcomes())

    assert list(table.columns) == list(PERFORMANCE_COLUMNS)
    w10, w11 = (table.iloc[i].to_dict() for i in range(2))
    assert (w10["iso_week"], w10["model_version"], w11["iso_week"], w11["model_version"]) == (
        "2025-W10",
        "3",
        "2025-W11",
        "4",
    )
    assert (w10["n_predictions"], w10["n_labelled"], w10["n_orphan"], w10["n_flagged"]) == (6, 4, 2, 3)
    assert (w10["orphan_recall"], w10["precision"], w10["flag_rate"]) == (0.5, 0.5, 0.5)
    assert w10["brier"] == pytest.approx((0.1**2 + 0.8**2 + 0.8**2 + 0.05**2) / 4)
    assert w10["ece"] == pytest.approx((0.1 + 0.8 + 0.8 + 0.05) / 4)  # one row in each of four bins
    one_of_two = stats.binomtest(1, 2).proportion_ci(0.95, method="wilson")
    assert (w10["orphan_recall_low"], w10["orphan_recall_high"]) == pytest.approx((one_of_two.low, one_of_two.high))
    three_of_six = stats.binomtest(3, 6).proportion_ci(0.95, method="wilson")
    assert (w10["flag_rate_low"], w10["flag_rate_high"]) == pytest.approx((three_of_six.low, three_of_six.high))
    # no labelled prediction: no error, NaN wherever a label is needed
    assert (w11["n_predictions"], w11["n_labelled"], w11["flag_rate"]) == (1, 0, 1.0)
    for name in ("orphan_recall", "orphan_recall_low", "precision", "precision_high", "brier", "ece"):
        assert math.isnan(w11[name]), name


def test_predictions_without_any_outcome_are_counted_not_scored() -> None:
    table = realized_performance(predictions(), outcomes().iloc[:0])
    assert table["n_labelled"].tolist() == [0, 0] and table["n_predictions"].tolist() == [6, 1]
    assert table[["orphan_recall", "precision", "brier", "ece"]].isna().all().all()
    assert table["flag_rate"].tolist() == [0.5, 1.0]


def test_predictions_without_patient_key_are_unlabelled() -> None:
    keyless = predictions().assign(patient_key=None)
    assert realized_performance(keyless, outcomes())["n_labelled"].tolist() == [0, 0]


def test_no_prediction_gives_an_empty_table() -> None:
    assert list(realized_performance(predictions().iloc[:0], outcomes()).columns) == list(PERFORMANCE_COLUMNS)


def test_reliability_table_bins_the_labelled_predictions() -> None:
    table = reliability_table(predictions(), outcomes())
    assert list(table.columns) == list(RELIABILITY_COLUMNS)
    assert table[["model_version", "bin", "n", "orphan_rate"]].values.tolist() == [
        ["3", 0, 1, 0.0],
        ["3", 2, 1, 1.0],
        ["3", 8, 1, 0.0],
        ["3", 9, 1, 1.0],
    ]
    assert table["mean_p_orphan"].tolist() == pytest.approx([0.05, 0.2, 0.8, 0.9])
    assert table["bin_low"].tolist() == pytest.approx([0.0, 0.2, 0.8, 0.9])


@pytest.mark.parametrize(("k", "n"), [(0, 1), (1, 1), (3, 10), (50, 100), (0, 1000)])
def test_wilson_interval_is_scipys(k: int, n: int) -> None:
    low, high = wilson_interval(np.array([k]), np.array([n]), 0.9)
    expected = stats.binomtest(k, n).proportion_ci(0.9, method="wilson")
    assert (low[0], high[0]) == pytest.approx((expected.low, expected.high))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"predictions": predictions().drop(columns="p_orphan")}, r"predictions: missing column\(s\) \['p_orphan'\]"),
        ({"predictions": pd.concat([predictions(), predictions()])}, r"predictions\.request_id: repeated"),
        ({"outcomes": outcomes().assign(label="rare")}, r"outcomes\.label: a label outside"),
        ({"horizon_days": 0}, r"horizon_days: 0 must be at least 1"),
        ({"confidence": 1.0}, r"confidence: 1\.0 must be between 0 and 1"),
    ],
)
def test_bad_arguments_name_the_field(change: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"predictions": predictions(), "outcomes": outcomes(), **change}
    with pytest.raises(ValueError, match=message):
        realized_performance(**arguments)  # type: ignore[arg-type]
