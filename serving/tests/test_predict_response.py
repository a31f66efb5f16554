"""POST /v1/predict's answer is built without Litestar's general response path (`PredictionResponse`): the same
status, headers (in the same order) and body bytes as `Response(prediction, headers={"X-Request-ID": ...})`; its
request ids are uuid4s as `str(uuid.uuid4())` writes them."""

import asyncio
import re
import uuid
from typing import Any

import pytest
from litestar import Response
from litestar.datastructures import Cookie
from litestar.response.base import ASGIResponse

from serving.api.predict import REQUEST_ID_HEADER, EncodedResponse, PredictionResponse
from serving.api.request_id import new_request_id, new_request_ids
from serving.schemas import HpoReport, Prediction
from serving.weighing import WeighedInput

REQUEST_ID = "3dce1aaa-e5d3-4b2a-ba66-467da33a799b"


def prediction(**changes: Any) -> Prediction:
    fields: dict[str, Any] = {
        "predicted_class": "orphan",
        "outcome": "needs_review",
        "probabilities": {"none": 0.5, "common_mild": 0.25, "orphan": 0.1 + 0.2, "common_chronic": 1e-300},
        "orphan_probability": 0.30000000000000004,
        "orphan_flag": True,
        "orphan_threshold": 0.009346424176503106,
        "needs_review": True,
        "review_threshold": 0.003226154727691274,
        "needs_review_reason": 'orphan probability "0.3" \u00e9\u00e8 \u2028 in the band',
        "model_version": "v1-de67a376f5e6",
        "request_id": REQUEST_ID,
        "hpo": HpoReport(used=["HP:0001250"], unknown=["HP:9999999"], outside=[]),
        "unseen_categories": ["region"],
        "dropped_fields": ["fever_score", "patient_id"],
    }
    fields.update(changes)
    return Prediction(**fields)


WEIGHED = [
    WeighedInput(input="sex", value="F", orphan_probability_change=-0.01),
    WeighedInput(input="centre_id", value=None, orphan_probability_change=0.0),
    WeighedInput(input="age_years", value=7.0, orphan_probability_change=0.125),
]


def sent(response: ASGIResponse) -> list[dict[str, Any]]:
    """The ASGI messages `response` sends."""
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        messages.append(dict(message))

    asyncio.run(response({"type": "http"}, receive, send))  # type: ignore[arg-type]
    return messages


# What Litestar's route handler passes for POST /v1/predict (its type encoders: the pydantic plugin's, when present).
ROUTE_ARGUMENTS: dict[str, Any] = {
    "background": None,
    "cookies": [],
    "headers": {},
    "media_type": "",
    "status_code": 200,
    "type_encoders": {bytearray: bytes},
}


@pytest.mark.parametrize(
    "answer",
    [prediction(), prediction(weighed_most=WEIGHED), prediction(weighed_most=[], needs_review_reason=None)],
)
def test_the_answer_is_what_litestar_would_send(answer: Prediction) -> None:
    ours = PredictionResponse(answer, REQUEST_ID).to_asgi_response(None, None, **ROUTE_ARGUMENTS)  # type: ignore[arg-type]
    theirs = Response(answer, headers={REQUEST_ID_HEADER: REQUEST_ID}).to_asgi_response(
        None,
        None,  # type: ignore[arg-type]
        **ROUTE_ARGUMENTS,
    )

    assert type(ours) is EncodedResponse
    assert sent(ours) == sent(theirs)
    assert ours.body == theirs.body


def test_it_holds_what_litestars_response_would() -> None:
    answer = prediction()
    ours = PredictionResponse(answer, REQUEST_ID)
    theirs = Response(answer, headers={REQUEST_ID_HEADER: REQUEST_ID})

    for name in Response.__slots__:
        assert getattr(ours, name) == getattr(theirs, name), name


def test_anything_else_takes_litestars_own_path() -> None:
    answer = prediction()
    response = PredictionResponse(answer, REQUEST_ID)
    response.set_cookie(Cookie(key="session", value="1"))
    ours = response.to_asgi_response(None, None, **ROUTE_ARGUMENTS)  # type: ignore[arg-type]
    theirs = Response(
        answer, headers={REQUEST_ID_HEADER: REQUEST_ID}, cookies=[Cookie(key="session", value="1")]
    ).to_asgi_response(None, None, **ROUTE_ARGUMENTS)  # type: ignore[arg-type]

    assert type(ours) is not EncodedResponse
    assert sent(ours) == sent(theirs)


def test_request_ids_are_uuid4_in_canonical_form() -> None:
    ids = [new_request_id() for _ in range(1000)] + new_request_ids(1000) + new_request_ids(1)

    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert str(parsed) == text
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", text)
