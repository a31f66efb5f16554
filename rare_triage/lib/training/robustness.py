"""Would a real clinic drown in false alarms? Flag rates after adding incidental phenotypes to non-orphan
encounters, and among older patients with several chronic conditions.

A phenotype is added the way the feature SQL would encode it: every vocabulary term it rolls up to and
every organ-system group above it become present, n_systems_involved counts the newly involved systems, and
the term counts in n_present_terms, n_specific_terms and the information-content sum and max.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from rare_triage.lib import schema
from rare_triage.lib.training.columns import ORPHAN_INDEX
from rare_triage.lib.training.thresholds import ThresholdPolicy, flag_orphan


@dataclass(frozen=True)
class PhenotypeItem:
    """One HPO term, the hpo_*/sys_* feature columns it sets to present and its information content."""

    hpo_id: str
    columns: tuple[str, ...]
    weight: float = 1.0
    information_content: float = 0.0


def phenotype_items(
    hpo_ids: Sequence[str],
    term_rollup: pd.DataFrame,
    term_system: pd.DataFrame,
    columns: Sequence[str],
    *,
    weights: Sequence[float] | None = None,
    term_ic: pd.DataFrame | None = None,
) -> list[PhenotypeItem]:
    """Items for the terms, through the ontology's (hpo_id, vocab_id) and (hpo_id, system_id) pairs and the
    (hpo_id, information_content) table; terms that change no column among `columns` are left out."""
    present = set(columns)
    counts_terms = "n_present_terms" in present
    ic_of: dict[str, float] = {}
    if term_ic is not None:
        ic_of = dict(zip(term_ic["hpo_id"], term_ic["information_content"].astype(float), strict=True))
    targets: dict[str, set[str]] = {h: set() for h in hpo_ids}
    for hpo_id, vocab_id in term_rollup[["hpo_id", "vocab_id"]].itertuples(index=False):
        if hpo_id in targets:
            targets[hpo_id].add(schema.hpo_feature_name(vocab_id))
    for hpo_id, system_id in term_system[["hpo_id", "system_id"]].itertuples(index=False):
        if hpo_id in targets:
            targets[hpo_id].add(schema.system_feature_name(system_id))
    weight_of = dict(zip(hpo_ids, weights if weights is not None else [1.0] * len(hpo_ids), strict=True))
    items = []
    for hpo_id in dict.fromkeys(hpo_ids):
        touched = tuple(sorted(targets[hpo_id] & present))
        if touched or counts_terms:
            items.append(PhenotypeItem(hpo_id, touched, float(weight_of[hpo_id]), ic_of.get(hpo_id, 0.0)))
    return items


def add_phenotype(frame: pd.DataFrame, rows: np.ndarray, item: PhenotypeItem) -> None:
    """Record the phenotype as present on the selected rows (in place); it is a new term for each of them."""
    if not rows.any():
        return
    if set(schema.SPECIFICITY_COLUMNS) <= set(frame.columns):
        ic = item.information_content
        frame.loc[rows, "n_present_terms"] = frame.loc[rows, "n_present_terms"].fillna(0.0) + 1.0
        frame.loc[rows, "n_specific_terms"] = frame.loc[rows, "n_specific_terms"].fillna(0.0) + float(
            ic >= schema.SPECIFIC_TERM_IC
        )
        frame.loc[rows, "phenotype_ic_max"] = np.fmax(frame.loc[rows, "phenotype_ic_max"].to_numpy(float), ic)
        frame.loc[rows, "phenotype_ic_sum"] = frame.loc[rows, "phenotype_ic_sum"].fillna(0.0) + ic
    for column in item.columns:
        newly = rows & (frame[column].to_numpy() != 1.0)
        if column.startswith(schema.SYSTEM_PREFIX) and "n_systems_involved" in frame.columns:
            counts = frame.loc[newly, "n_systems_involved"].fillna(0.0)
            frame.loc[newly, "n_systems_involved"] = counts + 1.0
        frame.loc[newly, column] = 1.0


def _already_present(frame: pd.DataFrame, item: PhenotypeItem) -> np.ndarray:
    """Rows where every column of the item is already present (none, for an item setting no column)."""
    if not item.columns:
        return np.zeros(len(frame), dtype=bool)
    return np.asarray((frame[list(item.columns)].to_numpy() == 1.0).all(axis=1))


def add_incidental_phenotypes(
    frame: pd.DataFrame, k: int, items: Sequence[PhenotypeItem], seed: int = 0
) -> pd.DataFrame:
    """A copy where every row gets `k` distinct phenotypes it does not have yet, drawn with the items' weights."""
    if k > len(items):
        raise ValueError(f"incidental phenotypes: asked for {k} per row, the pool has {len(items)} term(s)")
    out = frame.copy()
    if len(out) == 0 or k == 0:
        return out
    rng = np.random.default_rng(seed)
    weights = np.array([item.weight for item in items], dtype=np.float64)
    # Gumbel top-k: k distinct items per row, drawn in proportion to their weights
    priority = np.log(weights)[None, :] - np.log(-np.log(rng.random((len(out), len(items)))))
    for j, item in enumerate(items):
        priority[_already_present(out, item), j] = -np.inf
    chosen = np.zeros(priority.shape, dtype=bool)
    np.put_along_axis(chosen, np.argsort(-priority, axis=1)[:, :k], True, axis=1)
    chosen &= np.isfinite(priority)
    for j, item in enumerate(items):
        add_phenotype(out, chosen[:, j], item)
    return out


def robustness_report(
    pipeline: Any,
    test: pd.DataFrame,
    y: np.ndarray,
    policy: ThresholdPolicy,
    *,
    feature_columns: Sequence[str],
    incidental_items: Sequence[PhenotypeItem],
    elderly_age: float = 65.0,
    min_chronic_conditions: int = 2,
    seed: int = 0,
) -> dict[str, float]:
    """Non-orphan flag rate as is, after +1 and +2 incidental phenotypes, and among patients aged
    `elderly_age`+ with `min_chronic_conditions`+ comorbidities."""
    non_orphan = test.loc[np.asarray(y) != ORPHAN_INDEX]
    columns = list(feature_columns)

    def rate(frame: pd.DataFrame) -> float:
        if len(frame) == 0:
            return float("nan")
        return float(flag_orphan(pipeline.predict_proba(frame[columns]), policy).mean())

    report: dict[str, float] = {"non_orphan_n": float(len(non_orphan)), "non_orphan_flag_rate": rate(non_orphan)}
    for k in (1, 2):
        key = f"non_orphan_flag_rate_plus_{k}_incidental"
        if len(incidental_items) >= k:
            report[key] = rate(add_incidental_phenotypes(non_orphan, k, incidental_items, seed=seed + k))
        else:
            report[key] = float("nan")
    age = pd.to_numeric(non_orphan["age_years"], errors="coerce")
    chronic = pd.to_numeric(non_orphan["comorbidity_count"], errors="coerce")
    elderly = non_orphan.loc[(age >= elderly_age) & (chronic >= min_chronic_conditions)]
    report["elderly_multimorbid_n"] = float(len(elderly))
    report["elderly_multimorbid_flag_rate"] = rate(elderly)
    report["incidental_pool_size"] = float(len(incidental_items))
    return report
