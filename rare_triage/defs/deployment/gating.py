"""Publication gating: which blocking checks must have passed, on which materializations, before publishing."""

from typing import Any

import dagster as dg
from dagster_shared.check import CheckError

from rare_triage.defs.deployment.checks import onnx_parity, onnx_size
from rare_triage.defs.shared import keys as c

GATED_ASSETS = {c.TRIAGE_MODEL, c.MODEL_EVALUATION, c.EXTERNAL_VALIDATION, c.ONNX_MODEL}


def required_check_keys() -> set[dg.AssetCheckKey]:
    """The blocking checks a publication needs, named explicitly: training's gates and our ONNX checks."""
    return {*c.TRAINING_GATES, *onnx_parity.check_keys, *onnx_size.check_keys}


def _asset_graph(context: dg.AssetExecutionContext) -> Any:
    """The code location's whole graph (every check); a bare `materialize()` only knows the run's own."""
    try:
        return context.repository_def.asset_graph
    except CheckError:
        return context.job_def.asset_layer.asset_graph


def blocking_check_outcomes(context: dg.AssetExecutionContext, asset_keys: set[dg.AssetKey]) -> dict[str, bool]:
    """Our own checks plus every blocking check on `asset_keys`: did the latest evaluation pass, on the
    latest materialization?"""
    graph = _asset_graph(context)
    keys = required_check_keys() | {
        key for key in graph.get_check_keys_for_assets(asset_keys) if graph.get_check_spec(key).blocking
    }
    outcomes: dict[str, bool] = {}
    for key in sorted(keys, key=lambda k: k.to_user_string()):
        record = context.instance.get_latest_asset_check_evaluation_record(key)
        evaluation = record.event.asset_check_evaluation if record is not None and record.event else None
        latest = context.instance.fetch_materializations(key.asset_key, limit=1).records
        target = evaluation.target_materialization_data if evaluation is not None else None
        current = bool(latest) and target is not None and target.storage_id == latest[0].storage_id
        outcomes[key.to_user_string()] = bool(evaluation is not None and evaluation.passed and current)
    return outcomes


def exported_from_current_model(context: dg.AssetExecutionContext) -> bool:
    """Was the latest onnx_model exported from the latest triage_model (not from an older one)?"""
    onnx_records = context.instance.fetch_materializations(c.ONNX_MODEL, limit=1).records
    model_records = context.instance.fetch_materializations(c.TRIAGE_MODEL, limit=1).records
    if not onnx_records or not model_records or onnx_records[0].asset_materialization is None:
        return False
    tags = onnx_records[0].asset_materialization.tags or {}
    return tags.get(f"dagster/input_event_pointer/{c.TRIAGE_MODEL.to_user_string()}") == str(
        model_records[0].storage_id
    )
