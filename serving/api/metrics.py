"""GET /metrics: the app's Prometheus registry in the text exposition format."""

from litestar import Request, Response, Router, get

from serving.api.runtime import runtime_of


@get(
    "/metrics",
    summary="Prometheus metrics",
    description=(
        "Requests and latency by route and status, predictions by class, orphan flags, needs-review, the served "
        "version, loads and refusals, and the errors the service logged."
    ),
    tags=["operations"],
    media_type="text/plain",
)
async def metrics(request: Request) -> Response[bytes]:
    body, content_type = runtime_of(request).metrics.exposition()
    return Response(body, media_type=content_type)


router = Router(path="/", route_handlers=[metrics])
