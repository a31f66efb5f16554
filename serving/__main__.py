"""`python -m serving`: the service on SERVING_HOST:SERVING_PORT (127.0.0.1:8000 by default), one uvicorn worker.

Configuration is the environment (`serving.settings`); a setting the service cannot use stops it at once with
the variable named (exit status 2). `--announce` prints one sample prediction and the addresses once it is ready
(`make run` ends this way).
"""

import argparse
import logging
import sys

import uvicorn

from serving.announce import start_announcer
from serving.app import create_app
from serving.settings import Settings, SettingsError

GRACEFUL_SHUTDOWN_S = 10


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving", description="The rare-triage triage service.")
    parser.add_argument(
        "--announce", action="store_true", help="print a sample prediction and the addresses once ready"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"serving: {exc}", file=sys.stderr)
        return 2
    if args.announce:
        host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
        start_announcer(f"http://{host}:{settings.port}", settings.api_key.value if settings.api_key else None)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        lifespan="on",
        log_config=None,  # the root logger above formats uvicorn's lines too
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
