"""Feature-set ablation: the chosen candidate refitted on each named feature set, its threshold tuned on
validation for the target recall, judged on the test window and on the real published cases.

It answers two questions of the issue: do duration of symptoms and visit history act as shortcuts (if they
alone reach the target recall with few false alarms, the generator is too easy), and how much the organ-
system groups add to the vocabulary on real cases.
"""

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from rare_triage.lib.training.candidates import CandidateSpec, ModelParams, fit_candidate, single_threaded_blas
from rare_triage.lib.training.columns import (
    ORPHAN_INDEX,
    feature_roles,
    feature_set_columns,
    label_codes,
    model_inputs,
)
from rare_triage.lib.training.cross_validation import stratified_sample
from rare_triage.lib.training.metrics import orphan_decision_metrics, per_class_auc
from rare_triage.lib.training.thresholds import threshold_for_recall

SHORTCUT_FEATURE_SET = "duration_visits_only"
ABLATION_COLUMNS = (
    "feature_set",
    "n_features",
    "validation_orphan_pr_auc",
    "validation_orphan_roc_auc",
    "threshold",
    "validation_non_orphan_flag_rate",
    "test_orphan_recall",
    "test_non_orphan_flag_rate",
    "external_share_flagged",
)


def run_ablation(
    spec: CandidateSpec,
    params: ModelParams,
    *,
    train: pd.DataFrame,
    validation: pd.DataFrame,
    test: pd.DataFrame,
    external: pd.DataFrame | None,
    feature_sets: Sequence[str],
    target_recall: float,
    max_rows: int,
    log: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """One row per feature set (see ABLATION_COLUMNS); training rows sampled to `max_rows` (stratified)."""
    with single_threaded_blas():
        return _ablation(
            spec,
            params,
            train=train,
            validation=validation,
            test=test,
            external=external,
            feature_sets=feature_sets,
            target_recall=target_recall,
            max_rows=max_rows,
            log=log,
        )


def _ablation(
    spec: CandidateSpec,
    params: ModelParams,
    *,
    train: pd.DataFrame,
    validation: pd.DataFrame,
    test: pd.DataFrame,
    external: pd.DataFrame | None,
    feature_sets: Sequence[str],
    target_recall: float,
    max_rows: int,
    log: Callable[[str], None] | None,
) -> pd.DataFrame:
    y_train = label_codes(train["label"])
    rows_taken = stratified_sample(y_train, max_rows, params.seed)
    y_validation, y_test = label_codes(validation["label"]), label_codes(test["label"])
    rows = []
    for name in feature_sets:
        columns = feature_set_columns(name, list(train.columns))
        model = fit_candidate(
            spec,
            model_inputs(train.iloc[rows_taken], columns),
            y_train[rows_taken],
            feature_roles(columns),
            params,
        )
        p_validation = model.predict_proba(model_inputs(validation, columns))
        threshold = threshold_for_recall(y_validation == ORPHAN_INDEX, p_validation[:, ORPHAN_INDEX], target_recall)
        auc = per_class_auc(y_validation, p_validation)["orphan"]
        p_test = model.predict_proba(model_inputs(test, columns))[:, ORPHAN_INDEX]
        on_test = orphan_decision_metrics(y_test == ORPHAN_INDEX, p_test >= threshold)
        external_share = float("nan")
        if external is not None and len(external):
            p_external = model.predict_proba(model_inputs(external, columns))[:, ORPHAN_INDEX]
            external_share = float((p_external >= threshold).mean())
        row = {
            "feature_set": name,
            "n_features": len(columns),
            "validation_orphan_pr_auc": auc["pr_auc"],
            "validation_orphan_roc_auc": auc["roc_auc"],
            "threshold": threshold,
            "validation_non_orphan_flag_rate": float(
                (p_validation[y_validation != ORPHAN_INDEX, ORPHAN_INDEX] >= threshold).mean()
            ),
            "test_orphan_recall": on_test["orphan_recall"],
            "test_non_orphan_flag_rate": on_test["non_orphan_flag_rate"],
            "external_share_flagged": external_share,
        }
        if log is not None:
            log(f"ablation {name}: {row}")
        rows.append(row)
    return pd.DataFrame(rows, columns=list(ABLATION_COLUMNS))


def shortcut_warning(ablation: pd.DataFrame, max_flag_rate: float = 0.05) -> str | None:
    """A warning when duration and visit history alone reach the target recall with few false alarms."""
    probe = ablation.loc[ablation["feature_set"] == SHORTCUT_FEATURE_SET]
    if probe.empty:
        return None
    rate = float(probe["validation_non_orphan_flag_rate"].iloc[0])
    if np.isfinite(rate) and rate <= max_flag_rate:
        return (
            f"symptom_duration_days and prior_visits_365d alone reach the target orphan recall with a non-orphan "
            f"flag rate of {rate:.3f}: the synthetic generator makes them shortcuts (real cases carry neither); "
            "fix the generator rather than celebrate"
        )
    return None
