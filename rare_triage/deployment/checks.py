"""Checks of the deployment assets: ONNX parity and size block publication; the dev pointer is re-verified."""

import dagster as dg

from rare_triage import constants as c
from rare_triage.deployment.resources import ModelBucketResource
from rare_triage.lib.model_bundle import TrainedModel
from rare_triage.lib.onnx_export import PROBABILITY_TOLERANCE, ExportedModel, parity_report
from rare_triage.lib.promotion import DEV
from rare_triage.lib.publication import IntegrityError, served_model

ONNX_PARITY = "onnx_parity"
ONNX_SIZE = "onnx_size_under_limit"
DEV_SERVES_PUBLISHED = "dev_serves_published_version"
MAX_ONNX_BYTES = 20 * 1024 * 1024  # served from a clinician's laptop


@dg.asset_check(
    asset=c.ONNX_MODEL,
    name=ONNX_PARITY,
    blocking=True,
    additional_ins={"triage_model": dg.AssetIn(key=c.TRIAGE_MODEL)},
    description=f"On the whole test window, ONNX Runtime and the native pipeline predict the same class for "
    f"every row and no probability differs by more than {PROBABILITY_TOLERANCE}.",
)
def onnx_parity(onnx_model: ExportedModel, triage_model: TrainedModel) -> dg.AssetCheckResult:
    window = triage_model.test_features
    if window is None or len(window) == 0:
        return dg.AssetCheckResult(
            passed=False, description="triage_model carries no test_features: parity cannot be shown on nothing"
        )
    report = parity_report(
        triage_model.pipeline, onnx_model.onnx_bytes, window, spec=onnx_model.spec, thresholds=triage_model.thresholds
    )
    return dg.AssetCheckResult(
        passed=report["passed"],
        metadata={k: dg.MetadataValue.json(v) if isinstance(v, list | dict) else v for k, v in report.items()},
    )


@dg.asset_check(
    asset=c.ONNX_MODEL,
    name=ONNX_SIZE,
    blocking=True,
    description=f"The ONNX file stays under {MAX_ONNX_BYTES // 1024 // 1024} MB (servable from a laptop).",
)
def onnx_size(onnx_model: ExportedModel) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=onnx_model.size_bytes < MAX_ONNX_BYTES,
        metadata={"onnx_bytes": onnx_model.size_bytes, "limit_bytes": MAX_ONNX_BYTES},
    )


@dg.asset_check(
    asset=c.PUBLISHED_MODEL,
    name=DEV_SERVES_PUBLISHED,
    description="Reading the bucket as the service does: the dev pointer names the version just published "
    "and its files match their hashes.",
)
def dev_serves_published(published_model: dict, bucket: ModelBucketResource) -> dg.AssetCheckResult:
    try:
        pointer, _, _ = served_model(bucket.get_bucket(), DEV)
    except IntegrityError as exc:
        return dg.AssetCheckResult(passed=False, description=str(exc))
    return dg.AssetCheckResult(
        passed=pointer.version == published_model["version"],
        metadata={"dev_version": pointer.version, "published_version": published_model["version"]},
        description=None if pointer.version == published_model["version"] else "dev moved to another version since",
    )
