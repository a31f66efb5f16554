"""The triage_model asset's value: a `ModelBundle` (what deployment reads) plus how it was chosen."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from rare_triage.lib import schema
from rare_triage.lib.deployment.model_bundle import ModelBundle
from rare_triage.lib.training.columns import model_inputs
from rare_triage.lib.training.train import TrainingOutcome, fitted_categories


@dataclass(frozen=True)
class TriageModel(ModelBundle):
    """A ModelBundle (deployment reads it as such) that also remembers the candidate, the feature set and
    the training configuration, so evaluation can refit the same candidate for the ablation."""

    candidate: str = ""
    feature_set: str = ""
    calibration: str = "none"
    selection_reason: str = ""
    model_params: dict[str, Any] = field(default_factory=dict)
    cv_results: list[dict[str, Any]] = field(default_factory=list)


def build_triage_model(
    outcome: TrainingOutcome,
    *,
    feature_set: str,
    test: pd.DataFrame,
    training_partitions: list[str],
    data_fingerprint: str,
    code_revision: str,
    hpo_release: str,
    vocabulary: pd.DataFrame,
    systems: pd.DataFrame,
    phenotype_encoding: Mapping[str, Any],
    model_params: Mapping[str, Any],
    mlflow_run_id: str | None,
    mlflow_model_version: str | None,
) -> TriageModel:
    """Assemble the bundle; `vocabulary` (hpo_id, label) and `systems` (system_id, label) are the ontology's."""
    roles = outcome.roles
    used = set(outcome.feature_columns)
    vocab = [
        {"hpo_id": str(h), "label": str(label)}
        for h, label in zip(vocabulary["hpo_id"], vocabulary["label"], strict=True)
        if schema.hpo_feature_name(str(h)) in used
    ]
    system_list = [
        {"hpo_id": str(s), "label": str(label)}
        for s, label in zip(systems["system_id"], systems["label"], strict=True)
        if schema.system_feature_name(str(s)) in used
    ]
    return TriageModel(
        pipeline=outcome.pipeline,
        feature_columns=list(outcome.feature_columns),
        categorical_columns=list(roles.categorical),
        categories=fitted_categories(outcome.pipeline, roles.categorical),
        numeric_columns=[*roles.numeric, *roles.phenotype],
        class_labels=list(schema.LABELS),
        thresholds=outcome.policy.thresholds(),
        needs_review=outcome.policy.needs_review(),
        metrics={f"validation_{k}": float(v) for k, v in outcome.validation_metrics.items()},
        mlflow_run_id=mlflow_run_id,
        mlflow_model_version=mlflow_model_version,
        training_partitions=training_partitions,
        data_fingerprint=data_fingerprint,
        code_revision=code_revision,
        hpo_release=hpo_release,
        vocabulary=vocab,
        systems=system_list,
        test_features=model_inputs(test, outcome.feature_columns),
        phenotype_encoding=dict(phenotype_encoding),
        candidate=outcome.spec.name,
        feature_set=feature_set,
        calibration=outcome.calibration,
        selection_reason=outcome.selection_reason,
        model_params=dict(model_params),
        cv_results=[r.row() for r in outcome.cv_results],
    )
