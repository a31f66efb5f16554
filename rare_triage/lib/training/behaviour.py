"""Behavioural tests of a trained model (Made-With-ML style): invariance, directional expectation, robustness
to missing inputs. Each returns numbers and a verdict so the asset and its check can report them."""

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from rare_triage.lib.governance.kanonymity import GENERALISATION_STEPS
from rare_triage.lib.training.columns import ORPHAN_INDEX, VITAL_COLUMNS
from rare_triage.lib.training.robustness import PhenotypeItem, add_phenotype

TOLERANCE = 1e-6


def _orphan_proba(pipeline: Any, frame: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    return np.asarray(pipeline.predict_proba(frame[list(columns)]))[:, ORPHAN_INDEX]


def patient_key_invariance(pipeline: Any, frame: pd.DataFrame, columns: Sequence[str]) -> dict[str, Any]:
    """Changing the pseudonymous ids must not change any probability (the model never reads them)."""
    changed = frame.copy()
    for key in ("patient_key", "encounter_key"):
        if key in changed.columns:
            changed[key] = [f"changed{i:026d}" for i in range(len(changed))]
    inputs = list(columns) + [c for c in ("patient_key", "encounter_key") if c in frame.columns and c not in columns]
    before = np.asarray(pipeline.predict_proba(frame[list(columns)]))
    # the full frame, ids included, goes through the pipeline: a model that read them would change here
    after = np.asarray(pipeline.predict_proba(changed[inputs]))
    diff = float(np.abs(before - after).max()) if len(frame) else 0.0
    return {"rows": len(frame), "max_abs_diff": diff, "passed": diff <= TOLERANCE}


def red_flag_monotonicity(
    pipeline: Any, frame: pd.DataFrame, columns: Sequence[str], red_flags: Sequence[PhenotypeItem]
) -> dict[str, Any]:
    """Add each red-flag phenotype (with what it rolls up to) to the rows that lack it and compare the orphan
    probability: per-term mean change, share of rows that decreased, and the overall mean (gated >= 0)."""
    base = _orphan_proba(pipeline, frame, columns)
    per_term: dict[str, dict[str, float]] = {}
    deltas: list[np.ndarray] = []
    for item in red_flags:
        rows = ~np.asarray((frame[list(item.columns)].to_numpy() == 1.0).all(axis=1))
        if not rows.any():
            continue
        changed = frame.copy()
        add_phenotype(changed, rows, item)
        delta = _orphan_proba(pipeline, changed.loc[rows], columns) - base[rows]
        deltas.append(delta)
        per_term[item.hpo_id] = {
            "rows": int(rows.sum()),
            "mean_delta": float(delta.mean()),
            "share_decreased": float((delta < -TOLERANCE).mean()),
        }
    if not deltas:
        return {"terms": 0, "passed": False, "reason": "no red-flag phenotype touches the model inputs"}
    every = np.concatenate(deltas)
    mean_delta = float(every.mean())
    return {
        "terms": len(per_term),
        "pairs": len(every),
        "mean_delta": mean_delta,
        "min_delta": float(every.min()),
        "share_rows_decreased": float((every < -TOLERANCE).mean()),
        "terms_with_negative_mean": sorted(t for t, v in per_term.items() if v["mean_delta"] < 0),
        "per_term": per_term,
        "passed": mean_delta >= 0.0,
    }


def missing_vitals_scores(pipeline: Any, frame: pd.DataFrame, columns: Sequence[str]) -> dict[str, Any]:
    """With every vital sign (and fever / pain score) missing, the model still returns finite probabilities."""
    blanked = frame.copy()
    for column in [*VITAL_COLUMNS, "fever_score", "pain_score"]:
        if column in blanked.columns:
            blanked[column] = np.nan
    proba = np.asarray(pipeline.predict_proba(blanked[list(columns)]))
    finite = bool(np.isfinite(proba).all() and np.allclose(proba.sum(axis=1), 1.0, atol=1e-5))
    return {
        "rows": len(frame),
        "finite": finite,
        "mean_orphan_probability": float(proba[:, ORPHAN_INDEX].mean()) if len(frame) else float("nan"),
        "passed": finite and len(frame) > 0,
    }


# The columns k-anonymity generalises to the marker "*" (lib/governance/kanonymity.py), and the maximum |z| of the
# two-proportion test that compares the flag rates of generalised and other rows.
GENERALISED_COLUMNS = tuple(column for _step, columns in GENERALISATION_STEPS for column in columns)
GENERALISATION_MAX_Z = 3.0


def generalised_rows(frame: pd.DataFrame) -> np.ndarray:
    """Rows of a features frame (before model_inputs) that k-anonymity generalised: a "*" in any of its columns."""
    columns = [c for c in GENERALISED_COLUMNS if c in frame.columns]
    if not columns:
        return np.zeros(len(frame), dtype=bool)
    return np.asarray((frame[columns].astype("string") == "*").fillna(False).any(axis=1))


def generalisation_invariance(
    pipeline: Any,
    frame: pd.DataFrame,
    columns: Sequence[str],
    orphan_threshold: float,
    generalised: np.ndarray,
    *,
    max_abs_z: float = GENERALISATION_MAX_Z,
) -> dict[str, Any]:
    """Does the flag rate depend on whether k-anonymity generalised a row? The flag rates of the generalised rows and
    of the others (non-orphans: the alarms that matter) compared by a two-proportion z test; passed when |z| <=
    max_abs_z (within sampling error) or when either group is empty. A model that learnt the anonymizer's choices
    flags generalised rows more (before the fix: 9.5% against 3.8%)."""
    generalised = np.asarray(generalised, dtype=bool)
    n1, n0 = int(generalised.sum()), int((~generalised).sum())
    report: dict[str, Any] = {"rows": len(frame), "generalised_rows": n1, "max_abs_z": max_abs_z}
    if not n1 or not n0:
        return {
            **report,
            "z": 0.0,
            "passed": True,
            "reason": "no generalised row" if not n1 else "every row generalised",
        }
    flagged = _orphan_proba(pipeline, frame, columns) >= orphan_threshold
    p1, p0, pooled = float(flagged[generalised].mean()), float(flagged[~generalised].mean()), float(flagged.mean())
    se = float(np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0)))
    z = (p1 - p0) / se if se > 0 else 0.0
    return {**report, "flag_rate_generalised": p1, "flag_rate_other": p0, "z": z, "passed": abs(z) <= max_abs_z}


def behaviour_report(
    pipeline: Any,
    frame: pd.DataFrame,
    columns: Sequence[str],
    *,
    red_flags: Sequence[PhenotypeItem],
    sample_size: int = 500,
    seed: int = 0,
    orphan_threshold: float | None = None,
    non_orphan: np.ndarray | None = None,
    generalised: np.ndarray | None = None,
) -> dict[str, Any]:
    """The three behavioural tests on a random sample of rows; with `orphan_threshold` and the `non_orphan` and
    `generalised` masks, also generalisation invariance over every non-orphan row (a flag rate needs more rows than
    the sample)."""
    sample = frame.sample(n=min(sample_size, len(frame)), random_state=seed) if len(frame) else frame
    report: dict[str, Any] = {
        "patient_key_invariance": patient_key_invariance(pipeline, sample, columns),
        "red_flag_monotonicity": red_flag_monotonicity(pipeline, sample, columns, red_flags),
        "missing_vitals": missing_vitals_scores(pipeline, sample, columns),
    }
    if orphan_threshold is not None and non_orphan is not None and generalised is not None:
        keep = np.asarray(non_orphan, dtype=bool)
        report["generalisation_invariance"] = generalisation_invariance(
            pipeline, frame.loc[keep], columns, orphan_threshold, np.asarray(generalised, dtype=bool)[keep]
        )
    report["passed"] = all(part["passed"] for part in report.values())
    return report
