"""The API key of the prediction routes: required whenever SERVING_API_KEY is set (always in prod).

Compared in constant time; a missing key and a wrong key get the same 401, so a client learns nothing of which.
Health, readiness, metrics and /v1/model stay open (no patient data: a load balancer and a scraper reach them).
"""

import hmac
from typing import Final

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler

from serving.api.runtime import runtime_of

API_KEY_HEADER: Final = "X-API-Key"
SECURITY_SCHEME: Final = "ApiKey"
REFUSAL: Final = f"a valid {API_KEY_HEADER} header is required"


async def require_api_key(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """Litestar guard: pass when no key is configured or the request's `X-API-Key` equals it (a coroutine: Litestar
    would run a plain function guard in a worker thread on every request)."""
    expected = runtime_of(connection).settings.api_key
    if expected is None:
        return
    sent = connection.headers.get(API_KEY_HEADER, "")
    if not hmac.compare_digest(sent.encode("utf-8"), expected.value.encode("utf-8")):
        raise NotAuthorizedException(detail=REFUSAL)
