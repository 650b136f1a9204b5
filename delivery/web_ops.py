"""Operations: ``/health`` and ``/hello`` (``/metrics``: :func:`ensign.metrics.add_metrics`)."""

from __future__ import annotations

import asyncio
import logging

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
