"""Running one service in production: ``ensign backend``, ``ensign resolver``, ``ensign delivery``.

Each command reads its settings from the environment (:mod:`ensign.config`), builds the service's
app with the production factory, and serves it until SIGTERM or SIGINT:

1. settings — a missing or malformed variable raises :class:`~ensign.config.ConfigError`;
2. required outside services — production never starts the embedded Redis or chain, so a
   service that needs Redis refuses to start without ``REDIS_URL`` (``ETH_RPC_URL`` likewise);
3. start-up — the app's cleanup contexts connect (:func:`ensign.redis_client.open_redis`, a
   single server or a Redis Cluster as ``REDIS_CLUSTER`` says, with a few retries, since
   containers start in any order); a signal during start-up stops it at once;
4. serving — until the first SIGTERM or SIGINT;
5. graceful stop — the listening socket closes, requests in flight get up to
   :data:`SHUTDOWN_TIMEOUT` seconds, then shutdown and cleanup hooks close every connection.

URLs from the environment may carry credentials (a Redis password, an RPC provider's API key),
so no message here repeats them: errors name the variable instead.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AsyncExitStack, suppress
from typing import Any, TypeVar

import uvloop
from aiohttp import web

from ensign.config import (
    BackendSettings,
    ChainSettings,
    ConfigError,
    DeliverySettings,
    GatewaySettings,
    HttpSettings,
    RedisSettings,
)
from ensign.errors import ServiceUnavailable
from ensign.redis_client import open_redis

__all__ = [
    "SHUTDOWN_TIMEOUT",
    "GC_THRESHOLDS",
    "RECURSION_LIMIT",
    "restore_recursion_limit",
    "runner_options",
    "require_redis",
    "require_chain",
    "serve",
    "run",
    "backend_app",
    "gateway_app",
    "delivery_app",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds requests in flight get to finish after a stop signal. Docker sends SIGKILL 10 s after
#: SIGTERM by default; compose.yaml gives the services a longer grace period than this.
SHUTDOWN_TIMEOUT = 10.0

# How often start-up tries to reach the node (Redis: ensign.redis_client.open_redis).
_CONNECT_ATTEMPTS = 5
_ATTEMPT_TIMEOUT = 10.0

AppSource = web.Application | Callable[[], Awaitable[web.Application]]

#: The collector's thresholds while a service serves (Python's default is (700, 10, 10)). The
#: young generation is collected when tracked objects allocated minus those freed pass the first
#: number. Requests in flight hold thousands of tracked objects (coroutines, futures, headers) that
#: are alive at every collection, so at 700 each young collection walked them all again (0.4 ms,
#: once per ~35 submissions), promoted them, and every 100th became a full collection of what
#: start-up did not freeze (12 ms): 3.4 % of the delivery service's CPU. Submissions make no
#: cyclic garbage (none was found with gc.DEBUG_SAVEALL under the bench's closed loop), so the
#: count seldom reaches 10,000: 0.6 % of the CPU in all, and cyclic garbage, should a request make
#: any, is still collected after at most 10,000 objects.
GC_THRESHOLDS = (10_000, 10, 10)

#: The recursion limit services run with: Python's default. py_ecc (imported by eth-account and
#: web3) raises it to 100,000 at import, beyond what the C stack holds, so recursion that should
#: end in a RecursionError (the C JSON parser on ``[[[[…``) overflowed the stack and killed the
#: process with SIGSEGV instead. JSON input is depth-checked before parsing anyway
#: (ensign.protocol.safe_json); this keeps every other recursion an exception, not a crash.
RECURSION_LIMIT = 1000


def restore_recursion_limit(limit: int = RECURSION_LIMIT) -> None:
    """Import eth-account now (so no later lazy import raises the limit again), then set ``limit``."""
    import eth_account  # noqa: F401 - imported for its side effect on the recursion limit

    sys.setrecursionlimit(limit)


def require_redis(settings: RedisSettings, service: str) -> str:
    """``settings.url``, or a :class:`ConfigError` saying production needs ``REDIS_URL``."""
    if settings.url is None:
        raise ConfigError(
            f"REDIS_URL is required for `ensign {service}`: production services never start an embedded "
            "Redis (`ensign dev` does)"
        )
    return settings.url


def require_chain(settings: ChainSettings, service: str) -> str:
    """``settings.rpc_url``, or a :class:`ConfigError` saying production needs ``ETH_RPC_URL``."""
    if settings.rpc_url is None:
        raise ConfigError(
            f"ETH_RPC_URL is required for `ensign {service}`: production services never start the embedded "
            "chain (`ensign dev` does)"
        )
    return settings.rpc_url


async def _retry(what: str, call: Callable[[], Awaitable[object]], errors: tuple[type[BaseException], ...]) -> None:
    retried: tuple[type[BaseException], ...] = (*errors, asyncio.TimeoutError)
    for attempt in range(1, _CONNECT_ATTEMPTS + 1):
        try:
            # A host that drops packets would otherwise hold each attempt for the client's own timeout.
            await asyncio.wait_for(call(), _ATTEMPT_TIMEOUT)
            return
        except retried as exc:
            # The exception's text may hold the host but never the URL's password.
            log.warning("%s not reachable (attempt %d of %d): %s", what, attempt, _CONNECT_ATTEMPTS, type(exc).__name__)
            if attempt == _CONNECT_ATTEMPTS:
                raise ServiceUnavailable(f"{what} cannot be reached; is it running and the variable right?") from exc
            await asyncio.sleep(1)


# -- the three services -------------------------------------------------------------------------


def backend_app(settings: BackendSettings) -> web.Application:
    """The profile backend as production runs it: its own Redis client on ``REDIS_URL``."""
    from backend.app import create_app

    require_redis(settings.redis, "backend")
    return create_app(settings)


def gateway_app(settings: GatewaySettings) -> web.Application:
    """The CCIP-Read gateway as production runs it: records from ``BACKEND_URL``, no batch gateway
    (ENSIP-21 batches are answered by ENS's public batch gateway, not by ours)."""
    from resolver.gateway import create_app

    return create_app(settings)


def delivery_app(settings: DeliverySettings, *, metrics_dir: str | None = None) -> Callable[[], Awaitable[web.Application]]:
    """The delivery service as production runs it, built when awaited inside the serving loop.

    It opens a Redis client on ``REDIS_URL`` and an ENS lookup plus chain reads on
    ``ETH_RPC_URL`` (web3 with the safe CCIP-Read policy: https gateways on public hosts only),
    and closes them when the app is cleaned up. ``metrics_dir``: the workers' shared metrics
    directory (``ensign delivery --workers``, :mod:`stack.workers`).
    """
    require_redis(settings.redis, "delivery")
    require_chain(settings.chain, "delivery")

    async def build() -> web.Application:
        from delivery.app import create_app
        from delivery.ports import Web3Chain
        from ensign.ens.lookup import open_lookup

        async with AsyncExitStack() as resources:
            redis_client = await open_redis(settings.redis)
            resources.push_async_callback(redis_client.aclose)
            lookup = await open_lookup(settings.chain, revocation_domains=settings.revocation_domains)
            resources.push_async_callback(lookup.close)
            chain = Web3Chain(lookup.w3)
            await _retry("the Ethereum node (ETH_RPC_URL)", chain.block_number, (Exception,))
            app = create_app(settings, redis=redis_client, directory=lookup, chain=chain, metrics_dir=metrics_dir)
            owned = resources.pop_all()

        async def close_resources(app: web.Application) -> None:
            await owned.aclose()

        app.on_cleanup.append(close_resources)
        return app

    return build


# -- serving ------------------------------------------------------------------------------------


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run a service's coroutine to completion on a uvloop event loop.

    uvloop's loop (libuv, written in Cython) spends less CPU per socket read, write and callback
    than asyncio's own; the benchmarks measured +10–15 % submits/s from it and hiredis together.
    """
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


async def serve(
    source: AppSource,
    *,
    name: str,
    host: str,
    port: int,
    port_variable: str,
    shutdown_timeout: float = SHUTDOWN_TIMEOUT,
    reuse_port: bool = False,
    http: HttpSettings = HttpSettings(),
) -> None:
    """Serve an app on ``host:port`` until SIGTERM or SIGINT, then stop gracefully.

    :param source: the app, or an async factory awaited here (inside the serving loop, so its
        clients bind to this loop); a stop signal during the factory or the app's start-up
        cancels them and returns.
    :param name: the service's name in log lines
    :param host: interface to listen on
    :param port: TCP port; ``0`` lets the OS choose (the log line says which)
    :param port_variable: the variable ``port`` came from, named if the port is taken
    :param shutdown_timeout: seconds requests in flight get after the signal (default 10)
    :param reuse_port: listen with ``SO_REUSEPORT``, so several worker processes share the port
        and the kernel spreads connections over them
    :param http: connection timeouts (:func:`runner_options`)
    """
    restore_recursion_limit()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    try:
        if isinstance(source, web.Application):
            app: web.Application | None = source
        else:
            app = await _unless_stopped(source(), stop)
        if app is None:
            log.info("%s stopped during start-up", name)
            return
        runner = web.AppRunner(
            app,
            # Each app logs its requests itself (ensign.web.request_log_middleware), with ids.
            access_log=None,
            shutdown_timeout=shutdown_timeout,
            **runner_options(http),
        )
        try:
            if await _unless_stopped(_start(runner, host, port, port_variable, reuse_port), stop) is None:
                log.info("%s stopped during start-up", name)
                return
            address = runner.addresses[0]
            log.info("%s listening on http://%s:%d", name, host, int(address[1]))
            # What start-up built (modules, app, clients) lives until the process ends: moved out
            # of the collector's generations, full collections under load no longer walk it. They
            # took 60-75 ms each, every few seconds, and set the latency tail.
            gc.collect()
            gc.freeze()
            gc.set_threshold(*GC_THRESHOLDS)
            await stop.wait()
            log.info("%s stopping: finishing requests in flight (at most %.0f s)", name, shutdown_timeout)
        finally:
            # Also after a failed or interrupted start-up: cleanup contexts that did start are closed.
            await runner.cleanup()
        log.info("%s stopped", name)
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)


def runner_options(http: HttpSettings) -> dict[str, Any]:
    """aiohttp server options every service runs with.

    ``keepalive_timeout`` closes a connection idle for that long, and one still sending its
    request headers (aiohttp arms the same timer when a connection opens); aiohttp's default is an
    hour, so idle or slow clients could hold sockets and memory that long. The request deadline
    (body included) is :func:`ensign.web.deadline_middleware`, added by each app.
    """
    return {"keepalive_timeout": float(http.keepalive_timeout)}


async def _start(runner: web.AppRunner, host: str, port: int, port_variable: str, reuse_port: bool) -> bool:
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None)
    try:
        await site.start()
    except OSError as error:
        raise ConfigError(f"cannot listen on {host}:{port} ({error.strerror}); set {port_variable} to a free port") from None
    return True


async def _unless_stopped(work: Awaitable[T], stop: asyncio.Event) -> T | None:
    """The result of ``work``, or ``None`` after cancelling it if ``stop`` is set first."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task
    return None
