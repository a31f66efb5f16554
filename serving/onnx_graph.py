"""Which model family an ONNX graph is, read from its operators (serving has no `onnx` package: the few protobuf
fields needed are read by hand, field numbers of onnx.proto).

No manifest field names the family (`metrics`, `onnx`, the provenance fields: none does; the MLflow run is out of
serving's reach), but the graph says it: the platform's export (skl2onnx, onnxmltools) turns XGBoost and random
forests into `TreeEnsemble*` operators and a logistic regression into `LinearClassifier` (a hand-written
softmax regression into MatMul / Gemm), calibrators and imputers around them being elementwise.
"""

from typing import Final, Literal

ModelFamily = Literal["linear", "tree_ensemble", "other"]

TREE_OPERATORS: Final = frozenset({"TreeEnsembleClassifier", "TreeEnsembleRegressor", "TreeEnsemble"})  # ai.onnx.ml
LINEAR_OPERATORS: Final = frozenset({"LinearClassifier", "LinearRegressor", "MatMul", "Gemm"})
_MODEL_GRAPH, _GRAPH_NODE, _NODE_OP_TYPE = 7, 1, 4  # ModelProto.graph, GraphProto.node, NodeProto.op_type


def _fields(data: memoryview) -> list[tuple[int, memoryview | None]]:
    """(field number, bytes of a length-delimited value or None) of one protobuf message, in order."""
    out: list[tuple[int, memoryview | None]] = []
    position, end = 0, len(data)
    while position < end:
        key, position = _varint(data, position)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            _, position = _varint(data, position)
            out.append((number, None))
        elif wire_type == 1:
            position += 8
            out.append((number, None))
        elif wire_type == 5:
            position += 4
            out.append((number, None))
        elif wire_type == 2:
            length, position = _varint(data, position)
            if position + length > end:
                raise ValueError("ONNX protobuf: a field runs past the end of its message")
            out.append((number, data[position : position + length]))
            position += length
        else:
            raise ValueError(f"ONNX protobuf: unsupported wire type {wire_type}")
    return out


def _varint(data: memoryview, position: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if position >= len(data):
            raise ValueError("ONNX protobuf: truncated varint")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7


def operator_types(onnx_bytes: bytes) -> frozenset[str]:
    """The op_type of every node of the main graph; ValueError when the bytes are not a protobuf message."""
    ops: set[str] = set()
    for number, graph in _fields(memoryview(onnx_bytes)):
        if number != _MODEL_GRAPH or graph is None:
            continue
        for node_number, node in _fields(graph):
            if node_number != _GRAPH_NODE or node is None:
                continue
            for field_number, value in _fields(node):
                if field_number == _NODE_OP_TYPE and value is not None:
                    ops.add(bytes(value).decode("utf-8", errors="replace"))
    return frozenset(ops)


def model_family(onnx_bytes: bytes) -> ModelFamily:
    """`tree_ensemble` when any tree-ensemble operator is in the graph, else `linear` when a linear layer is, else
    `other`."""
    ops = operator_types(onnx_bytes)
    if ops & TREE_OPERATORS:
        return "tree_ensemble"
    if ops & LINEAR_OPERATORS:
        return "linear"
    return "other"
