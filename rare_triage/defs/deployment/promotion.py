"""Promotion of the dev model to prod behind the gate, and rollback of any env to an earlier version."""

from typing import Any

import dagster as dg

from rare_triage.defs.deployment.registry import champion_setter, registry_hashes
from rare_triage.defs.shared import keys as c
from rare_triage.defs.shared.bucket import ModelBucketResource
from rare_triage.defs.shared.mlflow import MlflowTracking
from rare_triage.lib.deployment.bucket import BucketError
from rare_triage.lib.deployment.promotion import PROD, promote, rollback
from rare_triage.lib.deployment.publication import IntegrityError

__all__ = ["champion_setter", "promote_to_prod_job", "rollback_job"]

DEFAULT_TOLERANCE = 0.01  # the CLI's default too


class PromoteConfig(dg.Config):
    """How much worse (absolute) the challenger's orphan recall and external share may be than the champion's."""

    tolerance: float = DEFAULT_TOLERANCE


class RollbackConfig(dg.Config):
    """The env to move and the earlier published version it should serve."""

    env: str = PROD
    version: str


def _observe(context: dg.OpExecutionContext, env: str, version: str, **metadata: Any) -> None:
    """Record the pointer move on published_model's timeline in the UI."""
    context.log_event(
        dg.AssetObservation(asset_key=c.PUBLISHED_MODEL, metadata={"env": env, f"{env}_version": version, **metadata})
    )


@dg.op(description="Gate: challenger (dev) vs champion (prod); if it passes, prod -> dev's version, alias champion.")
def promote_dev_to_prod(
    context: dg.OpExecutionContext,
    config: PromoteConfig,
    bucket: ModelBucketResource,
    mlflow: MlflowTracking,
) -> dict[str, Any]:
    try:
        result = promote(
            bucket.get_bucket(), config.tolerance, set_alias=champion_setter(mlflow), registry=registry_hashes(mlflow)
        )
    except (IntegrityError, BucketError) as exc:
        raise dg.Failure(description=f"promotion refused: {exc}") from exc
    for reason in result.gate.reasons:
        context.log.info(reason)
    summary = {
        "promoted": result.promoted,
        "challenger": result.gate.challenger,
        "champion_before": result.gate.champion,
        "prod_version": result.pointer.version if result.pointer else None,
        "reasons": result.gate.reasons,
        "alias_set": result.alias_set,
    }
    if result.promoted:
        _observe(context, PROD, result.gate.challenger, previous=str(result.gate.champion), tolerance=config.tolerance)
    elif result.gate.champion != result.gate.challenger:
        raise dg.Failure(
            description="promotion gate refused the challenger: " + "; ".join(result.gate.reasons),
            metadata={"gate": dg.MetadataValue.json(summary)},
        )
    return summary


@dg.op(description="Point an env (prod by default) back at an earlier published version, verified first.")
def rollback_env(
    context: dg.OpExecutionContext,
    config: RollbackConfig,
    bucket: ModelBucketResource,
    mlflow: MlflowTracking,
) -> dict[str, Any]:
    try:
        pointer = rollback(
            bucket.get_bucket(),
            config.env,
            config.version,
            set_alias=champion_setter(mlflow),
            registry=registry_hashes(mlflow),
        )
    except (IntegrityError, BucketError, ValueError) as exc:
        raise dg.Failure(description=f"rollback of {config.env} to {config.version} refused: {exc}") from exc
    context.log.info(f"{config.env}: {pointer.previous_version} -> {pointer.version}")
    _observe(context, config.env, pointer.version, previous=str(pointer.previous_version), rollback=True)
    return {"env": config.env, "version": pointer.version, "previous_version": pointer.previous_version}


@dg.job(name=c.PROMOTE_JOB, description="Promote the dev model to prod if the gate passes (config: tolerance).")
def promote_to_prod_job() -> None:
    promote_dev_to_prod()


@dg.job(name=c.ROLLBACK_JOB, description="Point an env back at an earlier published version (config: env, version).")
def rollback_job() -> None:
    rollback_env()
