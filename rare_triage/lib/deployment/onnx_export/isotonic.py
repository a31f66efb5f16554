"""Exact isotonic calibration in ONNX.

skl2onnx 1.20 converts the isotonic calibrator of CalibratedClassifierCV as a nearest-threshold lookup,
while scikit-learn interpolates linearly between thresholds (np.interp): measured 0.03 off in probability
on our models. This replaces that one step of skl2onnx's converter with the same linear interpolation.
"""

from typing import Any

import numpy as np
import skl2onnx.operator_converters.calibrated_classifier_cv as skl2onnx_calibration
from onnx import TensorProto

NEAREST_THRESHOLD_ISOTONIC = skl2onnx_calibration._transform_isotonic  # skl2onnx's own step, kept for tests


def _name(scope: Any, base: str) -> str:
    return str(scope.get_unique_variable_name(base))


def _constant(scope: Any, container: Any, base: str, proto_type: int, values: np.ndarray) -> str:
    name = _name(scope, base)
    container.add_initializer(name, proto_type, list(values.shape), values.ravel().tolist())
    return name


def _node(scope: Any, container: Any, op: str, inputs: list[str], base: str, **attrs: Any) -> str:
    output = _name(scope, base)
    container.add_node(op, inputs, output, name=scope.get_unique_operator_name(op), **attrs)
    return output


def transform_isotonic_exact(  # noqa: PLR0917 - skl2onnx calls it with this positional signature
    scope: Any, container: Any, model: Any, T: str, k: int, dtype: Any, proto_type: int
) -> str:
    """Calibrated column k as an [N, 1] tensor: clip, find the segment, interpolate (what np.interp does)."""
    calibrator = model.calibrators[k]
    if calibrator.out_of_bounds != "clip":
        raise NotImplementedError(f"isotonic calibration: out_of_bounds={calibrator.out_of_bounds!r} (only 'clip')")
    if proto_type not in (TensorProto.FLOAT, TensorProto.DOUBLE):
        proto_type = TensorProto.FLOAT
    x = np.asarray(calibrator.X_thresholds_, dtype=dtype)
    y = np.asarray(calibrator.y_thresholds_, dtype=dtype)
    column = _node(
        scope,
        container,
        "Reshape",
        [T, _constant(scope, container, "shape", TensorProto.INT64, np.array([-1, 1]))],
        "iso_t",
    )
    if len(x) == 1:
        zero = _node(
            scope,
            container,
            "Mul",
            [column, _constant(scope, container, "zero", proto_type, np.zeros(1, dtype))],
            "iso_zero",
        )
        return _node(scope, container, "Add", [zero, _constant(scope, container, "y0", proto_type, y[:1])], "iso_const")
    low = _constant(scope, container, "x_min", proto_type, x[:1].reshape(()))
    high = _constant(scope, container, "x_max", proto_type, x[-1:].reshape(()))
    clipped = _node(scope, container, "Clip", [column, low, high], "iso_clipped")
    inner = _constant(scope, container, "x_inner", proto_type, x[1:-1].reshape(1, -1))
    # segment index = number of interior thresholds <= t, in [0, n - 2]
    above = _node(
        scope,
        container,
        "Cast",
        [_node(scope, container, "LessOrEqual", [inner, clipped], "iso_le")],
        "iso_le_f",
        to=proto_type,
    )
    axis = _constant(scope, container, "axis", TensorProto.INT64, np.array([1]))
    count = _node(scope, container, "ReduceSum", [above, axis], "iso_count", keepdims=1)
    index = _node(scope, container, "Cast", [count], "iso_index", to=TensorProto.INT64)
    index_next = _node(
        scope,
        container,
        "Add",
        [index, _constant(scope, container, "one", TensorProto.INT64, np.array([1]))],
        "iso_next",
    )
    xs = _constant(scope, container, "x_thresholds", proto_type, x)
    ys = _constant(scope, container, "y_thresholds", proto_type, y)
    x0, x1 = (_node(scope, container, "Gather", [xs, i], "iso_x", axis=0) for i in (index, index_next))
    y0, y1 = (_node(scope, container, "Gather", [ys, i], "iso_y", axis=0) for i in (index, index_next))
    slope = _node(
        scope,
        container,
        "Div",
        [_node(scope, container, "Sub", [y1, y0], "iso_dy"), _node(scope, container, "Sub", [x1, x0], "iso_dx")],
        "iso_slope",
    )
    offset = _node(
        scope, container, "Mul", [_node(scope, container, "Sub", [clipped, x0], "iso_off"), slope], "iso_rise"
    )
    return _node(scope, container, "Add", [y0, offset], "iso_value")


def use_exact_isotonic() -> None:
    """Make skl2onnx's CalibratedClassifierCV converter interpolate like scikit-learn (idempotent)."""
    skl2onnx_calibration._transform_isotonic = transform_isotonic_exact
