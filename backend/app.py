"""The profile backend's aiohttp application: the one source of truth for profiles and names.

``create_app(settings, redis=…, clock=…)`` builds the service used in production and in tests (like
the delivery service and the gateway: settings, optional clients it otherwise opens and closes in a
cleanup context, typed keys in :mod:`backend.appkeys`, an injected clock); ``specs/backend.md``
documents every route. Routes live in one module per concept:

* :mod:`backend.profiles` — register a profile (``POST /profile/address``) and read profiles/names;
* :mod:`backend.aliases`  — claim and release aliases (``POST /profile/name``, ``/profile/deleteName``);
* :mod:`backend.records`  — the gateway's feed ``GET /records/{name}``;
* :mod:`backend.storage_auth` — logging in to the user's storage (``/auth``, dm3's sign-up);
* :mod:`backend.documents` — signed documents and read grants (``/storage/docs``, ``/storage/grants``);
* :mod:`backend.conversations` — dm3's conversation storage (``/storage/new/{ensName}/…``);
* :mod:`backend.blobs` — content-addressed blobs, streamed (``/storage/blobs``);
* ``GET /health`` here — 200 when Redis answers, 503 otherwise.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from functools import partial

from aiohttp import web
from aiohttp.typedefs import Handler

from backend import aliases, blobs, conversations, documents, profiles, records, revocations, storage_auth
from backend.appkeys import (
    blobs_key,
    clock_key,
    conversations_key,
    documents_key,
    domains_key,
    redis_key,
    sessions_key,
    settings_key,
    store_key,
    wallets_key,
)
from backend.blobstore import BlobStore
from backend.convstore import ConversationStore
from backend.docstore import DocumentStore
from backend.keys import challenge_key
from backend.names import Domains
from backend.store import ProfileStore
from ensign.clock import Clock, system_clock
from ensign.config import BackendSettings, ConfigError
from ensign.ens.wallets import WalletSignatures
from ensign.errors import ServiceUnavailable
from ensign.metrics import ServiceMetrics, add_metrics
from ensign.redis_client import REDIS_UNAVAILABLE, RedisClient, open_redis
from ensign.sessions import Sessions
from ensign.web import cors_middleware, deadline_middleware, error_middleware, request_log_middleware

__all__ = ["create_app", "PROFILE_MAX_SIZE", "health"]

log = logging.getLogger(__name__)

#: Largest request body of the profile and alias routes, bytes (a signed profile is under 1 KiB).
#: The storage routes (``/storage/…``) take up to ``settings.storage.max_request``.
PROFILE_MAX_SIZE = 64 * 1024

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
    settings: BackendSettings,
    *,
    redis: RedisClient | None = None,
    wallets: WalletSignatures | None = None,
    clock: Clock = system_clock,
) -> web.Application:
    """Build the backend application.

    :param settings: the backend's settings; ``addr_domains`` / ``user_domains`` are the parents
        it serves and ``redis.prefix`` prefixes every key it writes.
    :param redis: a client (single server or cluster) to use instead of connecting to
        ``settings.redis``. The caller then owns it and closes it; otherwise the app opens its own
        client at start-up with :func:`ensign.redis_client.open_redis` (``REDIS_CLUSTER`` picks
        the kind) and closes it on cleanup. ``settings.redis.url`` of ``None`` (the embedded Redis)
        needs this argument: the process that starts the embedded server passes a client or a URL.
    :param wallets: the check of a profile's wallet signature (:mod:`ensign.ens.wallets`: the
        address's key, or its contract through EIP-1271). The caller then owns its chain
        connection; otherwise the app opens one at start-up on ``settings.chain.rpc_url``
        (``ETH_RPC_URL``) and closes it on cleanup, and without that URL accepts only signatures
        of an address's own key.
    :param clock: seconds since the epoch (claim time windows, profile times, storage sessions,
        grants and stored times); default the wall clock.

    The largest request body is ``settings.storage.max_request`` (a dm3 message batch) on the
    storage routes; every other route keeps :data:`PROFILE_MAX_SIZE`.
    """
    domains = Domains(settings.addr_domains, settings.user_domains)
    # GET /metrics: ensign_backend_request_seconds{method,route,status}.
    metrics = ServiceMetrics("ensign_backend")
    app = web.Application(
        middlewares=[
            request_log_middleware(metrics.observe_request),
            cors_middleware(),
            error_middleware,
            _body_limit,
            deadline_middleware(settings.http.request_timeout),
        ],
        client_max_size=settings.storage.max_request,
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
    if wallets is not None:
        app[wallets_key] = wallets
    elif settings.chain.rpc_url is not None:
        app.cleanup_ctx.append(_own_chain)
    else:
        app[wallets_key] = WalletSignatures()
    app.add_routes(routes)
    add_metrics(app, metrics, port=settings.http.metrics_port, host=settings.http.metrics_host)
    app.add_routes(profiles.routes)
    app.add_routes(aliases.routes)
    app.add_routes(records.routes)
    app.add_routes(revocations.routes)
    app.add_routes(storage_auth.routes)
    app.add_routes(documents.routes)
    app.add_routes(conversations.routes)
    app.add_routes(blobs.routes)
    return app


@web.middleware
async def _body_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Only the storage routes take large bodies; every other route keeps the small limit."""
    if not request.path.startswith("/storage/"):
        request = request.clone(client_max_size=PROFILE_MAX_SIZE)
    return await handler(request)


def _use_redis(app: web.Application, redis: RedisClient) -> None:
    settings = app[settings_key]
    prefix = settings.redis.prefix
    app[redis_key] = redis
    app[store_key] = ProfileStore(redis, prefix)
    app[documents_key] = DocumentStore(redis, prefix)
    app[conversations_key] = ConversationStore(redis, prefix)
    app[blobs_key] = BlobStore(redis, prefix)
    secret = settings.storage.jwt_secret
    if secret is None:
        log.warning("BACKEND_JWT_SECRET is not set: storage sessions end when this process stops")
        secret = secrets.token_hex(32)
    app[sessions_key] = Sessions(
        redis, challenge_key=partial(challenge_key, prefix), secret=secret, clock=app[clock_key]
    )


async def _own_chain(app: web.Application) -> AsyncIterator[None]:
    from ensign.ens.lookup import open_lookup

    lookup = await open_lookup(app[settings_key].chain)
    try:
        app[wallets_key] = lookup.wallets
        yield
    finally:
        await lookup.close()


async def _own_redis(app: web.Application) -> AsyncIterator[None]:
    client = await open_redis(app[settings_key].redis)
    try:
        _use_redis(app, client)
        yield
    finally:
        await client.aclose()
