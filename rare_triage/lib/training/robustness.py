"""Would a real clinic drown in false alarms? Flag rates after adding incidental phenotypes to non-orphan
encounters, and among older patients with several chronic conditions."""

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from rare_triage.lib import schema
from rare_triage.lib.training.columns import ORPHAN_INDEX, hpo_id_of
from rare_triage.lib.training.thresholds import ThresholdPolicy, flag_orphan

TermSystems = Mapping[str, Sequence[str]]  # vocabulary column (hpo_*) -> organ-system columns (sys_*) it rolls up to


def vocabulary_term_systems(term_system: pd.DataFrame, columns: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """hpo_* column -> the sys_* columns (present in `columns`) its term rolls up to, from the ontology's
    (hpo_id, system_id) pairs."""
    missing = [c for c in ("hpo_id", "system_id") if c not in term_system.columns]
    if missing:
        raise ValueError(f"term_system: missing column(s) {missing}")
    present = set(columns)
    wanted = {hpo_id_of(c): c for c in columns if c.startswith("hpo_")}
    out: dict[str, list[str]] = {column: [] for column in wanted.values()}
    for hpo_id, system_id in term_system[["hpo_id", "system_id"]].itertuples(index=False):
        column = wanted.get(hpo_id)
        system_column = schema.system_feature_name(system_id)
        if column is not None and system_column in present:
            out[column].append(system_column)
    return {column: tuple(sorted(set(systems))) for column, systems in out.items()}


def set_phenotype(frame: pd.DataFrame, rows: np.ndarray, column: str, term_systems: TermSystems) -> None:
    """Record a present vocabulary term on the selected rows (in place), with its organ systems and the
    number of systems involved kept consistent."""
    if not rows.any():
        return
    frame.loc[rows, column] = 1.0
    for system in term_systems.get(column, ()):
        if system not in frame.columns:
            continue
        newly = rows & (frame[system].to_numpy() != 1.0)
        frame.loc[newly, system] = 1.0
        if "n_systems_involved" in frame.columns:
            counts = frame.loc[newly, "n_systems_involved"].fillna(0.0)
            frame.loc[newly, "n_systems_involved"] = counts + 1.0


def add_incidental_phenotypes(
    frame: pd.DataFrame, k: int, pool: Sequence[str], term_systems: TermSystems, seed: int = 0
) -> pd.DataFrame:
    """A copy where every row gets `k` more present terms drawn from `pool` among those not already present."""
    pool = [c for c in pool if c in frame.columns]
    if k > len(pool):
        raise ValueError(f"incidental phenotypes: asked for {k} per row, the pool has {len(pool)} term(s)")
    out = frame.copy()
    rng = np.random.default_rng(seed)
    already = out[pool].to_numpy() == 1.0
    priority = rng.random((len(out), len(pool)))
    priority[already] = -1.0
    chosen = np.zeros_like(already)
    if len(out):
        top = np.argsort(-priority, axis=1)[:, :k]
        np.put_along_axis(chosen, top, True, axis=1)
    chosen &= ~already
    for j, column in enumerate(pool):
        set_phenotype(out, chosen[:, j], column, term_systems)
    return out


def robustness_report(
    pipeline: Any,
    test: pd.DataFrame,
    y: np.ndarray,
    policy: ThresholdPolicy,
    *,
    feature_columns: Sequence[str],
    incidental_pool: Sequence[str],
    term_systems: TermSystems,
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
    usable_pool = [c for c in incidental_pool if c in columns]
    for k in (1, 2):
        if len(usable_pool) >= k:
            added = add_incidental_phenotypes(non_orphan, k, usable_pool, term_systems, seed=seed + k)
            report[f"non_orphan_flag_rate_plus_{k}_incidental"] = rate(added)
        else:
            report[f"non_orphan_flag_rate_plus_{k}_incidental"] = float("nan")
    age = pd.to_numeric(non_orphan["age_years"], errors="coerce")
    chronic = pd.to_numeric(non_orphan["comorbidity_count"], errors="coerce")
    elderly = non_orphan.loc[(age >= elderly_age) & (chronic >= min_chronic_conditions)]
    report["elderly_multimorbid_n"] = float(len(elderly))
    report["elderly_multimorbid_flag_rate"] = rate(elderly)
    report["incidental_pool_size"] = float(len(usable_pool))
    return report
