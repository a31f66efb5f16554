"""The promotion gates of the issue as pure functions: each says pass or fail, why, and the numbers."""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class GateResult:
    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


def _finite(value: float) -> bool:
    return value is not None and math.isfinite(value)


def orphan_recall_gate(metrics: Mapping[str, float], min_recall: float) -> GateResult:
    """Orphan recall on the test window at the chosen threshold."""
    recall = metrics["orphan_recall"]
    passed = _finite(recall) and recall >= min_recall
    return GateResult(
        passed,
        f"test orphan recall {recall:.4f} (required >= {min_recall})",
        {"orphan_recall": recall, "min_recall": min_recall},
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


def subgroup_recall_gate(
    subgroups: pd.DataFrame, min_recall: float, min_orphans: int, attributes: Sequence[str]
) -> GateResult:
    """No subgroup of `attributes` with at least `min_orphans` orphan cases has orphan recall below `min_recall`."""
    judged = subgroups.loc[subgroups["attribute"].isin(list(attributes)) & (subgroups["n_orphan"] >= min_orphans)]
    failing = judged.loc[~(judged["orphan_recall"] >= min_recall)]
    names = [
        f"{a}={g} ({r:.3f}, {n} orphans)"
        for a, g, r, n in failing[["attribute", "group", "orphan_recall", "n_orphan"]].itertuples(index=False)
    ]
    description = f"{len(judged)} subgroup(s) of {list(attributes)} with >= {min_orphans} orphan cases; " + (
        f"below {min_recall}: {', '.join(names)}" if names else f"all have orphan recall >= {min_recall}"
    )
    return GateResult(
        not names,
        description,
        {"subgroups_judged": len(judged), "subgroups_failing": len(names), "min_recall": min_recall},
    )


def external_validation_gate(
    share_flagged: float, test_non_orphan_flag_rate: float, min_share: float, max_flag_rate: float
) -> GateResult:
    """Real cases flagged at >= `min_share` while the non-orphan test flag rate stays <= `max_flag_rate`."""
    share_ok = _finite(share_flagged) and share_flagged >= min_share
    rate_ok = _finite(test_non_orphan_flag_rate) and test_non_orphan_flag_rate <= max_flag_rate
    return GateResult(
        share_ok and rate_ok,
        f"real cases flagged {share_flagged:.4f} (required >= {min_share}); non-orphan test flag rate "
        f"{test_non_orphan_flag_rate:.4f} (required <= {max_flag_rate})",
        {
            "external_share": share_flagged,
            "test_non_orphan_flag_rate": test_non_orphan_flag_rate,
            "min_share": min_share,
            "max_flag_rate": max_flag_rate,
        },
    )


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
