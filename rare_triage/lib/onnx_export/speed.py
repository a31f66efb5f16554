"""Latency of the ONNX model under ONNX Runtime (one thread) and of the native pipeline, measured alike."""

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from rare_triage.lib.onnx_export.feature_spec import FeatureSpec, to_serving_matrix
from rare_triage.lib.onnx_export.parity import onnx_session


def _median_ms(call: Callable[[], object], repeats: int, warmup: int = 5) -> tuple[float, float]:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000.0)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.95 * len(times)))]


def _tile(rows: Any, n: int) -> Any:
    """`n` rows cycling through `rows` (a frame or an array)."""
    index = np.arange(n) % len(rows)
    return rows.iloc[index].reset_index(drop=True) if isinstance(rows, pd.DataFrame) else rows[index]


def onnx_speed(onnx_bytes: bytes, matrix: np.ndarray, repeats: int = 200, batch_rows: int = 10_000) -> dict[str, float]:
    """Single-row latency (median and p95, ms) and batch throughput (rows/s) on one intra-op thread."""
    if len(matrix) == 0:
        raise ValueError("speed: no rows to time")
    session = onnx_session(onnx_bytes, threads=1)
    name = session.get_inputs()[0].name
    one = np.ascontiguousarray(matrix[:1])
    median, p95 = _median_ms(lambda: session.run(["probabilities"], {name: one}), repeats)
    batch = np.ascontiguousarray(_tile(matrix, batch_rows))
    start = time.perf_counter()
    session.run(["probabilities"], {name: batch})
    seconds = time.perf_counter() - start
    return {
        "single_row_ms": median,
        "single_row_p95_ms": p95,
        "batch_rows": float(batch_rows),
        "batch_seconds": seconds,
        "batch_rows_per_s": batch_rows / seconds,
    }


def native_speed(pipeline: Any, frame: pd.DataFrame, repeats: int = 50, batch_rows: int = 10_000) -> dict[str, float]:
    """The same figures for the native pipeline's predict_proba on a DataFrame, BLAS/OpenMP held to one thread."""
    if len(frame) == 0:
        raise ValueError("speed: no rows to time")
    one = frame.iloc[:1]
    batch = _tile(frame, batch_rows)
    with threadpool_limits(1):
        median, p95 = _median_ms(lambda: pipeline.predict_proba(one), repeats)
        start = time.perf_counter()
        pipeline.predict_proba(batch)
        seconds = time.perf_counter() - start
    return {
        "single_row_ms": median,
        "single_row_p95_ms": p95,
        "batch_rows": float(batch_rows),
        "batch_seconds": seconds,
        "batch_rows_per_s": batch_rows / seconds,
    }


def serving_matrix_for_timing(frame: pd.DataFrame, spec: FeatureSpec) -> np.ndarray:
    """The serving matrix of `frame` (kept apart so encoding time is not counted as model time)."""
    return to_serving_matrix(frame, spec)
