"""The delivery-service aiohttp application.

``create_app(settings, redis=…, directory=…, chain=…)`` builds the whole service: dm3's REST and
JSON-RPC API, account routes, socket.io push, ``/health`` and ``/metrics``. Everything it talks to
is passed in, so tests build the production app against real Redis and the embedded chain::

    app = create_app(settings, redis=redis, directory=lookup, chain=Web3Chain(w3), clock=clock)

Several processes can serve one Redis with equal settings: sessions are stateless JWTs, single-use
markers and queues live in Redis, and pushes cross processes through Redis pub/sub.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]

from ensign.config import DeliverySettings
from ensign.redis_client import RedisClient
from ensign.web import cors_middleware, error_middleware, request_log_middleware

from . import web_accounts, web_auth, web_inbox, web_ops, web_rpc
from .accounts import Accounts
from .intake import Intake
from .metrics import DeliveryMetrics
from .ports import Chain, Clock, Directory, system_clock
from .push import attach_socket_server
from .queue import MessageQueue
from .sessions import Sessions
from .state import (
    accounts_key,
    chain_key,
    clock_key,
    directory_key,
    intake_key,
    metrics_key,
    queue_key,
    redis_key,
    sessions_key,
    settings_key,
)
from .sweeper import add_sweeper_job

# The envelope arrives as a JSON string inside the JSON-RPC body, so escaping can double it; leave
# room for that and the request wrapper, and let intake apply the exact limit.
BODY_OVERHEAD = 64 * 1024


def create_app(
    settings: DeliverySettings,
    *,
    redis: RedisClient,
    directory: Directory,
    chain: Chain,
    clock: Clock = system_clock,
    sweep_interval: float | None = 60.0,
) -> web.Application:
    """Build the delivery service.

    :param settings: the service's settings (keys, JWT secret, limits, Redis prefix).
    :param redis: Redis client, single server or cluster (:func:`ensign.redis_client.open_redis`);
        the caller owns and closes it.
    :param directory: ENS lookups (``ensign.ens.lookup.NameLookup``).
    :param chain: chain reads for spam filters and ``/health`` (:class:`delivery.ports.Web3Chain`).
    :param clock: seconds since the epoch; default the wall clock.
    :param sweep_interval: seconds between expired-message sweeps; ``None`` runs no sweeper.
    """
    metrics = DeliveryMetrics()

    def observe(method: str, route: str, status: int, seconds: float) -> None:
        metrics.request_seconds.labels(method, route, str(status)).observe(seconds)

    app = web.Application(
        middlewares=[request_log_middleware(observe), cors_middleware(), error_middleware],
        client_max_size=2 * settings.message_size_limit + BODY_OVERHEAD,
    )
    prefix = settings.redis.prefix
    queue = MessageQueue(redis, prefix=prefix)
    accounts = Accounts(
        redis,
        queue,
        prefix=prefix,
        service_url=settings.url,
        size_limit=settings.message_size_limit,
        ttl_limit=settings.message_ttl,
        clock=clock,
    )
    app[settings_key] = settings
    app[redis_key] = redis
    app[directory_key] = directory
    app[chain_key] = chain
    app[clock_key] = clock
    app[queue_key] = queue
    app[metrics_key] = metrics
    app[accounts_key] = accounts
    app[sessions_key] = Sessions(redis, prefix=prefix, secret=settings.jwt_secret, clock=clock)
    app[intake_key] = Intake(
        settings, accounts=accounts, queue=queue, directory=directory, chain=chain, metrics=metrics, clock=clock
    )
    for module in (web_auth, web_accounts, web_inbox, web_rpc, web_ops):
        app.router.add_routes(module.routes)
    attach_socket_server(app)
    if sweep_interval is not None:
        interval = sweep_interval

        async def sweeper_ctx(app: web.Application) -> AsyncIterator[None]:
            scheduler = AsyncIOScheduler()
            add_sweeper_job(scheduler, queue, interval_seconds=interval, clock=clock)
            scheduler.start()
            yield
            scheduler.shutdown(wait=False)

        app.cleanup_ctx.append(sweeper_ctx)
    return app
