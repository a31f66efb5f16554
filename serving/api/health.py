"""GET /health (the process answers) and GET /ready (a model is loaded: predictions can be served)."""

import msgspec
from litestar import Request, Response, Router, get
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from serving.api.runtime import Runtime, runtime_of
from serving.model_store import HolderStatus
from serving.schemas import Health, Readiness, RefusedVersion


def refused_versions(status: HolderStatus) -> list[RefusedVersion]:
    return [
        RefusedVersion(version=r.version, manifest_sha256=r.manifest_sha256, reason=r.reason, at=r.at.isoformat())
        for r in status.refused
    ]


def readiness(runtime: Runtime) -> Readiness:
    status = runtime.holder.status
    model = status.model
    if model is None:
        state = Readiness(ready=False, detail=runtime.not_ready_reason())
    elif model.source == "cache":
        state = Readiness(
            ready=True,
            detail=(
                f"serving version {model.version} from the local cache {runtime.settings.cache_dir}: the bucket "
                f"{runtime.settings.bucket_uri} could not be read at start-up, so the version last verified there "
                "is served"
            ),
            served_from_cache=True,
        )
    else:
        detail = f"serving version {model.version} from the bucket {runtime.settings.bucket_uri}"
        state = Readiness(ready=True, detail=detail)
    if model is not None:
        state = msgspec.structs.replace(
            state, model_version=model.version, source=model.source, loaded_at=model.loaded_at.isoformat()
        )
    return msgspec.structs.replace(
        state,
        last_check_at=status.last_check_at.isoformat() if status.last_check_at else None,
        last_check_error=status.last_error,
        refused=refused_versions(status),
    )


@get(
    "/health",
    summary="Liveness",
    description="Always 200 while the process answers, with or without a model (readiness is /ready).",
    tags=["operations"],
)
async def health() -> Health:
    return Health()


@get(
    "/ready",
    summary="Readiness",
    description=(
        "200 with the served version and where it was read (the bucket, or the local cache when the bucket could "
        "not be read at start-up); 503 with the reason while no model is loaded (no pointer, version refused, "
        "bucket unreachable and nothing cached)."
    ),
    tags=["operations"],
    responses={
        HTTP_200_OK: ResponseSpec(Readiness, description="A model is loaded"),
        HTTP_503_SERVICE_UNAVAILABLE: ResponseSpec(Readiness, description="No model loaded: `detail` says why"),
    },
)
async def ready(request: Request) -> Response[Readiness]:
    state = readiness(runtime_of(request))
    return Response(state, status_code=HTTP_200_OK if state.ready else HTTP_503_SERVICE_UNAVAILABLE)


router = Router(path="/", route_handlers=[health, ready])
