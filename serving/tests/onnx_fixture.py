"""Tiny ONNX models for the tests, written as protobuf bytes by hand: the `onnx` package is no serving dependency.

`linear_softmax_model` (a multinomial logistic regression) is the graph the platform's exports look like from
outside: one float32 input `features` [N, F] where NaN means missing, outputs `label` (int64 [N]) and
`probabilities` (float32 [N, C]); inside, missing values become 0, then a linear layer and a softmax. Variants
break what the loader's smoke prediction checks: `softmax=False` gives raw scores (rows do not sum to 1),
`impute=False` lets NaN through.
`tree_ensemble_model` is the other family the platform exports (XGBoost, random forest): one ai.onnx.ml
TreeEnsembleClassifier, the outputs named as the platform names them.
Field numbers are those of onnx.proto (ModelProto, GraphProto, NodeProto, TensorProto, ValueInfoProto).
"""

import struct
from collections.abc import Sequence

_FLOAT, _INT64 = 1, 7  # TensorProto.DataType
_ATTRIBUTE_INT, _ATTRIBUTE_STRING, _ATTRIBUTE_FLOATS, _ATTRIBUTE_INTS, _ATTRIBUTE_STRINGS = 2, 3, 6, 7, 8
IR_VERSION, OPSET, ML_OPSET = 8, 17, 3
ML_DOMAIN = "ai.onnx.ml"


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64 as two's complement, ten bytes
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(field: int, wire_type: int) -> bytes:
    return _varint(field << 3 | wire_type)


def _int(field: int, value: int) -> bytes:
    return _key(field, 0) + _varint(value)


def _bytes(field: int, value: bytes) -> bytes:
    return _key(field, 2) + _varint(len(value)) + value


def _str(field: int, value: str) -> bytes:
    return _bytes(field, value.encode("utf-8"))


def _tensor_type(elem_type: int, dims: Sequence[int | str]) -> bytes:
    shape = b"".join(
        _bytes(1, _str(2, dim) if isinstance(dim, str) else _int(1, dim)) for dim in dims
    )  # TensorShapeProto.dim: Dimension{dim_value=1 | dim_param=2}
    return _bytes(1, _int(1, elem_type) + _bytes(2, shape))  # TypeProto.tensor_type{elem_type, shape}


def _value_info(name: str, elem_type: int, dims: Sequence[int | str]) -> bytes:
    return _str(1, name) + _bytes(2, _tensor_type(elem_type, dims))


def _float_tensor(name: str, dims: Sequence[int], values: Sequence[float]) -> bytes:
    dims_bytes = b"".join(_int(1, dim) for dim in dims)
    raw = struct.pack(f"<{len(values)}f", *values)
    return dims_bytes + _int(2, _FLOAT) + _str(8, name) + _bytes(9, raw)


def _node(op_type: str, inputs: Sequence[str], outputs: Sequence[str], **ints: int) -> bytes:
    attributes = b"".join(
        _bytes(5, _str(1, name) + _int(3, value) + _int(20, _ATTRIBUTE_INT)) for name, value in ints.items()
    )
    return (
        b"".join(_str(1, name) for name in inputs)
        + b"".join(_str(2, name) for name in outputs)
        + _str(3, f"{op_type.lower()}_{outputs[0]}")
        + _str(4, op_type)
        + attributes
    )


def weights(n_features: int, n_classes: int, seed: int) -> tuple[list[float], list[float]]:
    """Deterministic small weights [F*C] (row-major) and biases [C] for `seed`."""
    matrix = [((i * 7 + c * 13 + seed) % 11 - 5) / 10 for i in range(n_features) for c in range(n_classes)]
    bias = [((c * 5 + seed) % 7 - 3) / 10 for c in range(n_classes)]
    return matrix, bias


def linear_softmax_model(
    n_features: int,
    n_classes: int,
    *,
    seed: int = 0,
    input_name: str = "features",
    softmax: bool = True,
    impute: bool = True,
) -> bytes:
    """Serialized ONNX ModelProto of softmax(W x + b) over the features with NaN read as 0."""
    matrix, bias = weights(n_features, n_classes, seed)
    clean = "clean" if impute else input_name
    nodes = []
    if impute:
        nodes += [_node("IsNaN", [input_name], ["missing"]), _node("Where", ["missing", "zero", input_name], [clean])]
    scores = "scores" if softmax else "probabilities"
    nodes += [_node("MatMul", [clean, "W"], ["product"]), _node("Add", ["product", "b"], [scores])]
    if softmax:
        nodes.append(_node("Softmax", ["scores"], ["probabilities"], axis=1))
    nodes.append(_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0))
    initializers = [_float_tensor("W", [n_features, n_classes], matrix), _float_tensor("b", [n_classes], bias)]
    if impute:
        initializers.append(_float_tensor("zero", [], [0.0]))
    graph = (
        b"".join(_bytes(1, node) for node in nodes)
        + _str(2, "rare_triage_test_model")
        + b"".join(_bytes(5, tensor) for tensor in initializers)
        + _bytes(11, _value_info(input_name, _FLOAT, ["N", n_features]))
        + _bytes(12, _value_info("label", _INT64, ["N"]))
        + _bytes(12, _value_info("probabilities", _FLOAT, ["N", n_classes]))
    )
    opset = _str(1, "") + _int(2, OPSET)
    return _int(1, IR_VERSION) + _str(2, "serving-tests") + _bytes(7, graph) + _bytes(8, opset)


def _attribute(name: str, value: str | Sequence[int] | Sequence[float] | Sequence[str]) -> bytes:
    """AttributeProto of a string, or of a list of ints, floats or strings (repeated fields, unpacked)."""
    if isinstance(value, str):
        return _str(1, name) + _bytes(4, value.encode()) + _int(20, _ATTRIBUTE_STRING)
    if all(isinstance(item, str) for item in value):
        return _str(1, name) + b"".join(_bytes(9, str(item).encode()) for item in value) + _int(20, _ATTRIBUTE_STRINGS)
    if all(isinstance(item, int) for item in value):
        return _str(1, name) + b"".join(_int(8, int(item)) for item in value) + _int(20, _ATTRIBUTE_INTS)
    floats = b"".join(_key(7, 5) + struct.pack("<f", float(item)) for item in value)
    return _str(1, name) + floats + _int(20, _ATTRIBUTE_FLOATS)


def tree_ensemble_model(n_features: int, n_classes: int, *, feature: int = 0, split: float = 1.5) -> bytes:
    """Serialized ONNX ModelProto of one tree: `features[:, feature] <= split` (or missing) -> leaf 1, else leaf 2,
    each leaf with its own class scores, softmax over them."""
    leaves = {1: [(c % 3) / 2 for c in range(n_classes)], 2: [((c + 1) % 3) / 2 for c in range(n_classes)]}
    attributes: dict[str, str | list[int] | list[float] | list[str]] = {
        "nodes_treeids": [0, 0, 0],
        "nodes_nodeids": [0, 1, 2],
        "nodes_featureids": [feature, 0, 0],
        "nodes_modes": ["BRANCH_LEQ", "LEAF", "LEAF"],
        "nodes_values": [split, 0.0, 0.0],
        "nodes_truenodeids": [1, 0, 0],
        "nodes_falsenodeids": [2, 0, 0],
        "nodes_missing_value_tracks_true": [1, 0, 0],
        "class_treeids": [0] * (2 * n_classes),
        "class_nodeids": [leaf for leaf in leaves for _ in range(n_classes)],
        "class_ids": [c for _ in leaves for c in range(n_classes)],
        "class_weights": [weight for scores in leaves.values() for weight in scores],
        "classlabels_int64s": list(range(n_classes)),
        "post_transform": "SOFTMAX",
    }
    node = (
        _str(1, "features")
        + _str(2, "label")
        + _str(2, "probabilities")
        + _str(3, "tree_ensemble")
        + _str(4, "TreeEnsembleClassifier")
        + b"".join(_bytes(5, _attribute(name, value)) for name, value in attributes.items())
        + _str(7, ML_DOMAIN)
    )
    graph = (
        _bytes(1, node)
        + _str(2, "rare_triage_test_trees")
        + _bytes(11, _value_info("features", _FLOAT, ["N", n_features]))
        + _bytes(12, _value_info("label", _INT64, ["N"]))
        + _bytes(12, _value_info("probabilities", _FLOAT, ["N", n_classes]))
    )
    opsets = _bytes(8, _str(1, "") + _int(2, OPSET)) + _bytes(8, _str(1, ML_DOMAIN) + _int(2, ML_OPSET))
    return _int(1, IR_VERSION) + _str(2, "serving-tests") + _bytes(7, graph) + opsets
