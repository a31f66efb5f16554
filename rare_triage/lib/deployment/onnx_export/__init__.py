"""ONNX export of the training pipeline: the serving input contract, the export itself, parity and speed."""

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
