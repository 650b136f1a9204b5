"""The profile backend's aiohttp application: the one source of truth for profiles and names.

``create_app(settings)`` builds the service used in production and in tests; ``specs/backend.md``
documents every route. Routes live in one module per concept:

* :mod:`backend.profiles` — register a profile (``POST /profile/address``) and read profiles/names;
* :mod:`backend.aliases`  — claim and release aliases (``POST /profile/name``, ``/profile/deleteName``);
* :mod:`backend.records`  — the gateway's feed ``GET /records/{name}``;
* ``GET /health`` here — 200 when Redis answers, 503 otherwise.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
import redis.exceptions
from aiohttp import web

from backend import aliases, profiles, records
from backend.appkeys import domains_key, redis_key, settings_key, store_key
from backend.names import Domains
from backend.store import ProfileStore
from ensign.config import BackendSettings, ConfigError
from ensign.errors import ServiceUnavailable
from ensign.web import cors_middleware, error_middleware

__all__ = ["create_app", "CLIENT_MAX_SIZE"]

log = logging.getLogger(__name__)

#: Largest request body accepted, bytes (a signed profile is well under 1 KiB).
CLIENT_MAX_SIZE = 64 * 1024

# Seconds before a Redis call gives up: a stalled Redis then answers 503 instead of hanging requests.
_REDIS_TIMEOUT = 5.0

# Start-up waits for Redis this many times, a second apart (containers start in any order).
_CONNECT_ATTEMPTS = 5

routes = web.RouteTableDef()


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    """200 ``{"status": "ok"}`` when Redis answers a PING; 503 ``unavailable`` when it does not."""
    try:
        await request.app[store_key].ping()
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
        raise ServiceUnavailable("Redis is unreachable") from None
    return web.json_response({"status": "ok", "redis": "ok"})


def create_app(settings: BackendSettings, *, redis: aioredis.Redis | None = None) -> web.Application:
    """Build the backend application.

    :param settings: the backend's settings; ``addr_domains`` / ``user_domains`` are the parents
        it serves and ``redis.prefix`` prefixes every key it writes.
    :param redis: a client to use instead of connecting to ``settings.redis.url``. The caller then
        owns it and closes it; otherwise the app opens its own client at start-up and closes it on
        cleanup. ``settings.redis.url`` of ``None`` (the embedded Redis) needs this argument: the
        process that starts the embedded server passes a client or a URL.
    """
    domains = Domains(settings.addr_domains, settings.user_domains)
    app = web.Application(
        middlewares=[cors_middleware(), error_middleware],
        client_max_size=CLIENT_MAX_SIZE,
    )
    app[settings_key] = settings
    app[domains_key] = domains
    if redis is None:
        if settings.redis.url is None:
            raise ConfigError("the backend needs REDIS_URL (or a Redis client passed to create_app)")
        # from_url connects lazily; the cleanup context checks the connection and closes it.
        redis = aioredis.from_url(
            settings.redis.url,
            socket_connect_timeout=_REDIS_TIMEOUT,
            socket_timeout=_REDIS_TIMEOUT,
            health_check_interval=30,
        )
        app.cleanup_ctx.append(_own_redis)
    app[redis_key] = redis
    app[store_key] = ProfileStore(redis, settings.redis.prefix)
    app.add_routes(routes)
    app.add_routes(profiles.routes)
    app.add_routes(aliases.routes)
    app.add_routes(records.routes)
    return app


async def _own_redis(app: web.Application) -> AsyncIterator[None]:
    client = app[redis_key]
    try:
        await _wait_for_redis(client)
        yield
    finally:
        await client.aclose()


async def _wait_for_redis(client: aioredis.Redis) -> None:
    for attempt in range(1, _CONNECT_ATTEMPTS + 1):
        try:
            await client.ping()
            return
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            log.warning("Redis not reachable (attempt %d of %d): %s", attempt, _CONNECT_ATTEMPTS, exc)
            if attempt == _CONNECT_ATTEMPTS:
                raise ServiceUnavailable("Redis is unreachable; is REDIS_URL right?") from exc
            await asyncio.sleep(1)
