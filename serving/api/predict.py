"""POST /v1/predict (one encounter; concurrent ones share a model call, see `scoring.score_one`) and
POST /v1/predict/batch (several, one model call for all of them)."""

from collections.abc import Iterable
from typing import Annotated, Any, Final

import msgspec
from litestar import Litestar, Request, Response, Router, post
from litestar.background_tasks import BackgroundTask, BackgroundTasks
from litestar.datastructures import Cookie, MutableScopeHeaders, ResponseHeader
from litestar.enums import MediaType
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import Body
from litestar.response.base import ASGIResponse
from litestar.status_codes import HTTP_200_OK, HTTP_413_REQUEST_ENTITY_TOO_LARGE
from litestar.types import TypeEncodersMap

from serving.api.auth import SECURITY_SCHEME, require_api_key
from serving.api.request_id import new_request_id
from serving.api.runtime import runtime_of
from serving.api.scoring import score, score_one
from serving.contract import Encounter
from serving.errors import FieldError
from serving.schemas import (
    ENCOUNTER_EXAMPLE,
    BatchPrediction,
    BatchRequest,
    ErrorBody,
    Prediction,
)

REQUEST_ID_HEADER: Final = "X-Request-ID"


def _error(description: str, detail: str, field: str | None = None) -> ResponseSpec:
    return ResponseSpec(
        data_container=ErrorBody,
        description=description,
        examples=[Example(summary=description, value={"detail": detail, "field": field})],
    )


ERRORS: Final = {
    400: _error("The body is not JSON, or is empty", "the request body is not JSON: JSON is malformed", "$"),
    401: _error("API key missing or wrong (only when the service has one)", "a valid X-API-Key header is required"),
    413: _error("Body or batch over the service's limits", "request body larger than 1048576 bytes", "$"),
    422: _error(
        "A field the contract refuses: wrong type, out of range, unknown field, malformed HPO id",
        "Expected `float` <= 120.0 - at `$.age_years`",
        "$.age_years",
    ),
    503: _error("No model is loaded, or the prediction log cannot be written", "no model loaded for env dev: ..."),
}
REQUEST_ID = ResponseHeader(
    name=REQUEST_ID_HEADER, description="the prediction's request id (uuid4)", documentation_only=True
)
ENCOUNTER_BODY: Final[Any] = Body(
    title="Encounter",
    description=(
        "One encounter, coded. Every field is optional; a missing one is encoded as the platform encodes absence. "
        "Unknown fields are refused; HPO ids outside the model's release are reported under `hpo.unknown`."
    ),
    examples=[Example(summary="A febrile child with seizures", value=ENCOUNTER_EXAMPLE)],
)
BATCH_BODY: Final[Any] = Body(
    title="Batch of encounters",
    description="Up to SERVING_MAX_BATCH encounters (256 by default), scored together in one model call.",
    examples=[
        Example(summary="Two encounters", value={"encounters": [ENCOUNTER_EXAMPLE, {"sex": "M", "age_years": 54}]})
    ],
)


_ENCODE: Final = msgspec.json.Encoder().encode  # what Litestar's JSON encoding makes of a Prediction, byte for byte
_REQUEST_ID_NAME: Final = REQUEST_ID_HEADER.lower().encode("latin-1")
_JSON: Final = MediaType.JSON.value.encode("latin-1")


class EncodedResponse(ASGIResponse):
    """An `ASGIResponse` of a JSON body already encoded: the status, headers and body `ASGIResponse(body=...,
    headers=..., media_type=JSON)` sends, built without its general header handling (each `setdefault` scans and
    decodes the headers already set)."""

    __slots__ = ()

    def __init__(self, body: bytes, request_id: str, status_code: int) -> None:
        self.background = None
        self.body = body
        self.content_length = len(body)
        self._encoded_cookies = ()
        self.encoding = "utf-8"
        self.headers = MutableScopeHeaders()
        self.headers.headers = [
            (_REQUEST_ID_NAME, request_id.encode("latin-1")),
            (b"content-type", _JSON),
            (b"content-length", str(len(body)).encode("latin-1")),
        ]
        self.is_head_response = False
        self.status_code = status_code


class PredictionResponse(Response[Prediction]):
    """`Response(prediction, headers={"X-Request-ID": request_id})`, turned into the same bytes on the wire: the
    prediction encoded by msgspec as Litestar encodes it and the headers in the same order, without Litestar's
    general path (header merging, serializer lookup). Anything else asked of it (cookies, other headers, a
    background task, another media type) takes Litestar's own path."""

    __slots__ = ()

    def __init__(self, prediction: Prediction, request_id: str) -> None:
        # What `Response.__init__(prediction, headers={REQUEST_ID_HEADER: request_id})` sets, without its checks of
        # the arguments against `typing.Mapping` (slow isinstance checks, most of its cost).
        self.content = prediction
        self.background = None
        self.cookies = []
        self.encoding = "utf-8"
        self.headers = {REQUEST_ID_HEADER: request_id}
        self.media_type = None
        self.status_code = None
        self.response_type_encoders = {**(self.type_encoders or {})}

    def to_asgi_response(
        self,
        app: Litestar | None,
        request: Request,
        *,
        background: BackgroundTask | BackgroundTasks | None = None,
        cookies: Iterable[Cookie] | None = None,
        encoded_headers: Iterable[tuple[bytes, bytes]] | None = None,
        headers: dict[str, str] | None = None,
        is_head_response: bool = False,
        media_type: MediaType | str | None = None,
        status_code: int | None = None,
        type_encoders: "TypeEncodersMap | None" = None,
    ) -> ASGIResponse:
        request_id = self.headers.get(REQUEST_ID_HEADER)
        if (  # type encoders play no part: a Prediction holds only types msgspec encodes itself, never passed to them
            isinstance(request_id, str)
            and len(self.headers) == 1
            and app is None
            and background is None
            and self.background is None
            and not cookies
            and not self.cookies
            and encoded_headers is None
            and not headers
            and not is_head_response
            and not self.media_type
            and (not media_type or media_type == MediaType.JSON)
        ):
            return EncodedResponse(_ENCODE(self.content), request_id, self.status_code or status_code or HTTP_200_OK)
        return super().to_asgi_response(
            app,
            request,
            background=background,
            cookies=cookies,
            encoded_headers=encoded_headers,
            headers=headers,
            is_head_response=is_head_response,
            media_type=media_type,
            status_code=status_code,
            type_encoders=type_encoders,
        )


@post(
    "/predict",
    summary="Triage one encounter",
    description=(
        "The orphan-disease triage estimate of one encounter: class probabilities, the orphan flag and the "
        "needs-review band of the published policy, and what the model made of the HPO ids and categories. "
        "Triage support, not a diagnosis. Every answered prediction is written to the prediction log."
    ),
    status_code=HTTP_200_OK,
    response_headers=[REQUEST_ID],
    response_description="The triage estimate",
    responses=ERRORS,
)
async def predict(request: Request, data: Annotated[Encounter, ENCOUNTER_BODY]) -> Response[Prediction]:
    prediction = await score_one(runtime_of(request), data)
    return PredictionResponse(prediction, prediction.request_id)


@post(
    "/predict/batch",
    summary="Triage several encounters",
    description=(
        "One prediction per encounter, in request order, from one model call; row i has request id "
        "`<request id>-<i>`. More encounters than SERVING_MAX_BATCH: 413 naming the limit."
    ),
    status_code=HTTP_200_OK,
    response_headers=[REQUEST_ID],
    response_description="One estimate per encounter",
    responses=ERRORS,
)
async def predict_batch(request: Request, data: Annotated[BatchRequest, BATCH_BODY]) -> Response[BatchPrediction]:
    runtime = runtime_of(request)
    limit = runtime.settings.max_batch
    if len(data.encounters) > limit:
        raise FieldError(
            HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            f"at most {limit} encounters per request (SERVING_MAX_BATCH), got {len(data.encounters)}",
            "$.encounters",
        )
    request_id = new_request_id()
    predictions = score(runtime, data.encounters, [f"{request_id}-{i}" for i in range(len(data.encounters))])
    body = BatchPrediction(
        request_id=request_id,
        model_version=predictions[0].model_version,
        count=len(predictions),
        predictions=predictions,
    )
    return Response(body, headers={REQUEST_ID_HEADER: request_id})


router = Router(
    path="/v1",
    route_handlers=[predict, predict_batch],
    guards=[require_api_key],
    security=[{SECURITY_SCHEME: []}],
    tags=["predictions"],
)
