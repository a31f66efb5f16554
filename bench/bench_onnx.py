"""ONNX Runtime vs native scikit-learn predict_proba, measured side by side in one run, on one core.

    python bench/bench_onnx.py --synthetic xgb [--param n_estimators=300 --param max_depth=6]
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

from rare_triage.lib.deployment.bucket import bucket_from_uri
from rare_triage.lib.deployment.onnx_export import FeatureSpec, export_pipeline_to_onnx, feature_spec_from_pipeline
from rare_triage.lib.deployment.onnx_export.feature_spec import to_serving_matrix
from rare_triage.lib.deployment.onnx_export.speed import (
    MAX_SINGLE_ROW_MS,
    MIN_BATCH_SPEEDUP,
    MIN_SINGLE_ROW_SPEEDUP,
    NativeTimer,
    OnnxTimer,
    single_threaded,
    tile_rows,
)
from rare_triage.lib.deployment.publication import served_model
from rare_triage.lib.testing.synthetic_models import MODEL_KINDS, synthetic_frame, synthetic_trained_model

BATCH_ROWS = 100_000
TARGET_SINGLE_RATIO = MIN_SINGLE_ROW_SPEEDUP
TARGET_BATCH_RATIO = MIN_BATCH_SPEEDUP
TARGET_SIZE_BYTES = 20 * 1024 * 1024
TARGET_SINGLE_MS = MAX_SINGLE_ROW_MS


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


def parse_params(items: Sequence[str]) -> dict[str, Any]:
    """`key=value` pairs for the synthetic classifier (ints and floats parsed)."""
    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--param {item!r}: expected key=value")
        for cast in (int, float):
            try:
                params[key] = cast(value)
                break
            except ValueError:
                continue
        else:
            params[key] = value
    return params


def synthetic_model(kind: str, rows: int, params: dict[str, Any]) -> tuple[Any, bytes, FeatureSpec, pd.DataFrame, str]:
    model = synthetic_trained_model(kind, n=rows, classifier_params=params)  # type: ignore[arg-type]
    spec = feature_spec_from_pipeline(
        model.pipeline, model.feature_columns, model.categorical_columns, model.class_labels
    )
    assert model.test_features is not None
    described = ", ".join(f"{k}={v}" for k, v in params.items()) or "defaults"
    return (
        model.pipeline,
        export_pipeline_to_onnx(model.pipeline, spec),
        spec,
        model.test_features,
        f"synthetic {kind} ({described})",
    )


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
    parser.add_argument("--param", action="append", default=[], help="synthetic classifier param, e.g. max_depth=6")
    parser.add_argument("--batch-rows", type=int, default=BATCH_ROWS)
    parser.add_argument("--repeats", type=int, default=300, help="single-row repetitions (median reported)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating batch rounds; the best of each is kept")
    args = parser.parse_args(argv)

    if args.synthetic:
        native, onnx_bytes, spec, frame, label = synthetic_model(
            args.synthetic, args.train_rows, parse_params(args.param)
        )
    else:
        native, onnx_bytes, spec, frame, label = published_model(args.bucket, args.env, args.mlflow_tracking_uri)
    matrix = to_serving_matrix(frame, spec)
    onnx_timer = OnnxTimer(onnx_bytes)
    native_timer = NativeTimer(single_threaded(native)) if native is not None else None
    batch_matrix, batch_frame = tile_rows(matrix, args.batch_rows), tile_rows(frame[spec.names], args.batch_rows)
    onnx_seconds, native_seconds = float("inf"), float("inf")
    for _ in range(args.rounds):  # alternate, so load from other processes hits both sides alike
        onnx_seconds = min(onnx_seconds, onnx_timer.batch_seconds(batch_matrix))
        if native_timer is not None:
            native_seconds = min(native_seconds, native_timer.batch_seconds(batch_frame))
    onnx_single, onnx_p95 = onnx_timer.single_row_ms(matrix, args.repeats)
    size_mb = len(onnx_bytes) / 1024 / 1024
    print(f"model: {label}; {len(spec.columns)} input columns; ONNX file {size_mb:.2f} MB")
    print(f"onnxruntime (1 thread): single row {onnx_single:.3f} ms (p95 {onnx_p95:.3f}),")
    print(f"  batch {args.batch_rows:,} rows in {onnx_seconds:.3f} s = {args.batch_rows / onnx_seconds:,.0f} rows/s")
    failures = []
    if len(onnx_bytes) >= TARGET_SIZE_BYTES:
        failures.append(f"ONNX file {size_mb:.2f} MB >= 20 MB")
    if onnx_single >= TARGET_SINGLE_MS:
        failures.append(f"single row {onnx_single:.3f} ms >= {TARGET_SINGLE_MS} ms")
    if native_timer is None:
        print("native: not available (give --mlflow-tracking-uri to load the pipeline of this version); no ratios")
    else:
        native_single, _ = native_timer.single_row_ms(frame[spec.names], max(20, args.repeats // 10))
        single_ratio = native_single / onnx_single
        batch_ratio = native_seconds / onnx_seconds
        print(f"native predict_proba (1 thread): single row {native_single:.3f} ms,")
        native_rate = args.batch_rows / native_seconds
        print(f"  batch {args.batch_rows:,} rows in {native_seconds:.3f} s = {native_rate:,.0f} rows/s")
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
