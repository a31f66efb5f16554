"""Evaluation of the chosen model on the held-back test window: metrics at the threshold, calibration,
subgroups, robustness to incidental findings and to extra vocabulary terms (gated, with its per-term table) and
behavioural tests."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from rare_triage.lib.training.behaviour import behaviour_report, generalised_rows
from rare_triage.lib.training.candidates import single_threaded_blas
from rare_triage.lib.training.columns import ORPHAN_INDEX, label_codes, model_inputs
from rare_triage.lib.training.metrics import (
    SUBGROUP_COLUMNS,
    confusion,
    per_class_auc,
    subgroup_table,
    summary_metrics,
)
from rare_triage.lib.training.robustness import PhenotypeItem, robustness_report, vocabulary_robustness
from rare_triage.lib.training.thresholds import ThresholdPolicy, flag_orphan, predict_codes

HEADLINE_METRICS = (
    "n",
    "orphan_prevalence",
    "orphan_recall",
    "orphan_precision",
    "orphan_npv",
    "flag_rate",
    "non_orphan_flag_rate",
    "review_rate",
    "orphan_roc_auc",
    "orphan_pr_auc",
    "macro_f1",
    "macro_f1_argmax",
    "brier_multiclass",
    "brier_orphan",
    "ece_orphan",
    "ece_top_label",
    "robustness_plus_1_ratio",
    "robustness_plus_2_ratio",
    "robustness_max_single_term_ratio",
    "robustness_non_orphan_flag_rate_plus_1_incidental",
    "robustness_non_orphan_flag_rate_plus_2_incidental",
    "robustness_elderly_multimorbid_flag_rate",
)


def headline_table(metrics: dict[str, float]) -> pd.DataFrame:
    """The evaluation table a reviewer reads first (metric, value)."""
    return pd.DataFrame([{"metric": k, "value": metrics[k]} for k in HEADLINE_METRICS if k in metrics])


@dataclass(frozen=True)
class ModelEvaluation:
    """What model_evaluation stores: flat metrics (gated and logged), tables, and the test predictions."""

    metrics: dict[str, float]
    per_class: dict[str, dict[str, float]]
    confusion: list[list[int]]
    subgroups: pd.DataFrame = field(repr=False)
    robustness: dict[str, float] = field(default_factory=dict)
    # every vocabulary term added alone to the non-orphan test rows (robustness.PER_TERM_COLUMNS), worst first
    robustness_per_term: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    behaviour: dict[str, Any] = field(default_factory=dict, repr=False)
    partitions: list[str] = field(default_factory=list)
    y_test: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64), repr=False)
    proba_test: np.ndarray = field(default_factory=lambda: np.zeros((0, 5)), repr=False)
    mlflow_run_id: str | None = None
    mlflow_model_version: str | None = None


def evaluate_model(
    pipeline: Any,
    feature_columns: Sequence[str],
    policy: ThresholdPolicy,
    test: pd.DataFrame,
    *,
    incidental_items: Sequence[PhenotypeItem],
    vocabulary_items: Sequence[PhenotypeItem],
    red_flags: Sequence[PhenotypeItem],
    subgroup_columns: Sequence[str] = SUBGROUP_COLUMNS,
    min_subgroup_orphans: int,
    behaviour_sample: int,
    elderly_age: float,
    min_chronic_conditions: int,
    robustness_seeds: int,
    seed: int,
) -> ModelEvaluation:
    """Score the test window and compute every number of the evaluation."""
    with single_threaded_blas():
        return _evaluate(
            pipeline,
            list(feature_columns),
            policy,
            test,
            incidental_items=incidental_items,
            vocabulary_items=vocabulary_items,
            red_flags=red_flags,
            subgroup_columns=subgroup_columns,
            min_subgroup_orphans=min_subgroup_orphans,
            behaviour_sample=behaviour_sample,
            elderly_age=elderly_age,
            min_chronic_conditions=min_chronic_conditions,
            robustness_seeds=robustness_seeds,
            seed=seed,
        )


def _evaluate(
    pipeline: Any,
    feature_columns: list[str],
    policy: ThresholdPolicy,
    test: pd.DataFrame,
    *,
    incidental_items: Sequence[PhenotypeItem],
    vocabulary_items: Sequence[PhenotypeItem],
    red_flags: Sequence[PhenotypeItem],
    subgroup_columns: Sequence[str],
    min_subgroup_orphans: int,
    behaviour_sample: int,
    elderly_age: float,
    min_chronic_conditions: int,
    robustness_seeds: int,
    seed: int,
) -> ModelEvaluation:
    if len(test) == 0:
        raise ValueError("test window: no row to evaluate on")
    columns = list(feature_columns)
    X = model_inputs(test, columns)
    y = label_codes(test["label"])
    proba = np.asarray(pipeline.predict_proba(X))
    flagged = flag_orphan(proba, policy)
    inputs = pd.concat([X, test[[c for c in test.columns if c not in X.columns]]], axis=1)
    robustness = robustness_report(
        pipeline,
        inputs,
        y,
        policy,
        feature_columns=columns,
        incidental_items=incidental_items,
        elderly_age=elderly_age,
        min_chronic_conditions=min_chronic_conditions,
        seed=seed,
    )
    vocabulary, per_term = vocabulary_robustness(
        pipeline,
        inputs,
        y,
        policy,
        feature_columns=columns,
        vocabulary_items=vocabulary_items,
        seed=seed,
        n_seeds=robustness_seeds,
    )
    robustness = robustness | vocabulary
    metrics = summary_metrics(y, proba, policy)
    metrics.update({f"robustness_{k}": v for k, v in robustness.items()})
    return ModelEvaluation(
        metrics=metrics,
        per_class=per_class_auc(y, proba),
        confusion=confusion(y, predict_codes(proba, policy)),
        subgroups=subgroup_table(test, y == ORPHAN_INDEX, flagged, subgroup_columns, min_subgroup_orphans),
        robustness=robustness,
        robustness_per_term=per_term,
        behaviour=behaviour_report(
            pipeline,
            inputs,
            columns,
            red_flags=red_flags,
            sample_size=behaviour_sample,
            seed=seed,
            orphan_threshold=policy.orphan_threshold,
            non_orphan=y != ORPHAN_INDEX,
            generalised=generalised_rows(test),
        ),
        partitions=sorted(test["partition_day"].astype(str).unique()),
        y_test=y,
        proba_test=proba,
    )
