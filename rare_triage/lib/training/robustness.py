"""Would a real clinic drown in false alarms? Flag rates after adding incidental phenotypes to non-orphan
encounters, and among older patients with several chronic conditions.

Two kinds of added phenotype: the weighted pool of incidental findings the synthetic source gives non-orphan
patients (`robustness_report`, reported), and the vocabulary terms of the model's hpo_* inputs, drawn uniformly
(`vocabulary_robustness`, gated): one or two random extra terms per row, and every term added alone
(`per_term_flag_rates`).

A phenotype is added the way the feature SQL would encode it: every vocabulary term it rolls up to and
every organ-system group above it become present, n_systems_involved counts the newly involved systems, and
the term counts in n_present_terms, n_specific_terms and the information-content sum and max.
"""

import math
from collections.abc import Mapping, Sequence
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
    label: str = ""

    @property
    def own_column(self) -> str | None:
        """The term's own vocabulary column when it is one of `columns` (a vocabulary term among the inputs)."""
        name = schema.hpo_feature_name(self.hpo_id) if ":" in self.hpo_id else None
        return name if name in self.columns else None


def phenotype_items(
    hpo_ids: Sequence[str],
    term_rollup: pd.DataFrame,
    term_system: pd.DataFrame,
    columns: Sequence[str],
    *,
    weights: Sequence[float] | None = None,
    term_ic: pd.DataFrame | None = None,
    labels: Mapping[str, str] | None = None,
) -> list[PhenotypeItem]:
    """Items for the terms, through the ontology's (hpo_id, vocab_id) and (hpo_id, system_id) pairs and the
    (hpo_id, information_content) table, labelled from `labels`; terms that change no column among `columns` are
    left out."""
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
            label = (labels or {}).get(hpo_id, "")
            items.append(PhenotypeItem(hpo_id, touched, float(weight_of[hpo_id]), ic_of.get(hpo_id, 0.0), label))
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


def already_present(frame: pd.DataFrame, item: PhenotypeItem) -> np.ndarray:
    """Rows that already have the term: its own vocabulary column present for a vocabulary term among the inputs,
    otherwise every column of the item present (none, for an item setting no column)."""
    if item.own_column is not None:
        return np.asarray(frame[item.own_column].to_numpy() == 1.0)
    if not item.columns:
        return np.zeros(len(frame), dtype=bool)
    return np.asarray((frame[list(item.columns)].to_numpy() == 1.0).all(axis=1))


def add_incidental_phenotypes(
    frame: pd.DataFrame, k: int, items: Sequence[PhenotypeItem], seed: int = 0, *, weighted: bool = True
) -> pd.DataFrame:
    """A copy where every row gets `k` distinct phenotypes it does not have yet, drawn with the items' weights
    (uniformly when not `weighted`); a row having all but j < k of them gets those j."""
    if k > len(items):
        raise ValueError(f"incidental phenotypes: asked for {k} per row, the pool has {len(items)} term(s)")
    out = frame.copy()
    if len(out) == 0 or k == 0:
        return out
    rng = np.random.default_rng(seed)
    weights = np.array([item.weight if weighted else 1.0 for item in items], dtype=np.float64)
    # Gumbel top-k: k distinct items per row, drawn in proportion to their weights
    priority = np.log(weights)[None, :] - np.log(-np.log(rng.random((len(out), len(items)))))
    for j, item in enumerate(items):
        priority[already_present(out, item), j] = -np.inf
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


def vocabulary_phenotype_items(
    vocabulary: pd.DataFrame,
    term_rollup: pd.DataFrame,
    term_system: pd.DataFrame,
    columns: Sequence[str],
    *,
    term_ic: pd.DataFrame | None = None,
) -> list[PhenotypeItem]:
    """The vocabulary terms (hpo_id, label) whose hpo_* column is among `columns`, labelled, each setting its own
    column, the vocabulary terms and organ systems above it, and counting in the specificity columns."""
    present = set(columns)
    ids = [h for h in vocabulary["hpo_id"] if schema.hpo_feature_name(h) in present]
    itself = pd.DataFrame({"hpo_id": ids, "vocab_id": ids})
    rollup = pd.concat([term_rollup[["hpo_id", "vocab_id"]], itself], ignore_index=True)
    labels = (
        dict(zip(vocabulary["hpo_id"], vocabulary["label"].astype(str), strict=True)) if "label" in vocabulary else {}
    )
    return phenotype_items(ids, rollup, term_system, columns, term_ic=term_ic, labels=labels)


def orphan_flags(pipeline: Any, frame: pd.DataFrame, columns: list[str], policy: ThresholdPolicy) -> np.ndarray:
    """Which rows of `frame` the pipeline flags orphan-compatible under `policy`."""
    if len(frame) == 0:
        return np.zeros(0, dtype=bool)
    return flag_orphan(np.asarray(pipeline.predict_proba(frame[columns])), policy)


def _ratio(rate: float, base: float) -> float:
    """rate / base; NaN when the base rate is 0 or either is NaN (the gate then judges the absolute rates)."""
    return rate / base if math.isfinite(rate) and math.isfinite(base) and base > 0 else float("nan")


PER_TERM_COLUMNS = ("hpo_id", "label", "n_rows_changed", "n_newly_flagged", "flag_rate", "ratio_to_base")


def per_term_flag_rates(
    pipeline: Any,
    frame: pd.DataFrame,
    policy: ThresholdPolicy,
    *,
    feature_columns: Sequence[str],
    items: Sequence[PhenotypeItem],
    base_flags: np.ndarray | None = None,
    batch_rows: int = 100_000,
) -> pd.DataFrame:
    """Each term added alone to every row of `frame` (the non-orphan test rows) that does not have it yet: rows
    changed, rows it newly flags, the flag rate of all of `frame`'s rows (the changed ones re-scored, the others
    as they were) and its ratio to their base flag rate. Sorted by flag rate (so by ratio) descending.

    The changed copies of several terms are scored in one predict_proba call of at most about `batch_rows` rows.
    """
    columns = list(feature_columns)
    inputs = frame[columns]
    base = orphan_flags(pipeline, inputs, columns, policy) if base_flags is None else np.asarray(base_flags, dtype=bool)
    n = len(inputs)
    base_rate = float(base.mean()) if n else float("nan")
    records: list[dict[str, Any]] = []
    batch: list[tuple[PhenotypeItem, np.ndarray, pd.DataFrame]] = []

    def score(pending: list[tuple[PhenotypeItem, np.ndarray, pd.DataFrame]]) -> None:
        changed_rows = pd.concat([changed for _, _, changed in pending], ignore_index=True)
        flags = orphan_flags(pipeline, changed_rows, columns, policy)
        start = 0
        for item, lacking, changed in pending:
            new = flags[start : start + len(changed)]
            start += len(changed)
            flagged = int(base[~lacking].sum() + new.sum())
            rate = flagged / n if n else float("nan")
            records.append(
                {
                    "hpo_id": item.hpo_id,
                    "label": item.label,
                    "n_rows_changed": int(lacking.sum()),
                    "n_newly_flagged": int((new & ~base[lacking]).sum()),
                    "flag_rate": rate,
                    "ratio_to_base": _ratio(rate, base_rate),
                }
            )

    size = 0
    for item in items:
        lacking = ~already_present(inputs, item)
        changed = inputs.loc[lacking].copy()
        add_phenotype(changed, np.ones(len(changed), dtype=bool), item)
        batch.append((item, lacking, changed))
        size += len(changed)
        if size >= batch_rows:
            score(batch)
            batch, size = [], 0
    if batch:
        score(batch)
    table = pd.DataFrame.from_records(records, columns=list(PER_TERM_COLUMNS))
    return table.sort_values(["flag_rate", "hpo_id"], ascending=[False, True], ignore_index=True)


def vocabulary_robustness(
    pipeline: Any,
    test: pd.DataFrame,
    y: np.ndarray,
    policy: ThresholdPolicy,
    *,
    feature_columns: Sequence[str],
    vocabulary_items: Sequence[PhenotypeItem],
    seed: int = 0,
    n_seeds: int = 3,
) -> tuple[dict[str, float], pd.DataFrame]:
    """What the robustness gate judges, on the non-orphan rows of the test window: their flag rate as is, after
    1 and 2 extra vocabulary terms per row drawn uniformly among the terms the row lacks (mean over `n_seeds`
    draws), and with each term added alone (`per_term_flag_rates`, the table returned); each rate with its ratio
    to the base rate (NaN when that is 0)."""
    columns = list(feature_columns)
    non_orphan = test.loc[np.asarray(y) != ORPHAN_INDEX, columns]
    base = orphan_flags(pipeline, non_orphan, columns, policy)
    n = len(non_orphan)
    base_rate = float(base.mean()) if n else float("nan")
    report: dict[str, float] = {
        "non_orphan_n": float(n),
        "non_orphan_flag_rate": base_rate,
        "vocabulary_size": float(len(vocabulary_items)),
        "vocabulary_seeds": float(n_seeds),
    }
    for k in (1, 2):
        rate = float("nan")
        if n and len(vocabulary_items) >= k and n_seeds > 0:
            draws = [
                add_incidental_phenotypes(non_orphan, k, vocabulary_items, seed=seed + 1000 * k + s, weighted=False)
                for s in range(n_seeds)
            ]
            rate = float(np.mean([orphan_flags(pipeline, draw, columns, policy).mean() for draw in draws]))
        report[f"plus_{k}_flag_rate"] = rate
        report[f"plus_{k}_ratio"] = _ratio(rate, base_rate)
    per_term = per_term_flag_rates(
        pipeline, non_orphan, policy, feature_columns=columns, items=vocabulary_items, base_flags=base
    )
    worst = float(per_term["flag_rate"].iloc[0]) if len(per_term) else float("nan")
    report["max_single_term_flag_rate"] = worst
    report["max_single_term_ratio"] = _ratio(worst, base_rate)
    return report, per_term
