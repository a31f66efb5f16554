"""Latency of the ONNX model under ONNX Runtime (one thread) and of the native pipeline, measured alike."""

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from rare_triage.lib.deployment.onnx_export.feature_spec import FeatureSpec, to_serving_matrix
from rare_triage.lib.deployment.onnx_export.parity import onnx_session

# Serving targets: the ONNX model at least 20x faster than the native pipeline on one row and not slower on a
# batch, one core each; under 0.5 ms per row.
MIN_SINGLE_ROW_SPEEDUP = 20.0
MIN_BATCH_SPEEDUP = 1.0
MAX_SINGLE_ROW_MS = 0.5


def single_call_ms(call: Callable[[], object], repeats: int, warmup: int = 5) -> tuple[float, float]:
    """Median and p95 wall time of `call`, in milliseconds."""
    if repeats < 1:
        raise ValueError(f"repeats: must be at least 1, got {repeats}")
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000.0)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.95 * len(times)))]


def tile_rows(rows: Any, n: int) -> Any:
    """`n` rows cycling through `rows` (a DataFrame or an array)."""
    if len(rows) == 0:
        raise ValueError("speed: no rows to time")
    index = np.arange(n) % len(rows)
    return (
        rows.iloc[index].reset_index(drop=True) if isinstance(rows, pd.DataFrame) else np.ascontiguousarray(rows[index])
    )


class OnnxTimer:
    """ONNX Runtime on one intra-op thread, timed on the serving matrix."""

    def __init__(self, onnx_bytes: bytes) -> None:
        self.session = onnx_session(onnx_bytes, threads=1)
        self.input_name = self.session.get_inputs()[0].name

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run(["probabilities"], {self.input_name: matrix})[0])

    def single_row_ms(self, matrix: np.ndarray, repeats: int) -> tuple[float, float]:
        one = np.ascontiguousarray(matrix[:1])
        return single_call_ms(lambda: self.predict(one), repeats)

    def batch_seconds(self, batch: np.ndarray) -> float:
        start = time.perf_counter()
        self.predict(batch)
        return time.perf_counter() - start


def single_threaded(pipeline: Any) -> Any:
    """Set n_jobs = 1 on every step (and calibrated estimator) that has it, in place: one core against one core."""
    for _, step in getattr(pipeline, "steps", []):
        for inner in (step, getattr(step, "estimator", None)):
            if inner is not None and "n_jobs" in inner.get_params(deep=False):
                inner.set_params(n_jobs=1)
        for calibrated in getattr(step, "calibrated_classifiers_", []):
            if "n_jobs" in calibrated.estimator.get_params(deep=False):
                calibrated.estimator.set_params(n_jobs=1)
    return pipeline


class NativeTimer:
    """The native pipeline's predict_proba on a DataFrame, BLAS/OpenMP pools held to one thread."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline

    def single_row_ms(self, frame: pd.DataFrame, repeats: int) -> tuple[float, float]:
        one = frame.iloc[:1]
        with threadpool_limits(1):
            return single_call_ms(lambda: self.pipeline.predict_proba(one), repeats)

    def batch_seconds(self, batch: pd.DataFrame) -> float:
        with threadpool_limits(1):
            start = time.perf_counter()
            self.pipeline.predict_proba(batch)
            return time.perf_counter() - start


def onnx_speed(onnx_bytes: bytes, matrix: np.ndarray, repeats: int = 200, batch_rows: int = 10_000) -> dict[str, float]:
    """Single-row latency (median and p95, ms) and batch throughput (rows/s) on one intra-op thread."""
    timer = OnnxTimer(onnx_bytes)
    median, p95 = timer.single_row_ms(matrix, repeats)
    seconds = timer.batch_seconds(tile_rows(matrix, batch_rows))
    return {
        "single_row_ms": median,
        "single_row_p95_ms": p95,
        "batch_rows": float(batch_rows),
        "batch_seconds": seconds,
        "batch_rows_per_s": batch_rows / seconds,
    }


def serving_speed(
    pipeline: Any,
    onnx_bytes: bytes,
    frame: pd.DataFrame,
    spec: FeatureSpec,
    *,
    batch_rows: int = 20_000,
    repeats: int = 100,
    rounds: int = 2,
) -> dict[str, Any]:
    """ONNX Runtime against the native pipeline (set to one thread, in place) on rows of `frame`: single-row
    medians, batch throughput (best of `rounds`, alternating), their ratios and whether the targets hold."""
    rows = frame[spec.names].reset_index(drop=True)
    matrix = to_serving_matrix(rows, spec)
    onnx, native = OnnxTimer(onnx_bytes), NativeTimer(single_threaded(pipeline))
    batch_matrix, batch_frame = tile_rows(matrix, batch_rows), tile_rows(rows, batch_rows)
    onnx_seconds = native_seconds = float("inf")
    for _ in range(rounds):  # alternate, so load from other processes hits both sides alike
        onnx_seconds = min(onnx_seconds, onnx.batch_seconds(batch_matrix))
        native_seconds = min(native_seconds, native.batch_seconds(batch_frame))
    onnx_single, _ = onnx.single_row_ms(matrix, repeats)
    native_single, _ = native.single_row_ms(rows, max(10, repeats // 10))
    report = {
        "batch_rows": batch_rows,
        "onnx_batch_rows_per_s": batch_rows / onnx_seconds,
        "native_batch_rows_per_s": batch_rows / native_seconds,
        "batch_speedup": native_seconds / onnx_seconds,
        "onnx_single_row_ms": onnx_single,
        "native_single_row_ms": native_single,
        "single_row_speedup": native_single / onnx_single,
    }
    report["targets_met"] = bool(
        report["batch_speedup"] >= MIN_BATCH_SPEEDUP
        and report["single_row_speedup"] >= MIN_SINGLE_ROW_SPEEDUP
        and onnx_single < MAX_SINGLE_ROW_MS
    )
    return report
