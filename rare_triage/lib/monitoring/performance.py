"""Realized performance of logged predictions: each prediction against what the same patient's later encounters
turned out to be.

A prediction's realized label comes from the patient's encounters in (prediction day, prediction day + horizon]
(rows of the features table: patient_key, partition_day, label): "orphan" when any of them is labelled orphan,
else the label of the latest one (on a tie, the one coming last in `schema.LABELS`). A prediction without a
patient key, or without such an encounter, is unlabelled: counted, never scored. Days are UTC days.

Proportions carry Wilson score intervals (no sample is too small for them, a share of 0 or 1 keeps a width);
a proportion over no row is NaN, as are the Brier score and the calibration error of a group with no label.
"""

from typing import Final

import numpy as np
import pandas as pd
from scipy import stats

from rare_triage.lib import schema

PREDICTION_COLUMNS: Final = ("request_id", "timestamp", "model_version", "patient_key", "p_orphan", "orphan_flag")
OUTCOME_COLUMNS: Final = ("patient_key", "partition_day", "label")
GROUP_COLUMNS: Final = ("iso_week", "model_version")
PROPORTIONS: Final = ("orphan_recall", "precision", "flag_rate")
PERFORMANCE_COLUMNS: Final = (
    *GROUP_COLUMNS,
    "n_predictions",
    "n_labelled",
    "n_orphan",
    "n_flagged",
    *(f"{name}{suffix}" for name in PROPORTIONS for suffix in ("", "_low", "_high")),
    "brier",
    "ece",
)
RELIABILITY_COLUMNS: Final = (
    "model_version",
    "bin",
    "bin_low",
    "bin_high",
    "n",
    "mean_p_orphan",
    "orphan_rate",
    "orphan_rate_low",
    "orphan_rate_high",
)
N_BINS: Final = 10


def realized_labels(predictions: pd.DataFrame, outcomes: pd.DataFrame, *, horizon_days: int = 90) -> pd.DataFrame:
    """The predictions with `prediction_day` (UTC), `iso_week` ("2025-W10") and `realized_label` (None when
    unlabelled), in their order."""
    _require(predictions, PREDICTION_COLUMNS, "predictions")
    _require(outcomes, OUTCOME_COLUMNS, "outcomes")
    if horizon_days < 1:
        raise ValueError(f"horizon_days: {horizon_days} must be at least 1")
    if predictions["request_id"].duplicated().any():
        raise ValueError("predictions.request_id: repeated request id(s)")
    out = predictions.reset_index(drop=True).copy()
    stamps = pd.to_datetime(out["timestamp"], utc=True)
    out["prediction_day"] = stamps.dt.tz_localize(None).dt.normalize()
    iso = stamps.dt.isocalendar()
    out["iso_week"] = iso["year"].astype(str) + "-W" + iso["week"].astype(str).str.zfill(2)

    follow = outcomes.loc[outcomes["patient_key"].notna(), list(OUTCOME_COLUMNS)].copy()
    follow["day"] = pd.to_datetime(follow["partition_day"])
    follow["rank"] = follow["label"].map({label: i for i, label in enumerate(schema.LABELS)})
    if follow["rank"].isna().any():
        raise ValueError(f"outcomes.label: a label outside {list(schema.LABELS)}")
    linked = out.loc[out["patient_key"].notna(), ["request_id", "patient_key", "prediction_day"]]
    pairs = linked.merge(follow, on="patient_key", how="inner")
    ahead = (pairs["day"] - pairs["prediction_day"]).dt.days
    pairs = pairs[(ahead > 0) & (ahead <= horizon_days)].sort_values(["request_id", "day", "rank"])
    latest = pairs.groupby("request_id", sort=False)["label"].last()
    any_orphan = (pairs["label"] == schema.ORPHAN_LABEL).groupby(pairs["request_id"], sort=False).any()
    realized = latest.where(~any_orphan.reindex(latest.index), schema.ORPHAN_LABEL)
    out["realized_label"] = out["request_id"].map(realized).astype(object)
    out.loc[out["realized_label"].isna(), "realized_label"] = None
    return out


def realized_performance(
    predictions: pd.DataFrame,
    outcomes: pd.DataFrame,
    *,
    horizon_days: int = 90,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """One row per ISO week x model version (PERFORMANCE_COLUMNS): counts, orphan recall (flagged among realized
    orphans), precision (realized orphans among labelled flagged), flag rate (flagged among all predictions), each
    with its Wilson interval at `confidence`, Brier score of p_orphan and expected calibration error over 10 bins."""
    _check_confidence(confidence)
    labelled = realized_labels(predictions, outcomes, horizon_days=horizon_days)
    rows = [_group_metrics(key, group, confidence) for key, group in labelled.groupby(list(GROUP_COLUMNS))]
    return pd.DataFrame(rows, columns=list(PERFORMANCE_COLUMNS))


def reliability_table(
    predictions: pd.DataFrame,
    outcomes: pd.DataFrame,
    *,
    horizon_days: int = 90,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Per model version and equal-width p_orphan bin holding labelled predictions (RELIABILITY_COLUMNS): their
    mean p_orphan and realized orphan rate with its Wilson interval; a calibrated model has the two equal."""
    _check_confidence(confidence)
    labelled = realized_labels(predictions, outcomes, horizon_days=horizon_days)
    labelled = labelled[labelled["realized_label"].notna()]
    frame = pd.DataFrame(
        {
            "model_version": labelled["model_version"].to_numpy(),
            "bin": _bins(labelled["p_orphan"].to_numpy(dtype=float)),
            "p": labelled["p_orphan"].to_numpy(dtype=float),
            "y": (labelled["realized_label"] == schema.ORPHAN_LABEL).to_numpy(),
        }
    )
    table = (
        frame.groupby(["model_version", "bin"])
        .agg(n=("y", "size"), mean_p_orphan=("p", "mean"), k=("y", "sum"))
        .reset_index()
    )
    table["bin_low"] = table["bin"] / N_BINS
    table["bin_high"] = (table["bin"] + 1) / N_BINS
    table["orphan_rate"] = table["k"] / table["n"]
    table["orphan_rate_low"], table["orphan_rate_high"] = wilson_interval(
        table["k"].to_numpy(), table["n"].to_numpy(), confidence
    )
    return table[list(RELIABILITY_COLUMNS)]


def wilson_interval(
    successes: np.ndarray, trials: np.ndarray, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of k successes in n trials, element-wise; NaN where n is 0."""
    k = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    empty = n == 0
    return np.where(empty, np.nan, np.clip(centre - half, 0, 1)), np.where(empty, np.nan, np.clip(centre + half, 0, 1))


def _group_metrics(key: tuple[str, str], group: pd.DataFrame, confidence: float) -> dict[str, object]:
    labelled = group["realized_label"].notna().to_numpy()
    flagged = group["orphan_flag"].to_numpy(dtype=bool)
    orphan = (group["realized_label"] == schema.ORPHAN_LABEL).to_numpy()
    p = group["p_orphan"].to_numpy(dtype=float)[labelled]
    counts = {
        "orphan_recall": ((flagged & orphan).sum(), orphan.sum()),
        "precision": ((flagged & orphan).sum(), (flagged & labelled).sum()),
        "flag_rate": (flagged.sum(), len(group)),
    }
    row: dict[str, object] = {
        "iso_week": key[0],
        "model_version": key[1],
        "n_predictions": len(group),
        "n_labelled": int(labelled.sum()),
        "n_orphan": int(orphan.sum()),
        "n_flagged": int(flagged.sum()),
    }
    for name, (k, n) in counts.items():
        low, high = wilson_interval(np.array([k]), np.array([n]), confidence)
        row |= {name: k / n if n else np.nan, f"{name}_low": float(low[0]), f"{name}_high": float(high[0])}
    y = orphan[labelled].astype(float)
    row["brier"] = float(np.mean((p - y) ** 2)) if len(p) else np.nan
    row["ece"] = _expected_calibration_error(p, y)
    return row


def _expected_calibration_error(p: np.ndarray, y: np.ndarray) -> float:
    """Sum over equal-width bins of (share of rows in the bin) x |mean p - orphan rate|; NaN without rows."""
    if len(p) == 0:
        return float("nan")
    bins = _bins(p)
    n = np.bincount(bins, minlength=N_BINS)
    gap = np.abs(np.bincount(bins, weights=p, minlength=N_BINS) - np.bincount(bins, weights=y, minlength=N_BINS))
    return float(gap.sum() / n.sum())  # sum_b n_b/N * |sum_b p - sum_b y| / n_b


def _bins(p: np.ndarray) -> np.ndarray:
    """Equal-width bin of each probability, 1.0 in the last bin."""
    return np.clip(np.floor(p * N_BINS).astype(np.int64), 0, N_BINS - 1)


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence: {confidence} must be between 0 and 1")


def _require(frame: pd.DataFrame, columns: tuple[str, ...], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name}: missing column(s) {missing}")
