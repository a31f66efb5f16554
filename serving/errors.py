"""Every error answer has one shape, `schemas.ErrorBody`: `{"detail": ..., "field": ...}`.

Litestar reports a request body the contract refuses as a ValidationException caused by msgspec's error
("Expected `float` <= 120.0 - at `$.data.age_years`"): `field` becomes that JSON path without Litestar's `data`
prefix (`$.age_years`), an unknown or missing field is added to the path, and a rule of the contract naming its
field ("systolic_bp: below diastolic_bp ...") gets that field. Invalid values are 422, a body that is not JSON
or is empty 400, a body over SERVING_MAX_REQUEST_BYTES 413.
"""

import logging
import re
from typing import Final

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, SerializationException, ValidationException
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_500_INTERNAL_SERVER_ERROR,
)
from litestar.types import ExceptionHandlersMap

from serving.api.runtime import runtime_of
from serving.contract import Encounter, PublishedCase
from serving.schemas import BatchRequest, ErrorBody

logger = logging.getLogger(__name__)

BODY: Final = "$"
_MSGSPEC_AT: Final = re.compile(r"^(?P<message>.*) - at `\$(?:\.data)?(?P<path>[^`]*)`$", re.DOTALL)
_NAMED_FIELD: Final = re.compile(r"^Object (?:contains unknown|missing required) field `(?P<name>[^`]+)`$")
_RULE: Final = re.compile(r"^(?P<name>[a-z_][a-z0-9_]*): (?P<message>.+)$", re.DOTALL)
_HPO_PATTERN_PROBLEM: Final = "Expected `str` matching regex"
_HPO_PATH: Final = re.compile(r"\.hpo_(?:observed|excluded)\[\d+\]$")
_CONTRACT_FIELDS: Final = frozenset(
    name for struct in (Encounter, PublishedCase, BatchRequest) for name in struct.__struct_fields__
)


class FieldError(HTTPException):
    """A refusal of one field of the request, by a check of the route itself (not the contract's)."""

    def __init__(self, status_code: int, problem: str, field: str) -> None:
        super().__init__(detail=f"{problem} - at `{field}`", status_code=status_code)
        self.field = field


def error_response(status: int, detail: str, field: str | None = None) -> Response[ErrorBody]:
    return Response(ErrorBody(detail=detail, field=field), status_code=status)


def locate(message: str) -> tuple[str, str] | None:
    """(problem, JSON path) of a msgspec validation message of the request body; None when it names no place
    (Litestar found no body at all)."""
    match = _MSGSPEC_AT.match(message)
    if match is None:
        return None
    problem, path = match.group("message"), BODY + match.group("path")
    named = _NAMED_FIELD.match(problem)
    rule = _RULE.match(problem)
    if named is not None:
        path = f"{path}.{named.group('name')}"
    elif rule is not None and rule.group("name") in _CONTRACT_FIELDS:
        path, problem = f"{path}.{rule.group('name')}", rule.group("message")
    elif problem.startswith(_HPO_PATTERN_PROBLEM) and _HPO_PATH.search(path):
        problem = "Expected an HPO id: `HP:` and 7 digits, e.g. HP:0001945"
    return problem, path


def validation_error(request: Request, exc: ValidationException) -> Response[ErrorBody]:
    """A body the contract refuses: 422 naming the field (400 when there was no body)."""
    cause = exc.__cause__
    located = locate(str(cause)) if isinstance(cause, msgspec.ValidationError) else None
    if located is not None:
        problem, path = located
        return error_response(HTTP_422_UNPROCESSABLE_ENTITY, f"{problem} - at `{path}`", path)
    if isinstance(cause, msgspec.ValidationError):
        return error_response(HTTP_400_BAD_REQUEST, "the request body is empty: send a JSON object", BODY)
    extra = exc.extra if isinstance(exc.extra, list) and exc.extra else [{}]
    first = extra[0] if isinstance(extra[0], dict) else {}
    key = first.get("key")
    return error_response(
        HTTP_400_BAD_REQUEST, str(first.get("message") or exc.detail), f"{BODY}.{key}" if key else None
    )


def http_error(request: Request, exc: HTTPException) -> Response[ErrorBody]:
    """Any other refusal with its status; the body as a whole is the field of a malformed or oversized body."""
    detail, field = exc.detail, exc.field if isinstance(exc, FieldError) else None
    if exc.status_code == HTTP_413_REQUEST_ENTITY_TOO_LARGE and exc.detail == "Request Entity Too Large":
        limit = runtime_of(request).settings.max_request_bytes
        detail, field = f"request body larger than {limit} bytes (SERVING_MAX_REQUEST_BYTES)", BODY
    elif isinstance(exc.__cause__, SerializationException):  # Litestar could not decode the body
        detail, field = f"the request body is not JSON: {detail}", BODY
    response = error_response(exc.status_code, detail, field)
    response.headers.update(exc.headers or {})
    return response


def unexpected_error(request: Request, exc: Exception) -> Response[ErrorBody]:
    """A bug: logged with its traceback and counted; the client learns nothing of the internals."""
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    runtime_of(request).metrics.errors.labels("unhandled").inc()
    return error_response(HTTP_500_INTERNAL_SERVER_ERROR, "internal error: the service logged it")


EXCEPTION_HANDLERS: Final[ExceptionHandlersMap] = {
    ValidationException: validation_error,
    HTTPException: http_error,
    Exception: unexpected_error,
}
