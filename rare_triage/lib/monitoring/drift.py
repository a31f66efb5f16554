"""Drift of a window of encounters and predictions against the reference profile, and the decision it leads to.

Per feature: PSI on the reference bins (effect size), a test (two-sample KS against the reference sample for
continuous features, chi-square on the 2 x bins contingency table for discrete, binary and categorical ones), the
Jensen-Shannon distance of the binned distributions, and the missing rate in reference and window (two-proportion
z-test). All feature p-values of one window (distribution and missing-rate tests) form one family, adjusted with
Benjamini-Hochberg (`scipy.stats.false_discovery_control`) at DriftConfig.alpha. A change counts only when both the
effect size crosses its threshold and the adjusted test rejects: on large windows every test rejects, so the effect
size gates; on small windows PSI is biased upwards (about (bins - 1) / n under no drift), so the test gates.
KS reads at most DriftConfig.ks_window_sample window values per feature, drawn without replacement with the
seeded generator (DriftConfig.seed), so a 1,000,000-row window costs what a 50,000-row one does.
"""

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial.distance import jensenshannon

from rare_triage.lib.monitoring.profile import (
    CategoricalProfile,
    NumericProfile,
    ReferenceProfile,
    check_feature_columns,
    check_predictions,
    finite_values,
    predicted_class_counts,
)

Decision = Literal["insufficient_data", "no_drift", "watch", "retrain"]
DRIFTED, WATCH, OK = "drifted", "watch", "ok"
_SEVERITY = {DRIFTED: 2, WATCH: 1, OK: 0}
_STATUS_OF = {2: DRIFTED, 1: WATCH, 0: OK}
MAX_REASONS = 40
FEATURE_TABLE_COLUMNS = (
    "feature", "kind", "test", "psi", "statistic", "p_value", "p_adjusted", "js_distance", "missing_ref",
    "missing_window", "missing_p_adjusted", "unseen_share", "status", "reason",
)  # fmt: skip


@dataclass(frozen=True)
class DriftConfig:
    """Thresholds of the drift decision, each with its reason."""

    min_predictions: int = 500  # fewer predictions in the window: "insufficient_data" (PSI noise ~ bins / n)
    psi_watch: float = 0.1  # the usual PSI reading: < 0.1 stable, 0.1-0.25 moderate shift, >= 0.25 major shift
    psi_act: float = 0.25
    alpha: float = 0.01  # Benjamini-Hochberg false discovery rate over all feature tests of one window
    retrain_min_drifted: int = 1  # features at act level ("drifted") that lead to "retrain"
    retrain_share: float = 0.10  # share of features on watch or worse that leads to "retrain" even with none drifted
    missing_watch: float = 0.05  # absolute change of a feature's missing rate (0.10 -> 0.15 is watch)
    missing_act: float = 0.10
    unseen_watch: float = 0.005  # share of a categorical's window values never seen in the reference (a new centre)
    unseen_act: float = 0.02
    rate_ratio_watch: float = 1.5  # orphan-flag and review rates: window / reference (or its inverse)
    rate_ratio_act: float = 2.0  # twice (or half) as many flags: the review workload the thresholds assumed is gone
    prediction_psi_watch: float = 0.1  # predicted-class shares and orphan probability distribution
    prediction_psi_act: float = 0.25
    psi_epsilon: float = 1e-4  # proportions p -> (p + eps) / (1 + bins * eps): an empty bin adds a finite term
    min_expected: float = 5.0  # chi-square: adjacent (or rare categorical) bins merged until this many expected
    ks_window_sample: int = 50_000  # window values per feature for KS (seeded sample without replacement)
    seed: int = 0
    # k-anonymity's quasi-identifiers (governance/kanonymity.py) and the exact age suppressed with the band: the
    # training rows it generalised are left out of the reference, mostly small centres and rare ages, so their
    # shares are biased toward the large ones (the drift study: every stable window on watch through centre_id).
    # They are judged on values never seen in training only (a new centre); their PSI and tests are still reported.
    unseen_only: tuple[str, ...] = ("age_band", "sex", "centre_id", "centre_level", "region", "age_years")


DEFAULT_DRIFT_CONFIG = DriftConfig()


@dataclass(frozen=True, eq=False)
class DriftResult:
    """The decision, its reasons, the per-feature table (most severe first) and the prediction drift."""

    decision: Decision
    reasons: tuple[str, ...]
    n_predictions: int
    features: pd.DataFrame  # FEATURE_TABLE_COLUMNS, one row per profiled feature
    predictions: dict[str, dict[str, Any]]  # class_shares, orphan_probability, orphan_flag_rate, review_rate
    share_drifted: float  # features at act level / features
    share_watch: float  # features on watch or worse / features
    model_version: str
    config: DriftConfig

    def features_with_status(self, *statuses: str) -> list[str]:
        return [str(f) for f in self.features.loc[self.features["status"].isin(statuses), "feature"]]

    def summary(self) -> dict[str, Any]:
        """JSON-safe numbers for run metadata: decision, counts, the most shifted features, prediction drift."""
        psi = pd.to_numeric(self.features["psi"]).set_axis(self.features["feature"]).dropna()
        top = psi.nlargest(10) if len(psi) else psi
        safe: dict[str, Any] = json_safe(
            {
                "decision": self.decision,
                "reasons": list(self.reasons),
                "n_predictions": self.n_predictions,
                "model_version": self.model_version,
                "n_features": len(self.features),
                "drifted_features": self.features_with_status(DRIFTED),
                "watch_features": self.features_with_status(WATCH),
                "share_drifted": self.share_drifted,
                "share_watch": self.share_watch,
                "top_psi": top.to_dict(),
                "predictions": self.predictions,
                "config": asdict(self.config),
            }
        )
        return safe


def json_safe(value: Any) -> Any:
    """Plain Python containers and numbers, NaN and infinities as None."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [json_safe(v) for v in value]
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer | int):
        return int(value)
    if isinstance(value, np.floating | float):
        return float(value) if math.isfinite(value) else None
    return value


def smoothed(proportions: np.ndarray, eps: float) -> np.ndarray:
    return (proportions + eps) / (1.0 + len(proportions) * eps)


def psi_and_js(reference: np.ndarray, counts: np.ndarray, eps: float) -> tuple[float, float]:
    """PSI of the window counts against the reference proportions (eps-smoothed) and their JS distance (base 2)."""
    n = counts.sum()
    if n == 0 or reference.sum() == 0:
        return math.nan, math.nan
    window = counts / n
    ref_s, win_s = smoothed(reference, eps), smoothed(window, eps)
    psi = float(np.sum((win_s - ref_s) * np.log(win_s / ref_s)))
    return psi, float(jensenshannon(reference, window, base=2.0))


def _merged_groups(expected: np.ndarray, min_expected: float, *, ordered: bool, keep: int | None) -> np.ndarray:
    """Group index of each bin so that every group expects >= min_expected window counts where possible;
    ordered bins merge with their neighbours, unordered ones pool their rare bins; bin `keep` stays alone."""
    groups = np.zeros(len(expected), dtype=np.int64)
    candidates = [i for i in range(len(expected)) if i != keep]
    if ordered:
        group, total = 0, 0.0
        for i in candidates:
            groups[i] = group
            total += expected[i]
            if total >= min_expected:
                group, total = group + 1, 0.0
        if total < min_expected and group > 0:  # a short last group joins the one before
            groups[[i for i in candidates if groups[i] == group]] = group - 1
    else:
        large = [i for i in candidates if expected[i] >= min_expected]
        rare = [i for i in candidates if expected[i] < min_expected]
        for g, i in enumerate(large):
            groups[i] = g
        pooled_group = len(large)
        if large and expected[rare].sum() < min_expected:
            pooled_group = large[int(np.argmin(expected[large]))]
            pooled_group = int(groups[pooled_group])
        groups[rare] = pooled_group
    if keep is not None:
        groups[keep] = groups.max() + 1 if candidates else 0
    return groups


def chi2_test(
    reference_counts: np.ndarray, counts: np.ndarray, min_expected: float, *, ordered: bool, keep: int | None = None
) -> tuple[float, float]:
    """Pearson chi-square of the 2 x bins table (reference, window) after merging bins of small expectation."""
    n_ref, n_win = reference_counts.sum(), counts.sum()
    if n_ref == 0 or n_win == 0:
        return math.nan, math.nan
    groups = _merged_groups(reference_counts / n_ref * n_win, min_expected, ordered=ordered, keep=keep)
    size = int(groups.max()) + 1
    table = np.vstack(
        [np.bincount(groups, reference_counts, minlength=size), np.bincount(groups, counts, minlength=size)]
    )
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 0.0, 1.0
    result = stats.chi2_contingency(table, correction=False)
    return float(result.statistic), float(result.pvalue)


def two_proportion_p(x_ref: np.ndarray, n_ref: float, x_win: np.ndarray, n_win: float) -> np.ndarray:
    """Two-sided p-values of the pooled two-proportion z-test, vectorized over features; 1 where undefined."""
    if n_ref == 0 or n_win == 0:
        return np.ones(np.shape(x_ref))
    pooled = (x_ref + x_win) / (n_ref + n_win)
    se = np.sqrt(pooled * (1.0 - pooled) * (1.0 / n_ref + 1.0 / n_win))
    diff = np.abs(x_win / n_win - x_ref / n_ref)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, diff / se, 0.0)
    return np.asarray(2.0 * stats.norm.sf(z), dtype=np.float64)


def _numeric_row(
    p: NumericProfile, column: pd.Series | np.ndarray, config: DriftConfig, rng: np.random.Generator
) -> dict[str, Any]:
    finite, n_missing = finite_values(column, p.name)
    counts = p.bin_counts(finite)
    reference = np.asarray(p.proportions, dtype=np.float64)
    psi, js = psi_and_js(reference, counts, config.psi_epsilon)
    if p.discrete or len(p.sample) == 0:
        test = "chi2"
        statistic, p_value = chi2_test(reference * p.n, counts, config.min_expected, ordered=True)
    else:
        test = "ks"
        if len(finite) > config.ks_window_sample:
            finite = finite[rng.choice(len(finite), size=config.ks_window_sample, replace=False)]
        if len(finite):
            ks = stats.ks_2samp(np.asarray(p.sample), finite)
            statistic, p_value = float(ks.statistic), float(ks.pvalue)
        else:
            statistic, p_value = math.nan, math.nan
    return {
        "feature": p.name,
        "kind": "discrete" if p.discrete else "continuous",
        "test": test,
        "psi": psi,
        "statistic": statistic,
        "p_value": p_value,
        "js_distance": js,
        "missing_ref": p.missing_rate,
        "missing_window": n_missing / len(column) if len(column) else math.nan,
        "unseen_share": math.nan,
        "unseen_values": "",
    }


def _categorical_row(p: CategoricalProfile, column: pd.Series, config: DriftConfig) -> dict[str, Any]:
    counts, unseen = p.bin_counts(column)
    reference = np.append(np.asarray(p.shares, dtype=np.float64), 0.0)
    psi, js = psi_and_js(reference, counts, config.psi_epsilon)
    statistic, p_value = chi2_test(reference * p.n, counts, config.min_expected, ordered=False, keep=len(counts) - 1)
    n = len(column)
    return {
        "feature": p.name,
        "kind": "categorical",
        "test": "chi2",
        "psi": psi,
        "statistic": statistic,
        "p_value": p_value,
        "js_distance": js,
        "missing_ref": p.missing_rate,
        "missing_window": counts[-2] / n if n else math.nan,
        "unseen_share": counts[-1] / n if n else math.nan,
        "unseen_values": ", ".join(repr(v) for v in unseen.index[:3]),
    }


def _level(effect: float, watch: float, act: float, significant: bool) -> int:
    if not significant or not effect >= watch:  # NaN effect: no level
        return 0
    return 2 if effect >= act else 1


def _fmt_p(p: float) -> str:
    return f"{p:.2g}" if p > 0 else "< 1e-300"


def _feature_table(rows: list[dict[str, Any]], profile: ReferenceProfile, n: int, config: DriftConfig) -> pd.DataFrame:
    table = pd.DataFrame(rows)
    missing_ref = table["missing_ref"].to_numpy(dtype=np.float64)
    missing_win = np.nan_to_num(table["missing_window"].to_numpy(dtype=np.float64))
    missing_p = two_proportion_p(missing_ref * profile.n_rows, profile.n_rows, missing_win * n, n)
    p_values = np.nan_to_num(table["p_value"].to_numpy(dtype=np.float64), nan=1.0)
    adjusted = stats.false_discovery_control(np.clip(np.concatenate([p_values, missing_p]), 0.0, 1.0), method="bh")
    table["p_adjusted"] = adjusted[: len(table)]
    table["missing_p_adjusted"] = adjusted[len(table) :]
    statuses, reasons = [], []
    for row in table.itertuples(index=False):
        significant = row.p_adjusted < config.alpha
        psi_level = _level(row.psi, config.psi_watch, config.psi_act, significant)
        missing_delta = abs(row.missing_window - row.missing_ref)
        missing_level = _level(
            missing_delta, config.missing_watch, config.missing_act, row.missing_p_adjusted < config.alpha
        )
        unseen_level = _level(row.unseen_share, config.unseen_watch, config.unseen_act, significant)
        if row.feature in config.unseen_only:
            psi_level = missing_level = 0
        parts = []
        if psi_level:
            bar = config.psi_act if psi_level == 2 else config.psi_watch
            parts.append(f"PSI {row.psi:.2f} (>= {bar:g}), {row.test.upper()} p_adj {_fmt_p(row.p_adjusted)}")
        if unseen_level:
            parts.append(f"{row.unseen_share:.1%} of values unseen in the reference ({row.unseen_values})")
        if missing_level:
            parts.append(
                f"missing rate {row.missing_ref:.1%} -> {row.missing_window:.1%}, "
                f"p_adj {_fmt_p(row.missing_p_adjusted)}"
            )
        statuses.append(_STATUS_OF[max(psi_level, missing_level, unseen_level)])
        reasons.append(f"{row.feature}: " + "; ".join(parts) if parts else "")
    table["status"], table["reason"] = statuses, reasons
    table["_rank"] = table["status"].map(_SEVERITY)
    table = table.sort_values(["_rank", "psi"], ascending=[False, False], na_position="last", kind="stable")
    return table.loc[:, list(FEATURE_TABLE_COLUMNS)].reset_index(drop=True)


def _rate_drift(reference: float, n_ref: int, flags: np.ndarray) -> dict[str, Any]:
    n = len(flags)
    rate = float(flags.mean())
    ratio = rate / reference if reference > 0 else (math.inf if rate > 0 else 1.0)
    p_value = float(two_proportion_p(np.asarray(reference * n_ref), n_ref, np.asarray(rate * n), n))
    return {"reference": reference, "window": rate, "ratio": ratio, "p_value": p_value}


def _prediction_drift(
    profile: ReferenceProfile,
    proba: np.ndarray,
    flags: np.ndarray,
    reviews: np.ndarray,
    *,
    config: DriftConfig,
    rng: np.random.Generator,
) -> tuple[dict[str, dict[str, Any]], list[tuple[int, str]]]:
    reference = profile.predictions
    labels = reference.class_labels
    counts = predicted_class_counts(proba, len(labels))
    shares = np.asarray(reference.class_shares, dtype=np.float64)
    psi, js = psi_and_js(shares, counts, config.psi_epsilon)
    statistic, p_value = chi2_test(shares * reference.n, counts, config.min_expected, ordered=False)
    orphan = _numeric_row(reference.orphan_probability, proba[:, reference.orphan_index], config, rng)
    result: dict[str, dict[str, Any]] = {
        "class_shares": {
            "reference": dict(zip(labels, shares.tolist(), strict=True)),
            "window": dict(zip(labels, (counts / max(counts.sum(), 1.0)).tolist(), strict=True)),
            "psi": psi,
            "js_distance": js,
            "statistic": statistic,
            "p_value": p_value,
        },
        "orphan_probability": {key: orphan[key] for key in ("test", "psi", "js_distance", "statistic", "p_value")},
        "orphan_flag_rate": _rate_drift(reference.flag_rate, reference.n, flags),
        "review_rate": _rate_drift(reference.review_rate, reference.n, reviews),
    }
    names = list(result)
    raw = np.nan_to_num([result[name]["p_value"] for name in names], nan=1.0)
    for name, adjusted in zip(names, stats.false_discovery_control(np.clip(raw, 0, 1), method="bh"), strict=True):
        result[name]["p_adjusted"] = float(adjusted)
    levels: list[tuple[int, str]] = []
    for name, entry in result.items():
        significant = entry["p_adjusted"] < config.alpha
        if name.endswith("_rate"):
            ratio = entry["ratio"]
            effect = max(ratio, 1.0 / ratio) if ratio > 0 else math.inf
            level = _level(effect, config.rate_ratio_watch, config.rate_ratio_act, significant)
            text = f"{entry['reference']:.2%} -> {entry['window']:.2%} (x{ratio:.2f})"
        else:
            level = _level(entry["psi"], config.prediction_psi_watch, config.prediction_psi_act, significant)
            text = f"PSI {entry['psi']:.2f}"
        entry["status"] = _STATUS_OF[level]
        if level:
            levels.append((level, f"prediction {name}: {text}, p_adj {_fmt_p(entry['p_adjusted'])}"))
    return result, levels


def _empty_result(profile: ReferenceProfile, n: int, config: DriftConfig) -> DriftResult:
    reason = f"{n:,} predictions in the window, fewer than the {config.min_predictions:,} a drift decision needs"
    return DriftResult(
        "insufficient_data",
        (reason,),
        n,
        pd.DataFrame(columns=list(FEATURE_TABLE_COLUMNS)),
        {},
        0.0,
        0.0,
        profile.model_version,
        config,
    )


def compute_drift(
    profile: ReferenceProfile,
    window: pd.DataFrame,
    *,
    probabilities: np.ndarray,
    orphan_flag: np.ndarray,
    needs_review: np.ndarray,
    config: DriftConfig = DEFAULT_DRIFT_CONFIG,
) -> DriftResult:
    """Compare a window of features and predictions with the reference profile and decide: retrain when a feature
    or a prediction statistic drifted at act level, or when retrain_share of the features are on watch."""
    numeric, categorical = [p.name for p in profile.numeric], [p.name for p in profile.categorical]
    check_feature_columns(window, numeric, categorical)
    n = len(window)
    proba, flags, reviews = check_predictions(
        n, probabilities, profile.predictions.class_labels, orphan_flag, needs_review
    )
    if n < config.min_predictions:
        return _empty_result(profile, n, config)
    rng = np.random.default_rng(config.seed)
    rows = [_numeric_row(p, window[p.name], config, rng) for p in profile.numeric]
    rows += [_categorical_row(p, window[p.name], config) for p in profile.categorical]
    table = _feature_table(rows, profile, n, config)
    predictions, prediction_levels = _prediction_drift(profile, proba, flags, reviews, config=config, rng=rng)

    n_features = max(len(table), 1)
    n_drifted = int((table["status"] == DRIFTED).sum())
    n_watch = int((table["status"] != OK).sum())
    share_drifted, share_watch = n_drifted / n_features, n_watch / n_features
    prediction_act = any(level == 2 for level, _ in prediction_levels)
    if n_drifted >= config.retrain_min_drifted or share_watch >= config.retrain_share or prediction_act:
        decision: Decision = "retrain"
    elif n_watch or prediction_levels:
        decision = "watch"
    else:
        decision = "no_drift"
    reasons = [text for _, text in sorted(prediction_levels, key=lambda item: -item[0])]
    reasons += [r for r in table["reason"] if r]
    if decision == "no_drift":
        reasons = [f"no drift at FDR {config.alpha:g} over {len(table)} features and the predictions ({n:,} rows)"]
    else:
        headline = f"{n_drifted} of {len(table)} features drifted, {n_watch - n_drifted} on watch"
        if share_watch >= config.retrain_share:
            headline += f" ({share_watch:.0%} >= {config.retrain_share:.0%} of features)"
        hidden = len(reasons) - MAX_REASONS
        reasons = [headline, *reasons[:MAX_REASONS]] + ([f"... and {hidden} more"] if hidden > 0 else [])
    return DriftResult(
        decision, tuple(reasons), n, table, predictions, share_drifted, share_watch, profile.model_version, config
    )
