"""onnx_model (the chosen pipeline as ONNX) and published_model (written to the bucket, dev pointer moved)."""

from typing import Any

import dagster as dg
import numpy as np
from dagster_shared.check import CheckError

from rare_triage import constants as c
from rare_triage.deployment.checks import ONNX_PARITY, ONNX_SIZE
from rare_triage.deployment.resources import ModelBucketResource
from rare_triage.lib.manifest import build_manifest
from rare_triage.lib.model_bundle import METRIC_EXTERNAL_VALIDATION_SHARE, METRIC_ORPHAN_RECALL, TrainedModel
from rare_triage.lib.onnx_export import ExportedModel, export_trained_model, to_serving_matrix
from rare_triage.lib.onnx_export.speed import onnx_speed
from rare_triage.lib.promotion import DEV
from rare_triage.lib.publication import move_pointer, pointer_key, publish_model

LATENCY_REPEATS = 200
LATENCY_BATCH_ROWS = 10_000


def _timing_matrix(model: TrainedModel, exported: ExportedModel) -> np.ndarray:
    if model.test_features is not None and len(model.test_features):
        return to_serving_matrix(model.test_features, exported.spec)
    return np.zeros((1, len(exported.spec.columns)), dtype=np.float32)


@dg.asset(
    key=c.ONNX_MODEL,
    group_name=c.GROUP_DEPLOYMENT,
    ins={"triage_model": dg.AssetIn(key=c.TRIAGE_MODEL)},
    description="The whole chosen pipeline (preprocessing + classifier) as ONNX: one float32 input "
    "`features` [N, F], output `probabilities` [N, classes]. Parity with the native model is a blocking check.",
)
def onnx_model(context: dg.AssetExecutionContext, triage_model: TrainedModel) -> dg.Output[ExportedModel]:
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


REQUIRED_CHECKS = (dg.AssetCheckKey(c.ONNX_MODEL, ONNX_PARITY), dg.AssetCheckKey(c.ONNX_MODEL, ONNX_SIZE))


def _asset_graph(context: dg.AssetExecutionContext) -> Any:
    """The code location's whole graph (every check); a bare `materialize()` only knows the run's own."""
    try:
        return context.repository_def.asset_graph
    except CheckError:
        return context.job_def.asset_layer.asset_graph


def blocking_check_outcomes(context: dg.AssetExecutionContext, asset_keys: set[dg.AssetKey]) -> dict[str, bool]:
    """Our own checks plus every blocking check on `asset_keys`: did the latest evaluation pass, on the
    latest materialization?"""
    graph = _asset_graph(context)
    keys = set(REQUIRED_CHECKS) | {
        key for key in graph.get_check_keys_for_assets(asset_keys) if graph.get_check_spec(key).blocking
    }
    outcomes: dict[str, bool] = {}
    for key in sorted(keys, key=lambda k: k.to_user_string()):
        record = context.instance.get_latest_asset_check_evaluation_record(key)
        evaluation = record.event.asset_check_evaluation if record is not None and record.event else None
        latest = context.instance.fetch_materializations(key.asset_key, limit=1).records
        target = evaluation.target_materialization_data if evaluation is not None else None
        current = bool(latest) and target is not None and target.storage_id == latest[0].storage_id
        outcomes[key.to_user_string()] = bool(evaluation is not None and evaluation.passed and current)
    return outcomes


def exported_from_current_model(context: dg.AssetExecutionContext) -> bool:
    """Was the latest onnx_model exported from the latest triage_model (not from an older one)?"""
    onnx_records = context.instance.fetch_materializations(c.ONNX_MODEL, limit=1).records
    model_records = context.instance.fetch_materializations(c.TRIAGE_MODEL, limit=1).records
    if not onnx_records or not model_records or onnx_records[0].asset_materialization is None:
        return False
    tags = onnx_records[0].asset_materialization.tags or {}
    return tags.get(f"dagster/input_event_pointer/{c.TRIAGE_MODEL.to_user_string()}") == str(
        model_records[0].storage_id
    )


@dg.asset(
    key=c.PUBLISHED_MODEL,
    group_name=c.GROUP_DEPLOYMENT,
    ins={"onnx_model": dg.AssetIn(key=c.ONNX_MODEL), "triage_model": dg.AssetIn(key=c.TRIAGE_MODEL)},
    description="models/rare-triage/<version>/model.onnx + manifest.json in the bucket (immutable, "
    "content-addressed), then the dev pointer moved to it after a read-back hash verification.",
)
def published_model(
    context: dg.AssetExecutionContext,
    bucket: ModelBucketResource,
    onnx_model: ExportedModel,
    triage_model: TrainedModel,
) -> dg.Output[dict[str, Any]]:
    if not exported_from_current_model(context):
        raise dg.Failure(
            description="refusing to publish: onnx_model was not exported from the latest triage_model; "
            "materialize onnx_model (with its checks) again"
        )
    checks = blocking_check_outcomes(context, {c.TRIAGE_MODEL, c.ONNX_MODEL})
    failed = [name for name, ok in checks.items() if not ok]
    if failed:
        raise dg.Failure(
            description=f"refusing to publish: blocking checks {failed} did not pass on the current "
            "materializations (or were not run); materialize triage_model and onnx_model with their checks first",
            metadata={"checks": dg.MetadataValue.json(checks)},
        )
    manifest = build_manifest(
        triage_model, onnx_model.onnx_bytes, onnx_model.spec, checks=checks, dagster_run_id=context.run.run_id
    )
    target = bucket.get_bucket()
    published = publish_model(target, onnx_model.onnx_bytes, manifest)
    pointer = move_pointer(target, DEV, published.version)
    missing = [m for m in (METRIC_ORPHAN_RECALL, METRIC_EXTERNAL_VALIDATION_SHARE) if m not in manifest["metrics"]]
    if missing:
        context.log.warning(f"manifest lacks {missing}: the promotion gate will refuse this version")
    return dg.Output(
        {"version": published.version, "bucket": target.uri, "pointer": pointer_key(DEV), **vars(pointer)},
        metadata={
            "version": published.version,
            "bucket": target.uri,
            "model_key": published.model_key,
            "manifest_key": published.manifest_key,
            "onnx_sha256": published.onnx_sha256,
            "manifest_sha256": published.manifest_sha256,
            "already_published": published.already_published,
            "dev_previous_version": str(pointer.previous_version),
            "checks": dg.MetadataValue.json(checks),
            "mlflow_run_id": str(manifest["mlflow_run_id"]),
            "mlflow_model_version": str(manifest["mlflow_model_version"]),
        },
    )
