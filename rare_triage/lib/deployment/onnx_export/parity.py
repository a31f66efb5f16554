"""Does the ONNX graph compute what the native pipeline computes? Checked on real rows, not assumed."""

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd

from rare_triage.lib.deployment.onnx_export.feature_spec import SPEC_METADATA_KEY, FeatureSpec, to_serving_matrix

PROBABILITY_TOLERANCE = 1e-4


def onnx_session(onnx_bytes: bytes, threads: int = 1) -> ort.InferenceSession:
    """An ONNX Runtime CPU session; one intra-op thread by default (what one serving worker gets)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(onnx_bytes, sess_options=options, providers=["CPUExecutionProvider"])


def spec_from_onnx(onnx_bytes: bytes) -> FeatureSpec:
    """The input schema embedded in the ONNX file's metadata by `export_pipeline_to_onnx`."""
    props = {p.key: p.value for p in onnx.load_model_from_string(onnx_bytes).metadata_props}
    if SPEC_METADATA_KEY not in props:
        raise ValueError(f"onnx model: metadata {SPEC_METADATA_KEY!r} is missing (not exported by rare_triage)")
    return FeatureSpec.from_dict(json.loads(props[SPEC_METADATA_KEY]))


def onnx_probabilities(session: ort.InferenceSession, matrix: np.ndarray) -> np.ndarray:
    """Class probabilities [N, C] for a float32 serving matrix."""
    name = session.get_inputs()[0].name
    return np.asarray(session.run(["probabilities"], {name: matrix})[0])


def parity_report(
    native_pipeline: Any,
    onnx_bytes: bytes,
    frame: pd.DataFrame,
    *,
    tolerance: float = PROBABILITY_TOLERANCE,
    spec: FeatureSpec | None = None,
    thresholds: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Native predict_proba on the frame vs ONNX Runtime on its serving matrix.

    `passed` means every row has the same predicted class (argmax) and no probability differs by more
    than `tolerance`. Mismatching row positions are listed (at most 10) for debugging. For each of
    `thresholds` naming a class, `threshold_flips` counts rows flagged by one side only (informative).
    """
    if len(frame) == 0:
        raise ValueError("parity: the frame has no rows; parity cannot be shown on nothing")
    spec = spec or spec_from_onnx(onnx_bytes)
    native = np.asarray(native_pipeline.predict_proba(frame[spec.names]), dtype=np.float64)
    exported = onnx_probabilities(onnx_session(onnx_bytes), to_serving_matrix(frame, spec)).astype(np.float64)
    if native.shape != exported.shape:
        raise ValueError(f"parity: native probabilities {native.shape} vs ONNX {exported.shape}")
    diff = np.abs(native - exported)
    same_class = native.argmax(axis=1) == exported.argmax(axis=1)
    bad_rows = np.flatnonzero(~same_class | (diff.max(axis=1) > tolerance))
    return {
        "n_rows": len(frame),
        "class_agreement": float(same_class.mean()),
        "n_class_mismatches": int((~same_class).sum()),
        "max_abs_diff": float(diff.max()),
        "tolerance": tolerance,
        "passed": bool(same_class.all() and diff.max() <= tolerance),
        "mismatch_rows": [int(i) for i in bad_rows[:10]],
        "threshold_flips": {
            label: int(((native[:, k] >= cut) != (exported[:, k] >= cut)).sum())
            for label, cut in (thresholds or {}).items()
            if label in spec.class_labels
            for k in [spec.class_labels.index(label)]
        },
    }
