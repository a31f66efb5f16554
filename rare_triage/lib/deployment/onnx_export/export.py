"""Re-express a fitted training pipeline on the serving matrix and convert it to ONNX.

The training pipeline takes a DataFrame (categoricals as str). The export pipeline takes the float32
serving matrix (categoricals as integer codes, see `feature_spec`): its first step one-hot encodes the
codes in exactly the fitted encoder's column order, the other fitted steps are reused unchanged, so
the ONNX graph computes the same probabilities (checked by `parity.parity_report`).
"""

import hashlib
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
from skl2onnx import convert_sklearn, update_registered_converter
from skl2onnx.common.data_types import FloatTensorType
from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.frozen import FrozenEstimator
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from xgboost import XGBClassifier

from rare_triage.lib.deployment.model_bundle import ModelBundle
from rare_triage.lib.deployment.onnx_export.feature_spec import (
    SPEC_METADATA_KEY,
    UNKNOWN_CODE,
    ColumnSpec,
    FeatureSpec,
    is_missing,
)
from rare_triage.lib.deployment.onnx_export.isotonic import use_exact_isotonic

# convert_xgboost (onnxmltools) caps the main opset at 15; ai.onnx.ml 3 has the tree ensembles we need.
TARGET_OPSET = {"": 15, "ai.onnx.ml": 3}


class ExportError(ValueError):
    """The pipeline has a shape this exporter does not translate (the message says which step and why)."""


@dataclass(frozen=True)
class _Block:
    """One fitted ColumnTransformer entry resolved to input column names."""

    name: str
    transformer: Any
    columns: list[str]


def inference_steps(pipeline: Any) -> list[tuple[str, Any]]:
    """The steps that act at predict time: samplers (imbalanced-learn) and passthrough steps dropped."""
    steps = getattr(pipeline, "steps", None)
    if steps is None:
        raise ExportError(f"export: expected a fitted Pipeline, got {type(pipeline).__name__}")
    kept = [(n, s) for n, s in steps if s not in (None, "passthrough") and not hasattr(s, "fit_resample")]
    if not kept or not isinstance(kept[0][1], ColumnTransformer):
        raise ExportError("export: the pipeline's first step must be a fitted ColumnTransformer")
    if not hasattr(kept[-1][1], "predict_proba"):
        raise ExportError(f"export: the last step {kept[-1][0]!r} has no predict_proba")
    return kept


def _resolve_columns(selector: Any, names_in: Sequence[str], where: str) -> list[str]:
    if isinstance(selector, str):
        return [selector]
    if isinstance(selector, slice):
        return list(names_in[selector])
    values = list(np.asarray(selector).ravel()) if not isinstance(selector, list) else selector
    if all(isinstance(v, str) for v in values):
        return [str(v) for v in values]
    if all(isinstance(v, bool | np.bool_) for v in values):
        return [n for n, keep in zip(names_in, values, strict=True) if keep]
    if all(isinstance(v, int | np.integer) for v in values):
        return [names_in[int(v)] for v in values]
    raise ExportError(f"export: {where}: cannot resolve column selector {selector!r}")


def _blocks(ct: ColumnTransformer) -> list[_Block]:
    names_in = [str(n) for n in getattr(ct, "feature_names_in_", [])]
    if not names_in:
        raise ExportError("export: the ColumnTransformer was not fitted on a DataFrame with column names")
    blocks = []
    for name, transformer, selector in ct.transformers_:
        if isinstance(transformer, str) and transformer == "drop":
            continue
        columns = _resolve_columns(selector, names_in, f"transformer {name!r}")
        if columns:
            blocks.append(_Block(name, transformer, columns))
    return blocks


def _categorical_chain(block: _Block) -> tuple[SimpleImputer | None, OneHotEncoder]:
    steps = [s for _, s in block.transformer.steps] if isinstance(block.transformer, Pipeline) else [block.transformer]
    steps = [s for s in steps if s not in (None, "passthrough")]
    encoder, before = steps[-1], steps[:-1]
    if not isinstance(encoder, OneHotEncoder):
        raise ExportError(
            f"export: categorical block {block.name!r} must end with a OneHotEncoder, found {type(encoder).__name__}"
        )
    if len(before) > 1 or (before and not isinstance(before[0], SimpleImputer)):
        raise ExportError(f"export: categorical block {block.name!r} may only have a SimpleImputer before the encoder")
    if encoder.drop_idx_ is not None:
        raise ExportError(f"export: categorical block {block.name!r}: OneHotEncoder(drop=...) is not supported")
    if getattr(encoder, "_infrequent_enabled", False):
        raise ExportError(f"export: categorical block {block.name!r}: infrequent categories are not supported")
    imputer = before[0] if before else None
    if imputer is not None and imputer.add_indicator:
        raise ExportError(f"export: categorical block {block.name!r}: SimpleImputer(add_indicator=True) unsupported")
    return imputer, encoder


def _categorical_columns(block: _Block) -> list[ColumnSpec]:
    """Category lists in the fitted encoder's order, with the code a missing value maps to."""
    imputer, encoder = _categorical_chain(block)
    specs = []
    for j, column in enumerate(block.columns):
        fitted = list(encoder.categories_[j])
        strings = [c for c in fitted if not is_missing(c)]
        if not all(isinstance(c, str) for c in strings):
            raise ExportError(f"export: categorical column {column!r} has non-string categories {strings[:5]}")
        if len(strings) < len(fitted) and not is_missing(fitted[-1]):
            raise ExportError(f"export: categorical column {column!r}: a missing category must come last")
        missing_code = len(strings) if len(strings) < len(fitted) else UNKNOWN_CODE
        if imputer is not None:
            fill = imputer.statistics_[j]
            missing_code = strings.index(fill) if fill in strings else UNKNOWN_CODE
        specs.append(ColumnSpec(column, "categorical", tuple(strings), missing_code))
    return specs


def _classifier_labels(classifier: Any, class_labels: Sequence[str]) -> tuple[str, ...]:
    classes = list(classifier.classes_)
    if all(isinstance(c, int | np.integer) for c in classes):
        if any(not 0 <= int(c) < len(class_labels) for c in classes):
            raise ExportError(f"export: classifier classes {classes} are not indices into {list(class_labels)}")
        return tuple(class_labels[int(c)] for c in classes)
    return tuple(str(c) for c in classes)


def feature_spec_from_pipeline(
    pipeline: Any, feature_columns: Sequence[str], categorical_columns: Sequence[str], class_labels: Sequence[str]
) -> FeatureSpec:
    """The serving input contract of a fitted pipeline; matrix columns follow `feature_columns`.

    `class_labels` names the classes when the classifier was fitted on integer codes; the spec's labels
    follow the probability columns.
    """
    steps = inference_steps(pipeline)
    by_name: dict[str, ColumnSpec] = {}
    for block in _blocks(steps[0][1]):
        kinds = {c in categorical_columns for c in block.columns}
        if kinds == {True}:
            by_name.update({c.name: c for c in _categorical_columns(block)})
        elif kinds == {True, False}:
            raise ExportError(f"export: block {block.name!r} mixes categorical and numeric columns")
    unknown = [c for c in by_name if c not in feature_columns]
    if unknown:
        raise ExportError(f"export: the pipeline reads columns {unknown} that are not in feature_columns")
    columns = tuple(
        by_name.get(name, ColumnSpec(name, "categorical" if name in categorical_columns else "numeric"))
        for name in feature_columns
    )
    return FeatureSpec(columns=columns, class_labels=_classifier_labels(steps[-1][1], class_labels))


def _code_encoder(specs: Sequence[ColumnSpec]) -> OneHotEncoder:
    """A fitted OneHotEncoder on float codes 0..k-1 (plus a last slot for a missing category)."""
    categories = [np.arange(max(s.missing_code + 1, len(s.categories)), dtype=np.float64) for s in specs]
    encoder = OneHotEncoder(categories=categories, handle_unknown="ignore", sparse_output=False)
    return encoder.fit(np.zeros((1, len(specs))))


def build_export_pipeline(pipeline: Any, spec: FeatureSpec) -> Pipeline:
    """A scikit-learn Pipeline on the serving matrix computing the same probabilities as `pipeline`."""
    steps = inference_steps(pipeline)
    ct = steps[0][1]
    transformers: list[tuple[str, Any, list[int]]] = []
    for block in _blocks(ct):
        indices = [spec.index(c) for c in block.columns]
        kinds = {spec.columns[i].kind for i in indices}
        if kinds == {"categorical"}:
            fitted_specs = {c.name: c for c in _categorical_columns(block)}
            if any(fitted_specs[c] != spec.columns[i] for c, i in zip(block.columns, indices, strict=True)):
                raise ExportError(f"export: block {block.name!r} does not match the feature spec's categories")
            transformers.append((block.name, _code_encoder([spec.columns[i] for i in indices]), indices))
        elif block.transformer == "passthrough" or isinstance(block.transformer, BaseEstimator):
            transformers.append((block.name, block.transformer, indices))
        else:
            raise ExportError(f"export: block {block.name!r}: unsupported transformer {block.transformer!r}")
    # "remainder" is reserved by ColumnTransformer: the rebuilt one has an explicit block instead.
    transformers = [("remainder_columns" if n == "remainder" else n, t, i) for n, t, i in transformers]
    return Pipeline([("decode", _fitted_column_transformer(transformers, len(spec.columns))), *steps[1:]])


def _fitted_column_transformer(transformers: list[tuple[str, Any, list[int]]], n_features: int) -> ColumnTransformer:
    """A ColumnTransformer assembled from already fitted parts: fitted on a dummy row with the parts frozen."""
    frozen = [(n, t if t == "passthrough" else FrozenEstimator(t), cols) for n, t, cols in transformers]
    ct = ColumnTransformer(frozen, remainder="drop", sparse_threshold=0.0)
    with warnings.catch_warnings():  # the frozen parts were fitted on named columns, the dummy row has none
        warnings.filterwarnings("ignore", message="X does not have valid feature names", category=UserWarning)
        ct.fit(np.zeros((1, n_features)))
    ct.transformers_ = [
        (n, t.estimator if isinstance(t, FrozenEstimator) else t, cols) for n, t, cols in ct.transformers_
    ]
    return ct


def _register_xgboost_converter() -> None:
    """Teach skl2onnx to convert XGBClassifier inside a Pipeline (the converter lives in onnxmltools)."""
    update_registered_converter(
        XGBClassifier,
        "XGBoostXGBClassifier",
        calculate_linear_classifier_output_shapes,
        convert_xgboost,
        options={"nocl": [True, False], "zipmap": [True, False, "columns"]},
    )


GRAPH_NAME = "rare_triage"


def export_pipeline_to_onnx(pipeline: Any, spec: FeatureSpec) -> bytes:
    """Serialized ONNX model: input `features` float32 [N, F]; outputs `label` [N] and `probabilities` [N, C]."""
    _register_xgboost_converter()
    use_exact_isotonic()
    export = build_export_pipeline(pipeline, spec)
    classifier = export.steps[-1][1]
    onnx_model = convert_sklearn(
        export,
        initial_types=[(spec.input_name, FloatTensorType([None, len(spec.columns)]))],
        options={id(classifier): {"zipmap": False}},
        target_opset=TARGET_OPSET,
        name=GRAPH_NAME,  # skl2onnx names the graph with a random uuid otherwise: the same model, other bytes
    )
    outputs = [o.name for o in onnx_model.graph.output]
    if outputs != list(spec.outputs):
        raise ExportError(f"export: ONNX outputs are {outputs}, expected {list(spec.outputs)}")
    onnx_model.doc_string = "rare-triage triage model; input schema in metadata " + SPEC_METADATA_KEY
    entry = onnx_model.metadata_props.add()
    entry.key, entry.value = SPEC_METADATA_KEY, json.dumps(spec.to_dict(), sort_keys=True)
    return onnx_model.SerializeToString()


@dataclass(frozen=True)
class ExportedModel:
    """The ONNX bytes of a trained model and the input contract they expect."""

    onnx_bytes: bytes
    spec: FeatureSpec
    sha256: str

    @property
    def size_bytes(self) -> int:
        return len(self.onnx_bytes)


def export_trained_model(model: ModelBundle) -> ExportedModel:
    """Export `model.pipeline`; the matrix columns follow `model.feature_columns`."""
    spec = feature_spec_from_pipeline(
        model.pipeline, model.feature_columns, model.categorical_columns, model.class_labels
    )
    onnx_bytes = export_pipeline_to_onnx(model.pipeline, spec)
    return ExportedModel(onnx_bytes=onnx_bytes, spec=spec, sha256=hashlib.sha256(onnx_bytes).hexdigest())
