"""Prometheus metrics of one app, in a registry of its own (never the process-wide one): several apps in one
process, as in the tests, each count their own.

Requests: count and latency per method, route (the path template) and status, measured by `RequestMetrics`
around every routed request. Predictions: by predicted class, orphan flags, needs-review. The served model, its
loads and refusals are read from the `ModelHolder` at each scrape (`ModelStatusCollector`), so the reloader
thread counts nothing itself. Errors the service logs and goes on after (prediction log, shipping) are counted
by operation.
"""

import time
from collections.abc import Iterable, Iterator

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from serving.model_store import ModelHolder

PREFIX = "rare_triage_serving"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
UNROUTED = "(unrouted)"


class ModelStatusCollector(Collector):
    """The served version and the reload history, read from the holder's current snapshot at each scrape."""

    def __init__(self, holder: ModelHolder) -> None:
        self.holder = holder

    def collect(self) -> Iterator[Metric]:
        status = self.holder.status
        info = GaugeMetricFamily(
            f"{PREFIX}_model_info",
            "The served model version (value 1), its env and source",
            labels=["version", "env", "source"],
        )
        loaded_at = GaugeMetricFamily(f"{PREFIX}_model_loaded_timestamp_seconds", "When the served version was loaded")
        if status.model is not None:
            info.add_metric([status.model.version, status.model.env, status.model.source], 1.0)
            loaded_at.add_metric([], status.model.loaded_at.timestamp())
        yield info
        yield loaded_at
        yield GaugeMetricFamily(f"{PREFIX}_model_ready", "1 when a model is loaded", value=float(status.ready))
        yield CounterMetricFamily(
            f"{PREFIX}_model_loads",
            "Versions loaded and swapped in, the start-up load included",
            value=status.swaps_total,
        )
        yield CounterMetricFamily(
            f"{PREFIX}_model_refusals",
            "Versions refused (failed verification), retries included",
            value=status.refusals_total,
        )
        refused = GaugeMetricFamily(
            f"{PREFIX}_model_refused",
            "Recently refused versions (value 1 each; reasons at /v1/model)",
            labels=["version"],
        )
        for version in dict.fromkeys(refusal.version for refusal in status.refused):
            refused.add_metric([version], 1.0)
        yield refused
        yield GaugeMetricFamily(
            f"{PREFIX}_model_check_failing",
            "1 when the last read of the env pointer could not tell (bucket unavailable, pointer invalid)",
            value=float(status.last_error is not None),
        )


class ServiceMetrics:
    """The metrics of one app and the registry they live in."""

    def __init__(self, holder: ModelHolder) -> None:
        self.registry = CollectorRegistry()
        labels = ["method", "route", "status"]
        self.requests = Counter(
            f"{PREFIX}_http_requests", "HTTP requests by method, route and status", labels, registry=self.registry
        )
        self.latency = Histogram(
            f"{PREFIX}_http_request_duration_seconds",
            "HTTP request latency by method, route and status",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            f"{PREFIX}_predictions",
            "Predictions returned, by predicted class",
            ["predicted_class"],
            registry=self.registry,
        )
        self.orphan_flags = Counter(
            f"{PREFIX}_orphan_flags",
            "Predictions whose orphan probability reached the orphan threshold",
            registry=self.registry,
        )
        self.needs_review = Counter(
            f"{PREFIX}_needs_review", "Predictions inside the needs-review band", registry=self.registry
        )
        self.errors = Counter(
            f"{PREFIX}_errors",
            "Errors logged by the service, by operation (prediction_log_write, log_rotate, log_ship, unhandled)",
            ["operation"],
            registry=self.registry,
        )
        self.registry.register(ModelStatusCollector(holder))
        self._predictions_by_class: dict[str, Counter] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route, str(status)).observe(seconds)

    def observe_predictions(self, labels: Iterable[str], orphan_flags: int, needs_review: int) -> None:
        for label in labels:
            child = self._predictions_by_class.get(label)
            if child is None:  # `labels()` takes a lock and checks its arguments: its child is kept once made
                child = self._predictions_by_class[label] = self.predictions.labels(label)
            child.inc()
        if orphan_flags:
            self.orphan_flags.inc(orphan_flags)
        if needs_review:
            self.needs_review.inc(needs_review)

    def exposition(self) -> tuple[bytes, str]:
        """The registry in Prometheus' text format, and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class RequestMetrics(ASGIMiddleware):
    """Counts and times every routed HTTP request by method, path template and the status sent."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.metrics = metrics

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        start = time.perf_counter()
        status = 500  # what the server answers when the app raises before starting a response

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await next_app(scope, receive, send_and_note)
        finally:
            route = str(scope.get("path_template") or UNROUTED)
            self.metrics.observe_request(str(scope.get("method", "")), route, status, time.perf_counter() - start)
