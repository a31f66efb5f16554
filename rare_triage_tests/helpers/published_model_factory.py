"""Small manifests and fake ONNX bytes for bucket, publication and promotion tests (no model is fitted)."""

import datetime as dt
from typing import Any

from rare_triage.lib import schema
from rare_triage.lib.deployment.manifest import build_manifest
from rare_triage.lib.deployment.model_bundle import METRIC_EXTERNAL_VALIDATION_SHARE, METRIC_ORPHAN_RECALL, ModelBundle
from rare_triage.lib.deployment.onnx_export import ColumnSpec, FeatureSpec

SPEC = FeatureSpec(
    columns=(ColumnSpec("sex", "categorical", ("F", "M", "U")), ColumnSpec("spo2", "numeric")),
    class_labels=schema.LABELS,
)


def trained_model(mlflow_model_version: str | None = "1", **metrics: float) -> ModelBundle:
    """A ModelBundle bundle without a fitted pipeline: enough for the manifest."""
    return ModelBundle(
        pipeline=None,
        feature_columns=["sex", "spo2"],
        categorical_columns=["sex"],
        categories={"sex": ["F", "M", "U"]},
        numeric_columns=["spo2"],
        class_labels=list(schema.LABELS),
        thresholds={schema.ORPHAN_LABEL: 0.2},
        needs_review={"orphan_probability_at_least": 0.2},
        metrics={METRIC_ORPHAN_RECALL: 0.9, METRIC_EXTERNAL_VALIDATION_SHARE: 0.8, **metrics},
        mlflow_run_id="run-abc",
        mlflow_model_version=mlflow_model_version,
        training_partitions=["2025-01-02", "2025-01-01"],
        data_fingerprint="fingerprint",
        code_revision="0123abc",
        hpo_release="2025-01-16",
        vocabulary=[{"hpo_id": "HP:0001945", "label": "Fever"}],
        systems=[{"hpo_id": "HP:0000707", "label": "Abnormality of the nervous system"}],
    )


def manifest_for(
    onnx_bytes: bytes,
    mlflow_model_version: str | None = "1",
    checks_passed: bool = True,
    created_at: dt.datetime | None = None,
    **metrics: float,
) -> dict[str, Any]:
    """A valid manifest of `onnx_bytes`."""
    return build_manifest(
        trained_model(mlflow_model_version, **metrics),
        onnx_bytes,
        SPEC,
        checks={"onnx_parity": checks_passed},
        dagster_run_id="dagster-run-1",
        created_at=created_at or dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC),
    )
