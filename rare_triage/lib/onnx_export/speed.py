"""Latency of the ONNX model under ONNX Runtime (one thread) and of the native pipeline, measured alike."""

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from rare_triage.lib.onnx_export.parity import onnx_session


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
