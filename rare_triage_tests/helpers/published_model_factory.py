"""Small releases (manifest and table files) of fake ONNX bytes for bucket, publication and promotion tests (no
model is fitted)."""

import datetime as dt
from collections.abc import Mapping
from typing import Any

from rare_triage.lib import schema
from rare_triage.lib.deployment.bucket import Bucket
from rare_triage.lib.deployment.manifest import manifest_to_bytes
from rare_triage.lib.deployment.model_bundle import METRIC_EXTERNAL_VALIDATION_SHARE, METRIC_ORPHAN_RECALL, ModelBundle
from rare_triage.lib.deployment.onnx_export import ColumnSpec, FeatureSpec
from rare_triage.lib.deployment.publication import manifest_key, model_key
from rare_triage.lib.deployment.release import Release, build_release

SPEC = FeatureSpec(
    columns=(ColumnSpec("sex", "categorical", ("F", "M", "U")), ColumnSpec("spo2", "numeric")),
    class_labels=schema.LABELS,
)
# The shape of lib/features/phenotype_encoding.py's tables, for one vocabulary term and one organ system.
PHENOTYPE_ENCODING = {
    "format": "rare-triage-phenotype-encoding/1",
    "hpo_release": "2025-01-16",
    "specific_term_ic": 4.0,
    "vocabulary_ids": ["HP:0001945"],
    "system_ids": ["HP:0000707"],
    "terms": {"HP:0001945": [0.912, [0], []], "HP:0001250": [0.481, [], [0]]},
    "vocabulary_ancestors": {"HP:0001945": ["HP:0001945"]},
    "pain_terms": [],
    "fever_terms": ["HP:0001945"],
    "phenotypic_abnormality": "HP:0000118",
}


def trained_model(
    mlflow_model_version: str | None = "1", phenotype_encoding: Mapping[str, Any] | None = None, **metrics: float
) -> ModelBundle:
    """A ModelBundle without a fitted pipeline: enough for the manifest and its table files."""
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
        phenotype_encoding=dict(PHENOTYPE_ENCODING if phenotype_encoding is None else phenotype_encoding),
    )


def release_for(
    onnx_bytes: bytes,
    mlflow_model_version: str | None = "1",
    checks_passed: bool = True,
    created_at: dt.datetime | None = None,
    **metrics: float,
) -> Release:
    """A valid release of `onnx_bytes`: its manifest and table files."""
    return build_release(
        trained_model(mlflow_model_version, **metrics),
        onnx_bytes,
        SPEC,
        checks={"onnx_parity": checks_passed},
        dagster_run_id="dagster-run-1",
        created_at=created_at or dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC),
    )


def manifest_for(
    onnx_bytes: bytes,
    mlflow_model_version: str | None = "1",
    checks_passed: bool = True,
    created_at: dt.datetime | None = None,
    **metrics: float,
) -> dict[str, Any]:
    """A valid manifest of `onnx_bytes` (the manifest of `release_for`)."""
    return release_for(onnx_bytes, mlflow_model_version, checks_passed, created_at, **metrics).manifest


def publish_format_1(bucket: Bucket, onnx_bytes: bytes, mlflow_model_version: str | None = "1") -> str:
    """Write a version as publication did before table files (manifest format 1, the encoding inline); its version."""
    manifest = manifest_for(onnx_bytes, mlflow_model_version) | {"format": 1, "phenotype_encoding": PHENOTYPE_ENCODING}
    del manifest["files"]
    version = str(manifest["version"])
    bucket.put_bytes(model_key(version), onnx_bytes)
    bucket.put_bytes(manifest_key(version), manifest_to_bytes(manifest))
    return version
