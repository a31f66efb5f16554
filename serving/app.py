"""The triage service: `create_app(settings)` builds the Litestar app; its lifespan loads the model and runs the
background work.

Start-up: open the bucket, load the version the env pointer names (or the verified cached copy when the bucket
cannot be read). No model (no pointer, a refused version, nothing readable): the app still starts, alive but not
ready, and the reloader keeps looking. Then, until shutdown: the reloader swaps in each newly pointed version once
verified, and a housekeeping task closes the prediction log when its hour has passed (or it is full) and ships
closed files to the bucket, at the reloader's cadence and at least once a minute. A failure there is logged and
counted, never fatal.
"""

import asyncio
import contextlib
import datetime as dt
import gc
import logging
import os
from collections.abc import AsyncIterator, Sequence
from typing import Final

import anyio.to_thread
from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from serving.api import exchange, form, health, model_info, predict, vocabulary
from serving.api import metrics as metrics_route
from serving.api.auth import API_KEY_HEADER, SECURITY_SCHEME
from serving.api.runtime import STATE_KEY, Runtime, prepare_model
from serving.bucket import BucketError, BucketWriter, LocalBucket, S3Bucket, open_bucket
from serving.errors import EXCEPTION_HANDLERS
from serving.metrics import RequestMetrics, ServiceMetrics
from serving.model_store import (
    ModelHolder,
    ModelRefusedError,
    ModelStoreError,
    NoModelError,
    PointerInvalidError,
    Refusal,
    Reloader,
    load_initial,
    read_pointer,
)
from serving.prediction_log import PredictionLog, ship_closed_logs
from serving.pseudonym import HMAC_KEY_ENV_VAR, Pseudonymizer
from serving.settings import Settings

logger = logging.getLogger(__name__)

VERSION: Final = "0.1.0"
HOUSEKEEPING_MAX_INTERVAL_S: Final = 60.0
# The routes, one router per concern.
ROUTE_HANDLERS: Final[Sequence[Router]] = (
    health.router,
    predict.router,
    exchange.router,
    model_info.router,
    metrics_route.router,
    vocabulary.router,
    form.router,
)


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="rare-triage serving",
        version=VERSION,
        description=(
            "Orphan-disease triage of coded encounters with the published model of this environment. "
            'Triage support, not a diagnosis. Errors answer `{"detail": ..., "field": ...}`, `field` being a '
            "JSON path into the request body."
        ),
        path="/schema",
        render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin()],
        components=Components(
            security_schemes={
                SECURITY_SCHEME: SecurityScheme(
                    type="apiKey",
                    name=API_KEY_HEADER,
                    security_scheme_in="header",
                    description="Required by the prediction routes when the service has a key (always in prod).",
                )
            }
        ),
    )


def create_app(settings: Settings) -> Litestar:
    """The service for `settings`: nothing is read or loaded before the app starts (see the lifespan)."""
    holder = ModelHolder()
    metrics = ServiceMetrics(holder)
    prediction_log = PredictionLog(
        settings.log_dir, settings.model_env, max_bytes=settings.log_max_bytes, hourly=settings.log_hourly
    )
    key = settings.pseudonym_key
    runtime = Runtime(
        settings=settings,
        holder=holder,
        prediction_log=prediction_log,
        metrics=metrics,
        pseudonymizer=None if key is None else Pseudonymizer(key),
    )
    return Litestar(
        route_handlers=list(ROUTE_HANDLERS),
        state=State({STATE_KEY: runtime}),
        lifespan=[lifespan],
        middleware=[RequestMetrics(metrics)],
        exception_handlers=dict(EXCEPTION_HANDLERS),
        request_max_body_size=settings.max_request_bytes,
        openapi_config=openapi_config(),
        # Litestar's default logging puts a queue in front of the root logger: the lines written while uvicorn stops
        # were lost when it re-raised the stop signal. The process's own logging (serving.__main__) writes directly.
        logging_config=None,
        debug=False,
    )


@contextlib.asynccontextmanager
async def lifespan(app: Litestar) -> AsyncIterator[None]:
    runtime: Runtime = app.state[STATE_KEY]
    settings = runtime.settings
    announce_pseudonym_key(settings)
    bucket = open_bucket(settings.bucket_uri, settings.s3)
    await anyio.to_thread.run_sync(load_first_model, runtime, bucket)
    reloader = Reloader(
        runtime.holder,
        bucket,
        settings.model_env,
        settings.cache_dir,
        interval_s=settings.reload_interval_s,
        onnx_threads=settings.onnx_threads,
        prepare=prepare_model,
    )
    reloader.start()
    interval = min(settings.reload_interval_s, HOUSEKEEPING_MAX_INTERVAL_S)
    housekeeping = asyncio.create_task(keep_house(runtime, writable(bucket), interval), name="prediction-log")
    try:
        yield
    finally:
        housekeeping.cancel()
        with contextlib.suppress(asyncio.CancelledError):  # the cancellation asked for just above
            await housekeeping
        await anyio.to_thread.run_sync(rotate_and_ship, runtime, writable(bucket), True)
        try:
            await anyio.to_thread.run_sync(reloader.stop)
        except RuntimeError:
            logger.exception("model reloader did not stop")
        runtime.prediction_log.close()


def announce_pseudonym_key(settings: Settings) -> None:
    """Say at start-up what becomes of a sent patient_id (never the key itself)."""
    key = settings.pseudonym_key
    if key is None:
        logger.warning("no %s: a sent patient_id is dropped (reported), no patient_key is logged", HMAC_KEY_ENV_VAR)
    elif key.public:
        logger.warning("patient_key made with the public local development key (%s unset): demo only", HMAC_KEY_ENV_VAR)


def load_first_model(runtime: Runtime, bucket: LocalBucket | S3Bucket) -> None:
    """Load the pointed version (or the cached one); without one, note why and start anyway."""
    settings = runtime.settings
    try:
        model = load_initial(
            bucket, settings.model_env, settings.cache_dir, onnx_threads=settings.onnx_threads, prepare=prepare_model
        )
    except ModelRefusedError as exc:
        runtime.startup_problem = str(exc)
        manifest_sha256 = pointed_manifest_sha256(bucket, settings.model_env, exc.version)
        runtime.holder.record_refusal(Refusal(exc.version, manifest_sha256, exc.reason, dt.datetime.now(dt.UTC)))
    except (NoModelError, PointerInvalidError) as exc:
        runtime.startup_problem = str(exc)
        logger.error("no model at start-up, serving nothing until one is loaded: %s", exc)
    else:
        runtime.holder.swap(model)
        runtime.startup_problem = None
        # The start-up objects (the model's lookup tables above all) never become garbage: kept out of the
        # collector's full passes, which otherwise take 45-100 ms each under load and show in the tail latency.
        gc.freeze()


def pointed_manifest_sha256(bucket: LocalBucket | S3Bucket, env: str, version: str) -> str:
    """The manifest hash the pointer gives for `version`, which the reloader matches a refusal by (so it does not
    retry the refused version at every poll); empty when the pointer now says otherwise or cannot be read."""
    try:
        pointer = read_pointer(bucket, env)
    except (ModelStoreError, BucketError) as exc:
        logger.warning("env %s: pointer unreadable after refusing %s: %s", env, version, exc)
        return ""
    return pointer.manifest_sha256 if pointer.version == version else ""


def writable(bucket: LocalBucket | S3Bucket) -> BucketWriter | None:
    """The bucket to ship closed logs to; None for a local folder this process cannot write (a read-only mount).
    An S3 bucket's permissions show only when writing: its failures are logged and counted."""
    if isinstance(bucket, LocalBucket) and bucket.root.is_dir() and not os.access(bucket.root, os.W_OK):
        logger.warning("bucket folder %s is read-only: closed prediction logs stay in the log folder", bucket.root)
        return None
    return bucket


async def keep_house(runtime: Runtime, bucket: BucketWriter | None, interval_s: float) -> None:
    """Every `interval_s`: close the prediction log when due, then ship the closed files (in a worker thread)."""
    while True:
        await asyncio.sleep(interval_s)
        await anyio.to_thread.run_sync(rotate_and_ship, runtime, bucket)


def rotate_and_ship(runtime: Runtime, bucket: BucketWriter | None, stopping: bool = False) -> None:
    """One housekeeping pass; each failure is logged and counted, and the next pass tries again. `stopping` (the
    last pass, at a graceful stop) closes the open file whatever its size or hour, so its lines are shipped now."""
    log = runtime.prediction_log
    try:
        closed = log.rotate_now() if stopping else log.rotate_if_due()
    except OSError:
        logger.exception("prediction log %s: rotation failed", log.path)
        runtime.metrics.errors.labels("log_rotate").inc()
    else:
        if closed is not None:
            logger.info("prediction log closed: %s", closed)
    if bucket is None:
        return
    try:
        shipped = ship_closed_logs(bucket, log.folder, log.env)
    except Exception:  # bucket down, conflict, disk: whatever it is, the next pass retries and serving goes on
        logger.exception("prediction logs in %s: shipping to %s failed", log.folder, bucket.uri)
        runtime.metrics.errors.labels("log_ship").inc()
    else:
        for key in shipped:
            logger.info("prediction log shipped to %s/%s", bucket.uri, key)
