"""The service as `python -m serving` runs it, plus the benchmark's floor route; run by bench_serving.py in the
service's venv (.venv-serving), one uvicorn worker, configured by the environment like the service.

    POST /bench/floor   validates the body as an `Encounter` (the msgspec Struct of POST /v1/predict, behind the
                        same guard, middleware and exception handlers) and answers `{"valid": true}`: the cost of
                        the framework alone on the same payload, which the benchmark sets predict against.

The route is registered on the app `serving.app.create_app` builds, which `serving.__main__.main` then runs with
the service's own logging and uvicorn options, in this process only: the service itself never has the route.
"""

import sys

import msgspec
from litestar import Litestar, Router, post

import serving.__main__ as service_main
from serving.api.auth import require_api_key
from serving.app import create_app
from serving.contract import Encounter
from serving.settings import Settings

FLOOR_PATH = "/bench/floor"


class FloorAnswer(msgspec.Struct, frozen=True):
    valid: bool


@post("/floor", status_code=200)
async def floor(data: Encounter) -> FloorAnswer:
    del data  # validated by the framework on the way in: that is all the floor does
    return FloorAnswer(valid=True)


def create_app_with_floor(settings: Settings) -> Litestar:
    """The service's app with POST /bench/floor registered on it."""
    app = create_app(settings)
    app.register(Router(path="/bench", route_handlers=[floor], guards=[require_api_key]))
    return app


if __name__ == "__main__":
    # `python -m serving` exactly (logging, uvicorn options, one worker), with the floor on its app.
    service_main.create_app = create_app_with_floor
    sys.exit(service_main.main([]))
