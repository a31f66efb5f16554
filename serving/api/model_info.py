"""GET /v1/model: the served version, its policy, metrics and provenance, and the versions refused."""

from typing import Any

from litestar import Request, Router, get
from litestar.exceptions import ServiceUnavailableException
from litestar.openapi.datastructures import ResponseSpec

from serving.api.health import refused_versions
from serving.api.runtime import runtime_of
from serving.schemas import ErrorBody, ModelInfo


@get(
    "/model",
    summary="The served model",
    description=(
        "Version, source (bucket or local cache), load time, the manifest's metrics, thresholds and needs-review "
        "policy, training partitions, MLflow run id and model version, Dagster run id, and the versions refused "
        "with their reasons. 503 while no model is loaded (refused versions are then listed by /ready)."
    ),
    tags=["operations"],
    responses={503: ResponseSpec(ErrorBody, description="No model loaded")},
)
async def model_info(request: Request) -> ModelInfo:
    runtime = runtime_of(request)
    status = runtime.holder.status
    model = status.model
    if model is None:
        raise ServiceUnavailableException(detail=runtime.not_ready_reason())
    described: dict[str, Any] = model.describe()
    return ModelInfo(
        version=model.version,
        env=model.env,
        model_name=described["model_name"],
        source=model.source,
        served_from_cache=model.source == "cache",
        bucket=runtime.settings.bucket_uri,
        cache_dir=str(runtime.settings.cache_dir),
        loaded_at=described["loaded_at"],
        manifest_sha256=described["manifest_sha256"],
        onnx_sha256=described["onnx_sha256"],
        n_features=model.n_features,
        model_family=model.family,
        class_labels=described["class_labels"],
        thresholds=described["thresholds"],
        needs_review=described["needs_review"],
        metrics=described["metrics"],
        hpo_release=described["hpo_release"],
        training_partitions=described["training_partitions"],
        mlflow_run_id=described["mlflow_run_id"],
        mlflow_model_version=described["mlflow_model_version"],
        dagster_run_id=described["dagster_run_id"],
        code_revision=described["code_revision"],
        created_at=described["created_at"],
        swaps_total=status.swaps_total,
        refusals_total=status.refusals_total,
        refused=refused_versions(status),
        last_check_at=status.last_check_at.isoformat() if status.last_check_at else None,
        last_check_error=status.last_error,
    )


router = Router(path="/v1", route_handlers=[model_info])
