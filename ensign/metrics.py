"""Prometheus metrics for every Ensign service: one registry per app, the request histogram, ``/metrics``.

Each app owns a :class:`prometheus_client.CollectorRegistry`, so two apps in one process (tests, or
a multi-tenant runner) never share or clash on counters. A service adds its own counters with
:meth:`ServiceMetrics.counter` and :meth:`ServiceMetrics.gauge`; :func:`metrics_route` serves them.

Several worker processes of one service (``ensign delivery --workers N``) aggregate through
prometheus_client's multiprocess mode: the parent sets ``PROMETHEUS_MULTIPROC_DIR`` for its workers
before they start, every worker writes its values to files there, and whichever worker answers
``GET /metrics`` renders all of them summed (sockets: the sum over live workers).

Every service has ``<namespace>_request_seconds`` (histogram; labels ``method``, ``route`` — the
route template —, ``status``), fed by :func:`ensign.web.request_log_middleware` through
:meth:`ServiceMetrics.observe_request`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = [
    "CONTENT_TYPE_LATEST",
    "REQUEST_BUCKETS",
    "ServiceMetrics",
    "add_metrics",
    "metrics_route",
    "metrics_site",
]

log = logging.getLogger(__name__)

REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ServiceMetrics:
    """The metrics of one app.

    :param namespace: prefix of every metric name, e.g. ``ensign_ds``
    :param multiprocess_dir: the worker processes' shared ``PROMETHEUS_MULTIPROC_DIR`` (set in the
        environment before this process imported prometheus_client); ``None`` for one process
    """

    def __init__(self, namespace: str, *, multiprocess_dir: str | None = None) -> None:
        self.namespace = namespace
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry(auto_describe=True)
        self.request_seconds = Histogram(
            f"{namespace}_request_seconds",
            "HTTP request latency",
            ["method", "route", "status"],
            registry=self.registry,
            buckets=REQUEST_BUCKETS,
        )
        # labels() hashes and validates its arguments on every call; a request needs one lookup.
        self._request_children: dict[tuple[str, str, int], Histogram] = {}

    def counter(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
        """A counter ``<namespace>_<name>`` (exposed with the ``_total`` suffix)."""
        return Counter(f"{self.namespace}_{name}", documentation, labels, registry=self.registry)

    def gauge(self, name: str, documentation: str) -> Gauge:
        """A gauge ``<namespace>_<name>``; across workers the sum of the live ones."""
        return Gauge(f"{self.namespace}_{name}", documentation, registry=self.registry, multiprocess_mode="livesum")

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Record one request (the ``observe`` of :func:`ensign.web.request_log_middleware`)."""
        key = (method, route, status)
        child = self._request_children.get(key)
        if child is None:
            child = self._request_children[key] = self.request_seconds.labels(method, route, str(status))
        child.observe(seconds)

    def render(self) -> bytes:
        """The text exposition format: this app's registry, or every worker's values summed."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(merged)


def metrics_route(metrics: ServiceMetrics) -> web.RouteDef:
    """``GET /metrics`` answering with ``metrics`` in the Prometheus text format."""

    async def handler(request: web.Request) -> web.Response:
        response = web.Response(body=metrics.render())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    return web.get("/metrics", handler)


def metrics_site(
    route: web.RouteDef, host: str, port: int
) -> Callable[[web.Application], AbstractAsyncContextManager[None]]:
    """A cleanup context serving only ``route`` (``/metrics``) on ``host:port`` while the app runs."""

    @asynccontextmanager
    async def site(app: web.Application) -> AsyncIterator[None]:
        metrics_app = web.Application()
        metrics_app.router.add_routes([route])
        runner = web.AppRunner(metrics_app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
            log.info("metrics on http://%s:%d/metrics", host, int(runner.addresses[0][1]))
            yield
        finally:
            await runner.cleanup()

    return site


def add_metrics(app: web.Application, metrics: ServiceMetrics, *, port: int | None, host: str) -> None:
    """``GET /metrics`` on the app's own port, or with ``port`` set (``METRICS_PORT``) only on
    ``host:port``, an internal address, while the public port answers 404 for it."""
    route = metrics_route(metrics)
    if port is None:
        app.router.add_routes([route])
    else:
        app.cleanup_ctx.append(metrics_site(route, host, port))
