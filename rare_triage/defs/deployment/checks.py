"""Checks of the deployment assets: ONNX parity and size block publication; the dev pointer is re-verified."""

import dagster as dg

from rare_triage.defs.shared import keys as c
from rare_triage.defs.shared.bucket import ModelBucketResource
from rare_triage.lib.deployment.model_bundle import ModelBundle
from rare_triage.lib.deployment.onnx_export import PROBABILITY_TOLERANCE, ExportedModel, parity_report
from rare_triage.lib.deployment.onnx_export.speed import (
    MAX_SINGLE_ROW_MS,
    MIN_BATCH_SPEEDUP,
    MIN_SINGLE_ROW_SPEEDUP,
    serving_speed,
)
from rare_triage.lib.deployment.promotion import DEV
from rare_triage.lib.deployment.publication import IntegrityError, served_model

ONNX_PARITY = "onnx_parity"
ONNX_SIZE = "onnx_size_under_limit"
ONNX_SERVING_SPEED = "onnx_serving_speed"
DEV_SERVES_PUBLISHED = "dev_serves_published_version"
SPEED_BATCH_ROWS = 20_000
MAX_ONNX_BYTES = 20 * 1024 * 1024  # served from a clinician's laptop


def _no_test_window(
    triage_model: ModelBundle, what: str, severity: dg.AssetCheckSeverity
) -> dg.AssetCheckResult | None:
    """The result of a check that needs the test window, when the bundle carries none; else None."""
    window = triage_model.test_features
    if window is not None and len(window):
        return None
    return dg.AssetCheckResult(
        passed=False, severity=severity, description=f"triage_model carries no test_features: {what}"
    )


@dg.asset_check(
    asset=c.ONNX_MODEL,
    name=ONNX_PARITY,
    blocking=True,
    additional_ins={"triage_model": dg.AssetIn(key=c.TRIAGE_MODEL)},
    description=f"On the whole test window, ONNX Runtime and the native pipeline predict the same class for "
    f"every row and no probability differs by more than {PROBABILITY_TOLERANCE}.",
)
def onnx_parity(onnx_model: ExportedModel, triage_model: ModelBundle) -> dg.AssetCheckResult:
    missing = _no_test_window(triage_model, "parity cannot be shown on nothing", dg.AssetCheckSeverity.ERROR)
    if missing is not None:
        return missing
    report = parity_report(
        triage_model.pipeline,
        onnx_model.onnx_bytes,
        triage_model.test_features,
        spec=onnx_model.spec,
        thresholds=triage_model.thresholds,
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
    asset=c.ONNX_MODEL,
    name=ONNX_SERVING_SPEED,
    blocking=False,
    additional_ins={"triage_model": dg.AssetIn(key=c.TRIAGE_MODEL)},
    description=f"Serving targets, one core each, on test rows: ONNX Runtime at least {MIN_SINGLE_ROW_SPEEDUP:g}x "
    f"faster than the native pipeline on one row and under {MAX_SINGLE_ROW_MS} ms, and at least "
    f"{MIN_BATCH_SPEEDUP:g}x its throughput on {SPEED_BATCH_ROWS:,} rows. A warning: timings move with the "
    "machine's load (bench/bench_onnx.py measures on 100,000 rows), and tree boosting is slower under ONNX Runtime.",
)
def onnx_serving_speed(onnx_model: ExportedModel, triage_model: ModelBundle) -> dg.AssetCheckResult:
    missing = _no_test_window(triage_model, "nothing to time on", dg.AssetCheckSeverity.WARN)
    if missing is not None:
        return missing
    report = serving_speed(
        triage_model.pipeline,
        onnx_model.onnx_bytes,
        triage_model.test_features,
        onnx_model.spec,
        batch_rows=SPEED_BATCH_ROWS,
    )
    return dg.AssetCheckResult(
        passed=report["targets_met"],
        severity=dg.AssetCheckSeverity.WARN,
        description=f"batch {report['batch_speedup']:.2f}x native, single row {report['single_row_speedup']:.0f}x "
        f"native at {report['onnx_single_row_ms']:.3f} ms",
        metadata={k: round(v, 4) if isinstance(v, float) else v for k, v in report.items()},
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
