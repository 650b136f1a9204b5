"""Operations: ``/health``, ``/metrics``, ``/hello``.

``/metrics`` (:func:`ensign.metrics.metrics_route`): with ``METRICS_PORT`` set, :func:`metrics_site`
serves it on that internal address only, and the public port answers 404 for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import redis.exceptions
from aiohttp import web

from .appkeys import chain_key, redis_key

log = logging.getLogger(__name__)

routes = web.RouteTableDef()

HEALTH_TIMEOUT = 2.0  # seconds each dependency gets to answer


@routes.get("/hello")
async def hello(request: web.Request) -> web.Response:
    """dm3's liveness route."""
    return web.Response(text="Hello DM3")


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    """200 when Redis and the chain both answer, else 503; the body says which failed."""
    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(request.app[redis_key].ping(), HEALTH_TIMEOUT)
        checks["redis"] = "ok"
    except (redis.exceptions.RedisError, OSError, asyncio.TimeoutError):
        checks["redis"] = "unreachable"
    try:
        await asyncio.wait_for(request.app[chain_key].block_number(), HEALTH_TIMEOUT)
        checks["chain"] = "ok"
    except Exception:  # noqa: BLE001 - any failure of the node means "unreachable" here
        checks["chain"] = "unreachable"
    healthy = all(value == "ok" for value in checks.values())
    return web.json_response({"status": "ok" if healthy else "unavailable", **checks}, status=200 if healthy else 503)



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
