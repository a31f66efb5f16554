"""onnx_model (the chosen pipeline as ONNX) and published_model (written to the bucket, dev pointer moved)."""

import datetime as dt
import os
from typing import Any

import dagster as dg
import numpy as np

from rare_triage.defs.deployment.gating import GATED_ASSETS, blocking_check_outcomes, exported_from_current_model
from rare_triage.defs.deployment.registry import make_challenger, record_hashes
from rare_triage.defs.shared import keys as c
from rare_triage.defs.shared.bucket import ModelBucketResource
from rare_triage.defs.shared.mlflow import MlflowTracking
from rare_triage.lib.deployment.model_bundle import (
    ExternalEvaluation,
    ModelBundle,
    TestWindowEvaluation,
    with_evaluation_metrics,
)
from rare_triage.lib.deployment.onnx_export import ExportedModel, export_trained_model, to_serving_matrix
from rare_triage.lib.deployment.onnx_export.speed import onnx_speed
from rare_triage.lib.deployment.promotion import DEV, GATED_METRICS
from rare_triage.lib.deployment.publication import move_pointer, pointer_key, publish_model
from rare_triage.lib.deployment.release import HPO_XREFS, MONITORING_REFERENCE, build_release
from rare_triage.lib.ingest.fhir.hpo_xrefs import hpo_xref_table, xref_document

LATENCY_REPEATS = 200
# the dev model is stale past this age (days, RARE_TRIAGE_MODEL_MAX_AGE_DAYS): retraining is overdue
MODEL_MAX_AGE_DAYS = float(os.environ.get("RARE_TRIAGE_MODEL_MAX_AGE_DAYS", "30"))
LATENCY_BATCH_ROWS = 10_000


def _timing_matrix(model: ModelBundle, exported: ExportedModel) -> np.ndarray:
    if model.test_features is not None and len(model.test_features):
        return to_serving_matrix(model.test_features, exported.spec)
    return np.zeros((1, len(exported.spec.columns)), dtype=np.float32)


@dg.asset(
    key=c.ONNX_MODEL,
    group_name=c.GROUP_DEPLOYMENT,
    ins={"triage_model": dg.AssetIn(key=c.TRIAGE_MODEL)},
    # the training gates are blocking checks on these two: a model that fails one is not even exported
    deps=[c.MODEL_EVALUATION, c.EXTERNAL_VALIDATION],
    kinds={"onnx", "scikitlearn"},
    description="The whole chosen pipeline (preprocessing + classifier) as ONNX: one float32 input "
    "`features` [N, F], output `probabilities` [N, classes]. Parity with the native model is a blocking check.",
)
def onnx_model(context: dg.AssetExecutionContext, triage_model: ModelBundle) -> dg.Output[ExportedModel]:
    exported = export_trained_model(triage_model)
    speed = onnx_speed(exported.onnx_bytes, _timing_matrix(triage_model, exported), LATENCY_REPEATS, LATENCY_BATCH_ROWS)
    differing = [
        col.name
        for col in exported.spec.columns
        if col.kind == "categorical" and list(col.categories) != list(triage_model.categories.get(col.name, []))
    ]
    if differing:
        context.log.warning(f"categories of {differing} differ from the bundle's; the fitted encoder's are used")
    classifier = triage_model.pipeline.steps[-1][1]
    return dg.Output(
        exported,
        metadata={
            "onnx_bytes": exported.size_bytes,
            "onnx_mb": round(exported.size_bytes / 1024 / 1024, 3),
            "sha256": exported.sha256,
            "classifier": type(classifier).__name__,
            "input_columns": len(exported.spec.columns),
            "class_labels": dg.MetadataValue.json(list(exported.spec.class_labels)),
            "single_row_ms": round(speed["single_row_ms"], 4),
            "single_row_p95_ms": round(speed["single_row_p95_ms"], 4),
            "batch_rows": int(speed["batch_rows"]),
            "batch_rows_per_s": round(speed["batch_rows_per_s"]),
            "latency_note": "ONNX Runtime, 1 intra-op thread, median of "
            f"{LATENCY_REPEATS} single-row calls; batch of {LATENCY_BATCH_ROWS} test rows",
        },
    )


@dg.asset(
    key=c.PUBLISHED_MODEL,
    group_name=c.GROUP_DEPLOYMENT,
    ins={
        "onnx_model": dg.AssetIn(key=c.ONNX_MODEL),
        "triage_model": dg.AssetIn(key=c.TRIAGE_MODEL),
        "model_evaluation": dg.AssetIn(key=c.MODEL_EVALUATION),
        "external_validation": dg.AssetIn(key=c.EXTERNAL_VALIDATION),
        "reference_profile": dg.AssetIn(key=c.REFERENCE_PROFILE),
    },
    freshness_policy=dg.FreshnessPolicy.time_window(fail_window=dt.timedelta(days=MODEL_MAX_AGE_DAYS)),
    kinds={"onnx", "s3", "mlflow"},  # the bucket is S3-compatible (a local folder by default); hashes in the registry
    description="models/rare-triage/<version>/model.onnx + phenotype_encoding.json + hpo_xrefs.json + "
    "monitoring_reference.json + manifest.json "
    "(which holds the table files' sha256) in the bucket (immutable, content-addressed), then the dev pointer "
    "moved to it after a read-back hash verification. Refuses to publish unless every blocking check passed on the "
    "current materializations; the published version then gets the MLflow alias `challenger`.",
)
def published_model(  # noqa: PLR0917 - Dagster passes inputs and resources by parameter name
    context: dg.AssetExecutionContext,
    bucket: ModelBucketResource,
    mlflow: MlflowTracking,
    onnx_model: ExportedModel,
    triage_model: ModelBundle,
    model_evaluation: TestWindowEvaluation,
    external_validation: ExternalEvaluation,
    reference_profile: dict[str, Any],
) -> dg.Output[dict[str, Any]]:
    versions = {triage_model.mlflow_model_version, model_evaluation.mlflow_model_version}
    versions |= {external_validation.mlflow_model_version}
    profiled = reference_profile.get("model_version")
    if len(versions) != 1 or profiled != str(triage_model.mlflow_model_version):
        raise dg.Failure(
            description="refusing to publish: triage_model, model_evaluation, external_validation and "
            f"reference_profile describe different model versions ({triage_model.mlflow_model_version}, "
            f"{model_evaluation.mlflow_model_version}, {external_validation.mlflow_model_version}, {profiled})"
        )
    if not exported_from_current_model(context):
        raise dg.Failure(
            description="refusing to publish: onnx_model was not exported from the latest triage_model; "
            "materialize onnx_model (with its checks) again"
        )
    checks = blocking_check_outcomes(context, GATED_ASSETS)
    failed = [name for name, ok in checks.items() if not ok]
    if failed:
        raise dg.Failure(
            description=f"refusing to publish: blocking checks {failed} did not pass on the current "
            "materializations (or were not run); materialize the training and onnx assets with their checks first",
            metadata={"checks": dg.MetadataValue.json(checks)},
        )
    evaluated = with_evaluation_metrics(triage_model, model_evaluation.metrics, external_validation.metrics())
    release = build_release(
        evaluated,
        onnx_model.onnx_bytes,
        onnx_model.spec,
        checks=checks,
        dagster_run_id=context.run.run_id,
        extra_tables={
            HPO_XREFS: xref_document(hpo_xref_table(), evaluated.hpo_release),
            MONITORING_REFERENCE: reference_profile,
        },
    )
    manifest = release.manifest
    target = bucket.get_bucket()
    published = publish_model(target, release)
    # the registry keeps the hashes outside the bucket: promotion and rollback verify the files against them
    tagged = record_hashes(mlflow, published, manifest["mlflow_model_version"])
    pointer = move_pointer(target, DEV, published.version)
    challenger = make_challenger(mlflow, manifest["mlflow_model_version"])  # gates passed: what dev serves now
    return dg.Output(
        {"version": published.version, "bucket": target.uri, "pointer": pointer_key(DEV), **vars(pointer)},
        metadata={
            "version": published.version,
            "bucket": target.uri,
            "model_key": published.model_key,
            "manifest_key": published.manifest_key,
            "onnx_sha256": published.onnx_sha256,
            "manifest_sha256": published.manifest_sha256,
            "table_files": dg.MetadataValue.json(manifest["files"]),
            "already_published": published.already_published,
            "dev_previous_version": str(pointer.previous_version),
            "checks": dg.MetadataValue.json(checks),
            "gate_metrics": dg.MetadataValue.json(
                {k: manifest["metrics"][k] for k in GATED_METRICS if k in manifest["metrics"]}
            ),
            "mlflow_run_id": str(manifest["mlflow_run_id"]),
            "mlflow_model_version": str(manifest["mlflow_model_version"]),
            "registry_hash_tags_set": dg.MetadataValue.json(tagged),
            "mlflow_alias": "challenger" if challenger else "-",
        },
    )
