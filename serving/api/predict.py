"""POST /v1/predict (one encounter; concurrent ones share a model call, see `scoring.score_one`) and
POST /v1/predict/batch (several, one model call for all of them)."""

import uuid
from typing import Annotated, Any, Final

from litestar import Request, Response, Router, post
from litestar.datastructures import ResponseHeader
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import Body
from litestar.status_codes import HTTP_200_OK, HTTP_413_REQUEST_ENTITY_TOO_LARGE

from serving.api.auth import SECURITY_SCHEME, require_api_key
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


def new_request_id() -> str:
    return str(uuid.uuid4())


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
    request_id = new_request_id()
    prediction = await score_one(runtime_of(request), data, request_id)
    return Response(prediction, headers={REQUEST_ID_HEADER: request_id})


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
