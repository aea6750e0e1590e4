"""What the API was asked and how it answered: requests by route, method and status, and how
long each took, for ``GET /v1/metrics`` beside the scheme's state (``metrics.py``).

An operator reads request rates, error rates and latency from these (``rate()`` over the
counters, ``histogram_quantile`` over the buckets); the scheme's state alone says where money
stands, not that a bank's calls fail or slow down. Labels are the route's template (the
path as the API declares it: ``/v1/transfers/{transfer_id}/commit``), never the path as sent,
so ids (and with them who paid whom) stay out of the series and their number stays bounded;
a request refused before it reached a route (no credential, a path nothing serves) counts
under ``route="unrouted"``.

``entrepot serve`` runs several worker processes; a scrape reaches one of them. Each worker
therefore writes its counts to files in a directory the server creates afresh at each start
(prometheus_client's multiprocess mode, ``PROMETHEUS_MULTIPROC_DIR``), and a scrape sums every
worker's, those of workers since replaced included, so counters never go back while the
server runs. In a single process (tests, an app embedded elsewhere) counts stay in memory.
Measured: 1.1 % of a four-call payment's instructions (docs/benchmarks.md)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from time import perf_counter
from typing import Any

from prometheus_client import values
from prometheus_client.core import Metric
from prometheus_client.metrics import Counter, Histogram
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from entrepot.storage import metrics as storage_metrics

#: the environment variable naming the directory workers write their counts to
MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: latency buckets, seconds: a payment call takes milliseconds; a bulk or a scrape, longer
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

#: the route label of a request answered before any route took it
UNROUTED = "unrouted"
#: the methods counted under their own name (RFC 9110's and PATCH); any other, which a client
#: may invent per request, is counted as OTHER_METHOD, so the series stay bounded
METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)
OTHER_METHOD = "other"


def multiprocess_dir() -> str | None:
    """The directory counts are shared through, or None when they stay in this process's
    memory: prometheus_client chooses once, when it is first imported, from the environment."""
    path = os.environ.get(MULTIPROCESS_DIR_ENV)
    if path is None or values.ValueClass is values.MutexValue:
        return None
    return path


class _Shared(Collector):
    """Every worker's counts, summed from the shared directory at each scrape."""

    def __init__(self, path: str) -> None:
        self.path = path

    def collect(self) -> Iterable[Metric]:
        registry = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(registry, self.path)  # type: ignore[no-untyped-call]
        return list(registry.collect())


class RequestCounts:
    """The counters and the latency histogram of one app (``app.state.request_counts``)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = Counter(
            "entrepot_http_requests",
            "HTTP requests answered, by route template, method and status code",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "entrepot_http_request_duration_seconds",
            "Time from a request's arrival to its answer, by route template and method",
            ["route", "method"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "entrepot_rate_limited_requests",
            "Requests refused 429 for their caller's request rate (rate_limit.py), by payment "
            "participant; a trade principal by its kind (merchant, buyer, arbitrator)",
            ["participant"],
            registry=self.registry,
        )
        shared = multiprocess_dir()
        #: what a scrape reports: every worker's counts (the storage's write counters among
        #: them), else this process's requests and writes
        self.collectors: tuple[Collector, ...] = (
            (_Shared(shared),) if shared else (self.registry, storage_metrics.REGISTRY)
        )
        # Each series' child kept: ``labels()`` checks and locks on every call, 70 % of the
        # counting's cost. Bounded: the routes' templates by their methods and statuses.
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._latencies: dict[tuple[str, str], Any] = {}

    def count_rate_limited(self, caller: str) -> None:
        """A request of ``caller``'s refused for its rate. A trade principal
        (``merchant:m-1``, ``buyer:b-7``) is counted under its kind: buyers are many, and
        their ids are no operator's series to keep."""
        kind, colon, _ = caller.partition(":")
        self.rate_limited.labels(kind if colon else caller).inc()

    def observe(self, scope: Scope, status: int, seconds: float) -> None:
        route: Any = scope.get("route")
        template = getattr(route, "path", None) or UNROUTED
        method = scope["method"]
        if method not in METHODS:
            method = OTHER_METHOD
        counter = self._counters.get((template, method, status))
        if counter is None:
            # status 0: the client left (the request was cancelled) before an answer began
            shown = str(status) if status else "none"
            counter = self._counters[template, method, status] = self.requests.labels(
                template, method, shown
            )
        counter.inc()
        latency = self._latencies.get((template, method))
        if latency is None:
            latency = self._latencies[template, method] = self.duration.labels(template, method)
        latency.observe(seconds)


class RequestMetrics:
    """ASGI middleware counting every HTTP request, its status and its duration (from the
    request's arrival here to the last byte of the answer handed to the server), the
    outermost of the app's own."""

    def __init__(self, app: ASGIApp, counts: RequestCounts) -> None:
        self.app = app
        self.counts = counts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        start = perf_counter()
        try:
            await self.app(scope, receive, sending)
        except Exception:
            # the server-error middleware, outside this one, answers 500 for it
            status = status or 500
            raise
        finally:
            self.counts.observe(scope, status, perf_counter() - start)


__all__ = [
    "BUCKETS",
    "MULTIPROCESS_DIR_ENV",
    "UNROUTED",
    "RequestCounts",
    "RequestMetrics",
    "multiprocess_dir",
]
