"""The profile backend's aiohttp application: the one source of truth for profiles and names.

``create_app(settings, redis=…, clock=…)`` builds the service used in production and in tests (like
the delivery service and the gateway: settings, optional clients it otherwise opens and closes in a
cleanup context, typed keys in :mod:`backend.appkeys`, an injected clock); ``specs/backend.md``
documents every route. Routes live in one module per concept:

* :mod:`backend.profiles` — register a profile (``POST /profile/address``) and read profiles/names;
* :mod:`backend.aliases`  — claim and release aliases (``POST /profile/name``, ``/profile/deleteName``);
* :mod:`backend.records`  — the gateway's feed ``GET /records/{name}``;
* ``GET /health`` here — 200 when Redis answers, 503 otherwise.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from backend import aliases, profiles, records
from backend.appkeys import clock_key, domains_key, redis_key, settings_key, store_key
from backend.names import Domains
from backend.store import ProfileStore
from ensign.clock import Clock, system_clock
from ensign.config import BackendSettings, ConfigError
from ensign.errors import ServiceUnavailable
from ensign.redis_client import REDIS_UNAVAILABLE, RedisClient, open_redis
from ensign.web import cors_middleware, error_middleware, request_log_middleware

__all__ = ["create_app", "CLIENT_MAX_SIZE", "health"]

#: Largest request body accepted, bytes (a signed profile is well under 1 KiB).
CLIENT_MAX_SIZE = 64 * 1024

routes = web.RouteTableDef()


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    """200 ``{"status": "ok"}`` when Redis answers a PING; 503 ``unavailable`` when it does not."""
    try:
        await request.app[store_key].ping()
    except REDIS_UNAVAILABLE:
        raise ServiceUnavailable("Redis is unreachable") from None
    return web.json_response({"status": "ok", "redis": "ok"})


def create_app(
    settings: BackendSettings, *, redis: RedisClient | None = None, clock: Clock = system_clock
) -> web.Application:
    """Build the backend application.

    :param settings: the backend's settings; ``addr_domains`` / ``user_domains`` are the parents
        it serves and ``redis.prefix`` prefixes every key it writes.
    :param redis: a client (single server or cluster) to use instead of connecting to
        ``settings.redis``. The caller then owns it and closes it; otherwise the app opens its own
        client at start-up with :func:`ensign.redis_client.open_redis` (``REDIS_CLUSTER`` picks
        the kind) and closes it on cleanup. ``settings.redis.url`` of ``None`` (the embedded Redis)
        needs this argument: the process that starts the embedded server passes a client or a URL.
    :param clock: seconds since the epoch (claim time windows, profile times); default the wall clock.
    """
    domains = Domains(settings.addr_domains, settings.user_domains)
    app = web.Application(
        middlewares=[request_log_middleware(), cors_middleware(), error_middleware],
        client_max_size=CLIENT_MAX_SIZE,
    )
    app[settings_key] = settings
    app[domains_key] = domains
    app[clock_key] = clock
    if redis is None:
        if settings.redis.url is None:
            raise ConfigError("the backend needs REDIS_URL (or a Redis client passed to create_app)")
        app.cleanup_ctx.append(_own_redis)
    else:
        _use_redis(app, redis)
    app.add_routes(routes)
    app.add_routes(profiles.routes)
    app.add_routes(aliases.routes)
    app.add_routes(records.routes)
    return app


def _use_redis(app: web.Application, redis: RedisClient) -> None:
    app[redis_key] = redis
    app[store_key] = ProfileStore(redis, app[settings_key].redis.prefix)


async def _own_redis(app: web.Application) -> AsyncIterator[None]:
    client = await open_redis(app[settings_key].redis)
    try:
        _use_redis(app, client)
        yield
    finally:
        await client.aclose()
