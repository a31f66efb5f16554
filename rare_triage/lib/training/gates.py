"""The promotion gates of the issue as pure functions: each says pass or fail, why, and the numbers."""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from rare_triage.lib.training.thresholds import recall_lower_bound


@dataclass(frozen=True)
class GateResult:
    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


_RATE_TOLERANCE = 1.0 + 1e-9  # a rate exactly at its limit passes despite rounding in limit x base


def _finite(value: float) -> bool:
    return value is not None and math.isfinite(value)


def orphan_recall_gate(metrics: Mapping[str, float], min_recall: float, confidence: float = 0.5) -> GateResult:
    """Orphan recall on the test window at the chosen threshold, judged on the one-sided Wilson lower bound at
    `confidence` (0.5: the point estimate). At 0.95 a version whose true recall is below `min_recall` passes with
    probability at most about 5%, however lucky its test window: the gate cannot be passed by sampling noise, and a
    window of a few hundred orphan cases keeps the bound within about 3 points of the estimate."""
    recall = metrics["orphan_recall"]
    caught, n = metrics.get("tp", float("nan")), metrics.get("tp", float("nan")) + metrics.get("fn", float("nan"))
    if not (_finite(n) and n > 0):
        bound = recall if confidence == 0.5 else float("nan")
    else:
        bound = float(recall_lower_bound(np.array([caught]), int(n), confidence)[0])
    passed = _finite(bound) and bound >= min_recall
    return GateResult(
        passed,
        f"test orphan recall {recall:.4f} over {n:.0f} orphan cases, one-sided {confidence:.0%} lower bound "
        f"{bound:.4f} (required >= {min_recall})",
        {
            "orphan_recall": recall,
            "n_orphan": n,
            "recall_lower_bound": bound,
            "confidence": confidence,
            "min_recall": min_recall,
        },
    )


def orphan_pr_auc_gate(metrics: Mapping[str, float], min_multiple: float) -> GateResult:
    """Orphan PR-AUC at least `min_multiple` times the orphan prevalence (a random model scores the prevalence)."""
    pr_auc, prevalence = metrics["orphan_pr_auc"], metrics["orphan_prevalence"]
    required = min_multiple * prevalence
    passed = _finite(pr_auc) and _finite(prevalence) and prevalence > 0 and pr_auc >= required
    return GateResult(
        passed,
        f"test orphan PR-AUC {pr_auc:.4f} vs {min_multiple} x prevalence {prevalence:.4f} = {required:.4f}",
        {"orphan_pr_auc": pr_auc, "orphan_prevalence": prevalence, "required": required},
    )


def recall_upper_bound(caught: np.ndarray, n: np.ndarray, confidence: float) -> np.ndarray:
    """One-sided Wilson score upper bound of the recall caught / n at `confidence` (0.5: the point estimate): one
    minus the lower bound of the share missed."""
    n = np.asarray(n, dtype=np.float64)
    return np.asarray(1.0 - recall_lower_bound(n - np.asarray(caught, dtype=np.float64), n, confidence))


def subgroup_recall_gate(
    subgroups: pd.DataFrame, min_recall: float, min_orphans: int, attributes: Sequence[str], confidence: float = 0.5
) -> GateResult:
    """No subgroup of `attributes` with at least `min_orphans` orphan cases is shown to have orphan recall below
    `min_recall`: a subgroup fails when the one-sided upper Wilson bound of its recall at `confidence` is below it
    (0.5: the point estimate). Subgroups hold 20-60 orphan cases of a test window, where one or two missed cases
    move the estimate by 5-10 points; at 0.95 a subgroup whose true recall reaches `min_recall` fails with
    probability at most about 5%, and one at 0.65 over 20 cases fails (13 of 20 caught: bound 0.798). The overall
    recall gate judges the lower bound: together, the version's recall is shown >= its target and no subgroup is
    shown below its floor. Subgroups below `min_recall` but not shown below it are named in the description."""
    judged = subgroups.loc[
        subgroups["attribute"].isin(list(attributes)) & (subgroups["n_orphan"] >= min_orphans)
    ].reset_index(drop=True)
    n = judged["n_orphan"].to_numpy(dtype=np.float64)
    recall = judged["orphan_recall"].to_numpy(dtype=np.float64)
    upper = recall_upper_bound(recall * n, n, confidence) if len(judged) else np.array([])
    shown_below = ~(np.nan_to_num(upper, nan=-1.0) >= min_recall)
    below = shown_below | ~(recall >= min_recall)

    def named(rows: np.ndarray) -> list[str]:
        return [
            f"{judged.at[i, 'attribute']}={judged.at[i, 'group']} ({recall[i]:.3f}, upper bound {upper[i]:.3f}, "
            f"{int(n[i])} orphans)"
            for i in np.flatnonzero(rows)
        ]

    failing, not_shown = named(shown_below), named(below & ~shown_below)
    description = (
        f"{len(judged)} subgroup(s) of {list(attributes)} with >= {min_orphans} orphan cases, judged on the "
        f"one-sided {confidence:.0%} upper bound of their recall; "
        + (f"shown below {min_recall}: {', '.join(failing)}" if failing else f"none shown below {min_recall}")
        + (f"; below {min_recall}, not shown below it: {', '.join(not_shown)}" if not_shown else "")
    )
    return GateResult(
        not failing,
        description,
        {
            "subgroups_judged": len(judged),
            "subgroups_failing": len(failing),
            "subgroups_below_not_shown": len(not_shown),
            "min_recall": min_recall,
            "confidence": confidence,
        },
    )


def external_validation_gate(
    points: Sequence[Mapping[str, Any] | None], goals: Sequence[tuple[float, float]]
) -> GateResult:
    """Like with like: at each goal (non-orphan flag rate, minimum share), the share of real cases flagged at the
    threshold that flags that rate of the validation non-orphans encoded as the cases are (phenotype, age and sex
    only) reaches the minimum share. `points[i]` is the phenotype-only operating point of `goals[i]` (None when
    it was not computed: the goal fails)."""
    if len(points) != len(goals) or not goals:
        raise ValueError(f"external validation gate: {len(goals)} goal(s) for {len(points)} operating point(s)")
    parts, metadata, passed = [], {}, True
    for point, (rate, min_share) in zip(points, goals, strict=True):
        key = f"{rate:g}"
        if point is None:
            passed = False
            parts.append(f"no phenotype-only operating point at a {rate:.0%} non-orphan flag rate")
            continue
        share = float(point["external_share_flagged"])
        ok = _finite(share) and share >= min_share
        passed = passed and ok
        parts.append(
            f"{share:.4f} of real cases flagged at a {rate:.0%} phenotype-only non-orphan flag rate (required >= "
            f"{min_share}; test non-orphans flagged {float(point['test_non_orphan_flag_rate']):.4f})"
        )
        metadata.update(
            {
                f"external_share_at_{key}": share,
                f"min_share_at_{key}": min_share,
                f"test_non_orphan_flag_rate_at_{key}": float(point["test_non_orphan_flag_rate"]),
                f"threshold_at_{key}": float(point["threshold"]),
            }
        )
    return GateResult(passed, "; ".join(parts), metadata)


def behaviour_gate(behaviour: Mapping[str, Any]) -> GateResult:
    """Patient-key invariance, red-flag monotonicity on average, and scoring with all vitals missing."""
    parts = {k: bool(v["passed"]) for k, v in behaviour.items() if isinstance(v, Mapping)}
    failing = sorted(k for k, ok in parts.items() if not ok)
    monotonic = behaviour.get("red_flag_monotonicity", {})
    return GateResult(
        bool(parts) and not failing,
        "behavioural tests " + ("all passed" if not failing else f"failed: {failing}"),
        {
            **{f"{k}_passed": v for k, v in parts.items()},
            "red_flag_mean_delta": monotonic.get("mean_delta", float("nan")),
            "red_flag_share_rows_decreased": monotonic.get("share_rows_decreased", float("nan")),
        },
    )


def robustness_gate(
    robustness: Mapping[str, float],
    per_term: pd.DataFrame,
    *,
    max_ratio_plus_1: float,
    max_ratio_plus_2: float,
    max_single_term_ratio: float,
    max_terms_named: int = 5,
) -> GateResult:
    """Non-orphan flag rate of the test window with 1 and 2 random extra vocabulary terms at most
    `max_ratio_plus_1` / `max_ratio_plus_2` times the base rate, and with any single term added alone at most
    `max_single_term_ratio` times (`robustness` as vocabulary_robustness reports it, `per_term` its table).

    Each rate is judged against limit x max(base rate, 1/n) for the n non-orphan rows: the ratio itself while the
    base rate is positive (it is then at least 1/n), and with a base rate of 0, where ratios are undefined, the
    absolute rate against limit x 1/n, i.e. the added terms may flag at most `limit` of the n rows. A rate that
    could not be measured (no non-orphan row, fewer vocabulary terms than added) fails.
    """
    per_term = per_term.sort_values("flag_rate", ascending=False, kind="stable")
    n = robustness.get("non_orphan_n", 0.0)
    base = robustness.get("non_orphan_flag_rate", float("nan"))
    reference = max(base, 1.0 / n) if _finite(base) and n > 0 else float("nan")
    worst_rate = float(per_term["flag_rate"].max()) if len(per_term) else float("nan")
    judged = {
        "plus_1": (robustness.get("plus_1_flag_rate", float("nan")), max_ratio_plus_1),
        "plus_2": (robustness.get("plus_2_flag_rate", float("nan")), max_ratio_plus_2),
        "max_single_term": (worst_rate, max_single_term_ratio),
    }
    verdicts = {
        k: _finite(rate) and _finite(reference) and rate <= limit * reference * _RATE_TOLERANCE
        for k, (rate, limit) in judged.items()
    }
    ratios = {
        k: rate / base if _finite(rate) and _finite(base) and base > 0 else float("nan")
        for k, (rate, _) in judged.items()
    }

    def said(key: str) -> str:
        rate, limit = judged[key]
        ratio = f"{ratios[key]:.2f}x" if _finite(ratios[key]) else "ratio undefined"
        return f"{rate:.4f} ({ratio}, limit {limit:g}x{'' if verdicts[key] else ' FAILED'})"

    def term(hpo_id: str, label: str) -> str:
        return f"{hpo_id} {label}" if label else hpo_id

    over = per_term.iloc[0:0]
    if _finite(reference):
        over = per_term.loc[~(per_term["flag_rate"] <= max_single_term_ratio * reference * _RATE_TOLERANCE)]
    named = [
        f"{term(hpo_id, label)} ({rate:.4f}" + (f", {rate / base:.2f}x)" if base > 0 else ")")
        for hpo_id, label, rate in over[["hpo_id", "label", "flag_rate"]].head(max_terms_named).itertuples(index=False)
    ]
    base_said = f"non-orphan test flag rate {base:.4f} (n={int(n)})"
    if _finite(base) and base == 0 and n > 0:
        base_said += f"; base rate 0: ratios undefined, rates judged against limit x 1/n = limit x {1.0 / n:.6f}"
    worst = f" ({term(per_term['hpo_id'].iloc[0], per_term['label'].iloc[0])})" if len(per_term) else ""
    description = (
        f"{base_said}; +1 random vocabulary term {said('plus_1')}; +2 {said('plus_2')}; "
        f"worst single term{worst} {said('max_single_term')}"
    )
    if named:
        more = f" and {len(over) - len(named)} more" if len(over) > len(named) else ""
        limit = f"{max_single_term_ratio:g}x" if base > 0 else f"{max_single_term_ratio:g}/n"
        description += f"; terms over {limit}: {', '.join(named)}{more}"
    return GateResult(
        all(verdicts.values()),
        description,
        {
            "non_orphan_n": n,
            "non_orphan_flag_rate": base,
            "plus_1_flag_rate": judged["plus_1"][0],
            "plus_1_ratio": ratios["plus_1"],
            "plus_2_flag_rate": judged["plus_2"][0],
            "plus_2_ratio": ratios["plus_2"],
            "max_single_term_flag_rate": worst_rate,
            "max_single_term_ratio": ratios["max_single_term"],
            "worst_term": str(per_term["hpo_id"].iloc[0]) if len(per_term) else "",
            "n_terms_over_limit": len(over),
            "terms_over_limit": named,
            "max_ratio_plus_1": max_ratio_plus_1,
            "max_ratio_plus_2": max_ratio_plus_2,
            "max_single_term_ratio_limit": max_single_term_ratio,
            "judged_against_rate": reference,
        },
    )
