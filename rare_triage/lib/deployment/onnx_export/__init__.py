"""ONNX export of the training pipeline: the serving input contract, the export itself, parity and speed.

The names are loaded on first use (PEP 562): `feature_spec` alone needs neither skl2onnx, onnxmltools nor xgboost,
and whoever reads a manifest (the `status` command, the manifest module) imports only that.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rare_triage.lib.deployment.onnx_export.export import (
        ExportedModel,
        ExportError,
        build_export_pipeline,
        export_pipeline_to_onnx,
        export_trained_model,
        feature_spec_from_pipeline,
    )
    from rare_triage.lib.deployment.onnx_export.feature_spec import (
        UNKNOWN_CODE,
        ColumnSpec,
        FeatureSpec,
        records_to_serving_matrix,
        to_serving_matrix,
    )
    from rare_triage.lib.deployment.onnx_export.parity import (
        PROBABILITY_TOLERANCE,
        onnx_session,
        parity_report,
        spec_from_onnx,
    )

_MODULE_OF = {
    **dict.fromkeys(
        [
            "ExportedModel",
            "ExportError",
            "build_export_pipeline",
            "export_pipeline_to_onnx",
            "export_trained_model",
            "feature_spec_from_pipeline",
        ],
        "export",
    ),
    **dict.fromkeys(
        ["UNKNOWN_CODE", "ColumnSpec", "FeatureSpec", "records_to_serving_matrix", "to_serving_matrix"],
        "feature_spec",
    ),
    **dict.fromkeys(["PROBABILITY_TOLERANCE", "onnx_session", "parity_report", "spec_from_onnx"], "parity"),
}

__all__ = [
    "PROBABILITY_TOLERANCE",
    "UNKNOWN_CODE",
    "ColumnSpec",
    "ExportError",
    "ExportedModel",
    "FeatureSpec",
    "build_export_pipeline",
    "export_pipeline_to_onnx",
    "export_trained_model",
    "feature_spec_from_pipeline",
    "onnx_session",
    "parity_report",
    "records_to_serving_matrix",
    "spec_from_onnx",
    "to_serving_matrix",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
