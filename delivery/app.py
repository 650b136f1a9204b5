"""The delivery-service aiohttp application.

``create_app(settings, redis=…, directory=…, chain=…, clock=…)`` builds the whole service: dm3's
REST and JSON-RPC API, account routes, socket.io push, ``/health`` and ``/metrics``. Everything it
talks to can be passed in, so tests build the production app against real Redis and the embedded
chain; without clients it opens its own from the settings (as the backend and the gateway do)::

    app = create_app(settings, redis=redis, directory=lookup, chain=Web3Chain(w3), clock=clock)

Several processes can serve one Redis with equal settings: sessions are stateless JWTs, single-use
markers and queues live in Redis, and pushes cross processes through Redis pub/sub.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from functools import partial

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]

from ensign.config import ConfigError, DeliverySettings
from ensign.ens.lookup import LinkPolicy, open_lookup
from ensign.metrics import add_metrics
from ensign.redis_client import RedisClient, open_redis
from ensign.sessions import Sessions
from ensign.web import cors_middleware, deadline_middleware, error_middleware, request_log_middleware

from . import web_accounts, web_auth, web_inbox, web_notifications, web_ops, web_rpc
from .accounts import Accounts
from .at_rest import AtRest
from .batching import ScriptBatcher
from .appkeys import (
    at_rest_key,
    accounts_key,
    chain_key,
    clock_key,
    directory_key,
    forwarder_key,
    forward_key,
    intake_key,
    metrics_key,
    multi_intake_key,
    batcher_key,
    queue_key,
    redis_key,
    sessions_key,
    settings_key,
)
from .forwarder import Forwarder
from .multi_forwarding import ForwardMulti
from .intake import Intake
from .multi_intake import Forward, MultiIntake, refuse_elsewhere
from .keys import challenge_key
from .limits import RateLimiter, SocketSlots
from .metrics import DeliveryMetrics
from .notifications import NotificationStore
from .notify_worker import Notifier, notifier_ctx, notifier_key
from .ports import Chain, Clock, Directory, Web3Chain, system_clock
from .push import attach_socket_server, socket_slots_key
from .queue import MessageQueue
from .sweeper import add_sweeper_job
from .web_limits import limiter_key, limits_middleware

# The envelope arrives as a JSON string inside the JSON-RPC body, so escaping can double it; leave
# room for that and the request wrapper, and let intake apply the exact limit.
BODY_OVERHEAD = 64 * 1024


def create_app(
    settings: DeliverySettings,
    *,
    redis: RedisClient | None = None,
    directory: Directory | None = None,
    chain: Chain | None = None,
    clock: Clock = system_clock,
    sweep_interval: float | None = 60.0,
    notify_worker: bool = True,
    metrics_dir: str | None = None,
    forwarder: Forwarder | None = None,
    forward: Forward | None = None,
) -> web.Application:
    """Build the delivery service.

    :param settings: the service's settings (keys, JWT secret, limits, Redis prefix, chain).
    :param redis: Redis client, single server or cluster (:func:`ensign.redis_client.open_redis`).
    :param directory: ENS lookups (``ensign.ens.lookup.NameLookup``).
    :param chain: chain reads for spam filters and ``/health`` (:class:`delivery.ports.Web3Chain`).
    :param clock: seconds since the epoch; default the wall clock, and then message expiry and
        receive times follow Redis's clock instead (:mod:`delivery.queue`), so processes with
        skewed clocks agree; a test's own clock is used for them too.
    :param sweep_interval: seconds between expired-message sweeps; ``None`` runs no sweeper.
    :param notify_worker: run the notification worker in this app (tests may drive it by hand).
    :param metrics_dir: the shared metrics directory of worker processes (``ensign delivery
        --workers``), so ``/metrics`` sums them all; ``None`` for one process.
    :param forwarder: hands envelopes on to a receiver's next delivery services and checks those
        handed here (:mod:`delivery.forwarder`); without one the app makes its own on its
        directory, with its own HTTP session closed at clean-up, calling https URLs of public hosts
        only unless the chain is the embedded one (``settings.chain.rpc_url`` unset).
    :param forward: what becomes of the receivers of a multi-recipient envelope that are hosted
        by other delivery services (:class:`delivery.multi_intake.Forward`); default: handed on
        by the forwarder (:class:`delivery.multi_forwarding.ForwardMulti`) while forwarding is on
        (``FORWARDING``), else refused with ``receiver_elsewhere``.

    Clients passed in stay the caller's to close. Without them the app opens its own at start-up
    from ``settings.redis`` and ``settings.chain`` (an ENS lookup and chain reads on
    ``ETH_RPC_URL``), in a cleanup context that closes them, as the backend and the gateway do;
    pass all three or none.
    """
    given = (redis, directory, chain)
    if any(client is None for client in given) and any(client is not None for client in given):
        raise ConfigError("pass the delivery service's redis, directory and chain together, or none of them")
    metrics = DeliveryMetrics(multiprocess_dir=metrics_dir)
    app = web.Application(
        middlewares=[
            request_log_middleware(metrics.observe_request),
            cors_middleware(),
            error_middleware,
            limits_middleware,
            # socket.io connections live as long as the client stays; they have their own pings.
            deadline_middleware(settings.http.request_timeout, exempt_prefixes=("/socket.io/",)),
        ],
        client_max_size=2 * settings.message_size_limit + BODY_OVERHEAD,
    )
    app[settings_key] = settings
    app[clock_key] = clock
    if forward is not None:
        app[forward_key] = forward
    app[metrics_key] = metrics
    if forwarder is not None:
        app[forwarder_key] = forwarder
    if redis is not None and directory is not None and chain is not None:
        _use_clients(app, redis, directory, chain)
    else:
        if settings.redis.url is None or settings.chain.rpc_url is None:
            raise ConfigError("the delivery service needs REDIS_URL and ETH_RPC_URL (or clients passed to create_app)")
        app.cleanup_ctx.append(_own_clients)
    app.on_cleanup.append(_close_queue)
    if forwarder is None:
        app.on_cleanup.append(_close_forwarder)
    app.cleanup_ctx.append(notifier_ctx(run_worker=notify_worker))
    for module in (web_auth, web_accounts, web_inbox, web_rpc, web_ops, web_notifications):
        app.router.add_routes(module.routes)
    add_metrics(app, metrics, port=settings.http.metrics_port, host=settings.http.metrics_host)
    attach_socket_server(app)
    if sweep_interval is not None:
        interval = sweep_interval

        async def sweeper_ctx(app: web.Application) -> AsyncIterator[None]:
            scheduler = AsyncIOScheduler()
            add_sweeper_job(scheduler, app[queue_key], interval_seconds=interval, clock=clock)
            scheduler.start()
            yield
            scheduler.shutdown(wait=False)

        app.cleanup_ctx.append(sweeper_ctx)
    return app


async def _close_queue(app: web.Application) -> None:
    # The queue's own per-node clients (WAIT on a cluster) and the script batcher's connection;
    # the app's clients are closed by their owner.
    if queue_key in app:
        await app[queue_key].aclose()
    if limiter_key in app:  # the tokens of requests that ended by an exception, still being taken
        await app[limiter_key].aclose()
    if batcher_key in app:
        await app[batcher_key].aclose()


async def _close_forwarder(app: web.Application) -> None:
    # Only the forwarder the app made itself; one passed in stays the caller's.
    if forwarder_key in app:
        await app[forwarder_key].aclose()


def _use_clients(app: web.Application, redis: RedisClient, directory: Directory, chain: Chain) -> None:
    """Build the service's parts on its clients."""
    settings, clock = app[settings_key], app[clock_key]
    prefix = settings.redis.prefix
    at_rest = AtRest.from_settings(settings)
    app[at_rest_key] = at_rest
    batcher = app[batcher_key] = ScriptBatcher(redis)
    queue = MessageQueue(
        redis,
        prefix=prefix,
        at_rest=at_rest,
        redis_time=clock is system_clock,
        wait_replicas=settings.redis_wait_replicas,
        wait_timeout_ms=settings.redis_wait_timeout_ms,
        batcher=batcher,
    )
    limiter = RateLimiter(redis, prefix=prefix, at_rest=at_rest, batcher=batcher)
    accounts = Accounts(
        redis,
        queue,
        prefix=prefix,
        service_url=settings.url,
        size_limit=settings.message_size_limit,
        ttl_limit=settings.message_ttl,
        clock=clock,
        queued_limit=settings.limits.max_queued_messages,
        bytes_limit=settings.limits.max_queued_bytes,
        wallet_signed=directory.wallet_signed,
        batcher=batcher,
    )
    app[redis_key] = redis
    app[directory_key] = directory
    app[chain_key] = chain
    app[queue_key] = queue
    app[accounts_key] = accounts
    app[limiter_key] = limiter
    limits = settings.limits
    app[socket_slots_key] = SocketSlots(
        redis, prefix=prefix, per_account=limits.sockets_per_account, per_address=limits.sockets_per_address,
        at_rest=at_rest,
    )
    app[sessions_key] = Sessions(
        redis, challenge_key=partial(challenge_key, prefix), secret=settings.jwt_secret, clock=clock
    )
    notifications = settings.notifications
    notifier = Notifier(
        redis,
        prefix=prefix,
        settings=notifications,
        service_name=settings.name,
        accounts=accounts,
        store=NotificationStore(redis, prefix=prefix, settings=notifications),
        metrics=app[metrics_key],
        clock=clock,
    )
    app[notifier_key] = notifier
    if forwarder_key not in app:
        # Service URLs come from ENS: only the embedded dev chain may point them at local hosts.
        embedded = settings.chain.rpc_url is None
        policy = LinkPolicy(allow_http=embedded, allow_private=embedded, timeout=settings.forwarding.timeout)
        app[forwarder_key] = Forwarder(
            settings, directory=directory, metrics=app[metrics_key], policy=policy, limiter=limiter
        )
    app[intake_key] = Intake(
        settings,
        accounts=accounts,
        queue=queue,
        directory=directory,
        chain=chain,
        metrics=app[metrics_key],
        clock=clock,
        on_notify=notifier.message_stored,
        limiter=limiter,
        forwarder=app[forwarder_key],
        log_ref=at_rest.log_ref,
    )
    if forward_key not in app:
        app[forward_key] = ForwardMulti(app[forwarder_key]) if settings.forwarding.enabled else refuse_elsewhere
    app[multi_intake_key] = MultiIntake(app[intake_key], forward=app[forward_key])


async def _own_clients(app: web.Application) -> AsyncIterator[None]:
    """Open the clients from the settings, and close them when the app is cleaned up."""
    settings = app[settings_key]
    async with AsyncExitStack() as owned:
        redis = await open_redis(settings.redis)
        owned.push_async_callback(redis.aclose)
        lookup = await open_lookup(settings.chain, revocation_domains=settings.revocation_domains)
        owned.push_async_callback(lookup.close)
        _use_clients(app, redis, lookup, Web3Chain(lookup.w3))
        yield
