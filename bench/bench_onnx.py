"""ONNX Runtime vs native scikit-learn predict_proba, measured side by side in one run, on one core.

    python bench/bench_onnx.py --synthetic xgb            # trains a model on synthetic features first
    python bench/bench_onnx.py --bucket .rare_triage/bucket --env dev [--mlflow-tracking-uri URI]

The published-model mode loads model.onnx and its manifest from the bucket (verified, as serving does)
and, when an MLflow tracking URI is given, the native pipeline of the same model version to compare.
Targets (issue 4): single row >= 20x faster than native, batch of 100,000 rows at least as fast, ONNX
file < 20 MB, single-row ONNX latency < 0.5 ms.
"""

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from rare_triage.lib.bucket import bucket_from_uri
from rare_triage.lib.onnx_export import FeatureSpec, export_pipeline_to_onnx, feature_spec_from_pipeline
from rare_triage.lib.onnx_export.feature_spec import to_serving_matrix
from rare_triage.lib.onnx_export.speed import native_speed, onnx_speed
from rare_triage.lib.onnx_export.synthetic import MODEL_KINDS, synthetic_frame, synthetic_trained_model
from rare_triage.lib.publication import served_model

BATCH_ROWS = 100_000
TARGET_SINGLE_RATIO = 20.0
TARGET_BATCH_RATIO = 1.0
TARGET_SIZE_BYTES = 20 * 1024 * 1024
TARGET_SINGLE_MS = 0.5


def frame_for_spec(spec: FeatureSpec, n: int, seed: int = 7) -> pd.DataFrame:
    """Rows shaped like the spec: synthetic values where the column is known, category draws, 0/1 flags else."""
    base, _ = synthetic_frame(n, seed, unseen_share=0.02)
    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {}
    for column in spec.columns:
        if column.name in base.columns:
            columns[column.name] = base[column.name].to_numpy()
        elif column.kind == "categorical":
            columns[column.name] = rng.choice(np.array([*column.categories, "unseen"], dtype=object), size=n)
        else:
            columns[column.name] = (rng.random(n) < 0.05).astype(float)
    return pd.DataFrame(columns)


def single_threaded(pipeline: Any) -> Any:
    """Set n_jobs / nthread = 1 on every step that has it: the comparison is one core against one core."""
    for _, step in getattr(pipeline, "steps", []):
        for inner in (step, getattr(step, "estimator", None)):
            if inner is not None and "n_jobs" in inner.get_params(deep=False):
                inner.set_params(n_jobs=1)
        for calibrated in getattr(step, "calibrated_classifiers_", []):
            if "n_jobs" in calibrated.estimator.get_params(deep=False):
                calibrated.estimator.set_params(n_jobs=1)
    return pipeline


def synthetic_model(kind: str, rows: int) -> tuple[Any, bytes, FeatureSpec, pd.DataFrame, str]:
    model = synthetic_trained_model(kind, n=rows)  # type: ignore[arg-type]
    spec = feature_spec_from_pipeline(
        model.pipeline, model.feature_columns, model.categorical_columns, model.class_labels
    )
    assert model.test_features is not None
    return model.pipeline, export_pipeline_to_onnx(model.pipeline, spec), spec, model.test_features, f"synthetic {kind}"


def published_model(uri: str, env: str, tracking_uri: str | None) -> tuple[Any, bytes, FeatureSpec, pd.DataFrame, str]:
    client = None
    if uri.startswith("s3://"):
        import boto3  # noqa: PLC0415 - only the S3 mode needs it

        client = boto3.client("s3", endpoint_url=os.environ.get("RARE_TRIAGE_S3_ENDPOINT_URL"))
    pointer, manifest, onnx_bytes = served_model(bucket_from_uri(uri, client), env)
    spec = FeatureSpec.from_dict(manifest["input_schema"])
    native = None
    if tracking_uri and manifest.get("mlflow_run_id"):
        import mlflow  # noqa: PLC0415 - only needed to compare against the native pipeline

        mlflow.set_tracking_uri(tracking_uri)
        native = mlflow.sklearn.load_model(f"runs:/{manifest['mlflow_run_id']}/model")
    return native, onnx_bytes, spec, frame_for_spec(spec, 2000), f"{env} -> {pointer.version}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--synthetic", choices=MODEL_KINDS, help="train this kind on synthetic features")
    source.add_argument("--bucket", help="bucket URI (folder or s3://bucket/prefix) holding published models")
    parser.add_argument("--env", default="dev", help="env pointer to follow in --bucket mode (default dev)")
    parser.add_argument("--mlflow-tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI"))
    parser.add_argument("--train-rows", type=int, default=20_000, help="rows to train the synthetic model on")
    parser.add_argument("--batch-rows", type=int, default=BATCH_ROWS)
    parser.add_argument("--repeats", type=int, default=300, help="single-row repetitions (median reported)")
    args = parser.parse_args(argv)

    if args.synthetic:
        native, onnx_bytes, spec, frame, label = synthetic_model(args.synthetic, args.train_rows)
    else:
        native, onnx_bytes, spec, frame, label = published_model(args.bucket, args.env, args.mlflow_tracking_uri)
    matrix = to_serving_matrix(frame, spec)
    fast = onnx_speed(onnx_bytes, matrix, repeats=args.repeats, batch_rows=args.batch_rows)
    size_mb = len(onnx_bytes) / 1024 / 1024
    print(f"model: {label}; {len(spec.columns)} input columns; ONNX file {size_mb:.2f} MB")
    print(f"onnxruntime (1 thread): single row {fast['single_row_ms']:.3f} ms (p95 {fast['single_row_p95_ms']:.3f}),")
    print(f"  batch {args.batch_rows:,} rows in {fast['batch_seconds']:.3f} s = {fast['batch_rows_per_s']:,.0f} rows/s")
    failures = []
    if len(onnx_bytes) >= TARGET_SIZE_BYTES:
        failures.append(f"ONNX file {size_mb:.2f} MB >= 20 MB")
    if fast["single_row_ms"] >= TARGET_SINGLE_MS:
        failures.append(f"single row {fast['single_row_ms']:.3f} ms >= {TARGET_SINGLE_MS} ms")
    if native is None:
        print("native: not available (give --mlflow-tracking-uri to load the pipeline of this version); no ratios")
    else:
        slow = native_speed(
            single_threaded(native), frame[spec.names], repeats=max(20, args.repeats // 10), batch_rows=args.batch_rows
        )
        single_ratio = slow["single_row_ms"] / fast["single_row_ms"]
        batch_ratio = fast["batch_rows_per_s"] / slow["batch_rows_per_s"]
        print(f"native predict_proba (1 thread): single row {slow['single_row_ms']:.3f} ms,")
        print(
            f"  batch {args.batch_rows:,} rows in {slow['batch_seconds']:.3f} s = {slow['batch_rows_per_s']:,.0f} rows/s"
        )
        print(f"ratio single row: ONNX {single_ratio:.1f}x faster (target >= {TARGET_SINGLE_RATIO:.0f}x)")
        print(f"ratio batch:      ONNX {batch_ratio:.2f}x native throughput (target >= {TARGET_BATCH_RATIO:.0f}x)")
        if single_ratio < TARGET_SINGLE_RATIO:
            failures.append(f"single-row ratio {single_ratio:.1f}x < {TARGET_SINGLE_RATIO:.0f}x")
        if batch_ratio < TARGET_BATCH_RATIO:
            failures.append(f"batch ratio {batch_ratio:.2f}x < {TARGET_BATCH_RATIO:.0f}x")
    print("targets: " + ("all met" if not failures else "MISSED: " + "; ".join(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
