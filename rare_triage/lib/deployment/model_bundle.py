"""What training hands to deployment: the fitted pipeline plus the contract the manifest carries.

`triage_model` (training) returns a `ModelBundle`; `onnx_model` and `published_model`
(deployment) read it. Everything the serving side needs besides the ONNX graph is here.
"""

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import pandas as pd

from rare_triage.lib import schema
from rare_triage.lib.deployment.metric_names import METRIC_EXTERNAL_VALIDATION_SHARE, METRIC_ORPHAN_RECALL

# Metric keys the promotion gate reads from `ModelBundle.metrics` (and the manifest).


@dataclass(frozen=True)
class ModelBundle:
    """A fitted scikit-learn Pipeline taking a DataFrame of `feature_columns` and its provenance.

    The pipeline's predict_proba columns are `class_labels` in that order. Categoricals enter
    the pipeline as str, numerics as float (NaN for missing). `test_features`, when given, is
    the held-out test window (feature columns only) on which ONNX parity is checked.
    """

    pipeline: Any
    feature_columns: list[str]
    categorical_columns: list[str]
    categories: dict[str, list[str]]
    numeric_columns: list[str]
    class_labels: list[str]
    thresholds: dict[str, float]
    needs_review: dict[str, Any]
    metrics: dict[str, float]
    mlflow_run_id: str | None
    mlflow_model_version: str | None
    training_partitions: list[str]
    data_fingerprint: str
    code_revision: str
    hpo_release: str
    vocabulary: list[dict[str, str]]  # [{"hpo_id": "HP:0001945", "label": "Fever"}, ...]
    systems: list[dict[str, str]]  # organ-system groups under HP:0000118, same shape
    test_features: pd.DataFrame | None = field(default=None, repr=False, compare=False)
    # HPO id -> phenotype inputs, for the service (see lib/features/phenotype_encoding.py); empty for models trained
    # outside the platform's features
    phenotype_encoding: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        validate_model_bundle(self)


def validate_model_bundle(model: "ModelBundle") -> None:
    """Raise ValueError naming the field when the bundle is inconsistent."""
    columns = list(model.feature_columns)
    if len(set(columns)) != len(columns):
        raise ValueError("feature_columns: duplicate column names")
    categorical, numeric = list(model.categorical_columns), list(model.numeric_columns)
    if sorted(categorical + numeric) != sorted(columns):
        raise ValueError(
            "feature_columns: must be exactly categorical_columns + numeric_columns "
            f"(missing {sorted(set(columns) - set(categorical + numeric))}, "
            f"extra {sorted(set(categorical + numeric) - set(columns))})"
        )
    if set(model.categories) != set(categorical):
        raise ValueError(
            f"categories: keys {sorted(model.categories)} must equal categorical_columns {sorted(categorical)}"
        )
    for column, values in model.categories.items():
        if len(set(values)) != len(values) or not all(isinstance(v, str) for v in values):
            raise ValueError(f"categories[{column!r}]: must be distinct strings")
    if tuple(model.class_labels) != schema.LABELS:
        raise ValueError(f"class_labels: expected {list(schema.LABELS)}, got {list(model.class_labels)}")
    for entry in [*model.vocabulary, *model.systems]:
        if not {"hpo_id", "label"} <= set(entry):
            raise ValueError(f"vocabulary/systems: entry {entry!r} lacks hpo_id or label")
    if model.test_features is not None:
        missing = [c for c in columns if c not in model.test_features.columns]
        if missing:
            raise ValueError(f"test_features: missing feature columns {missing}")


def with_evaluation_metrics(
    model: ModelBundle, test_metrics: Mapping[str, float], external_metrics: Mapping[str, float]
) -> ModelBundle:
    """A copy whose metrics also hold the test-window and external-validation numbers, under the keys the
    promotion gate reads (METRIC_ORPHAN_RECALL, METRIC_EXTERNAL_VALIDATION_SHARE)."""
    merged = dict(model.metrics)
    merged.update({f"test_{k}": float(v) for k, v in test_metrics.items()})
    merged.update({k: float(v) for k, v in external_metrics.items()})
    merged[METRIC_ORPHAN_RECALL] = float(test_metrics["orphan_recall"])
    merged[METRIC_EXTERNAL_VALIDATION_SHARE] = float(external_metrics[METRIC_EXTERNAL_VALIDATION_SHARE])
    return dataclasses.replace(model, metrics=merged)


@runtime_checkable
class TestWindowEvaluation(Protocol):
    """What publication reads of the model_evaluation asset: its flat test-window metrics and model version."""

    metrics: dict[str, float]
    mlflow_model_version: str | None


@runtime_checkable
class ExternalEvaluation(Protocol):
    """What publication reads of the external_validation asset: its metrics and model version."""

    mlflow_model_version: str | None

    def metrics(self) -> dict[str, float]: ...
