"""The one way Ensign opens a Redis client: :func:`open_redis`, for a single server or a Redis Cluster.

``RedisSettings.cluster`` (``REDIS_CLUSTER``) picks the client class; everything else about the
connection comes from the URL. Both clients speak the same commands, so the services take a
:data:`RedisClient` and never ask which one they hold. What the cluster needs from them lives in
their key layouts: every key an atomic operation (a Lua script) touches carries one hash tag, so
the keys share a slot (``backend/keys.py``, ``delivery/keys.py``).

Pub/sub works unchanged on a cluster: ``PUBLISH`` reaches the subscribers on every node, so a
``SUBSCRIBE`` or ``PSUBSCRIBE`` sent to any one node hears the channel wherever it is published.

The returned client has connected: a single server answered ``PING``; a cluster client has read
the slot map from a node and every primary answered ``PING``. Until it has read the slot map, a
cluster client's ``pubsub()`` cannot pick a node (redis-py raises ``KeyError``), which is one
reason the client is opened here, awaited, rather than built lazily in each app factory.

URLs may carry a password, so no message or log line here repeats one: they name ``REDIS_URL``.

:func:`lua_script` reads a service's Lua scripts, which live in a ``lua`` package of the service
(so wheels ship them) and are registered with redis-py ``register_script``.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import logging
from typing import Any, TypeAlias

import redis.exceptions
from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster

from ensign.config import ConfigError, RedisSettings
from ensign.errors import ServiceUnavailable

__all__ = [
    "RedisClient",
    "REDIS_UNAVAILABLE",
    "redis_unavailable",
    "CONNECT_ATTEMPTS",
    "RETRY_DELAY",
    "REDIS_TIMEOUT",
    "REDIS_MAX_CONNECTIONS",
    "lua_script",
    "open_redis",
]

log = logging.getLogger(__name__)

#: A client of a single Redis server or of a Redis Cluster, as :func:`open_redis` returns it.
RedisClient: TypeAlias = Redis | RedisCluster

#: What a client raises when Redis cannot serve now, which the services answer with 503: no
#: connection (or a server still loading its data), a timeout, a cluster that is down or leaves a
#: slot uncovered (a primary without a replica has failed), a server demoted to replica by a
#: failover (READONLY) or a slot in migration (TRYAGAIN). Any other error is a bug, answered with 500.
REDIS_UNAVAILABLE: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.SlotNotCoveredError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.TryAgainError,
)



def redis_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means Redis cannot answer now (a 503 with ``Retry-After``), not a bug of ours.

    That is :data:`REDIS_UNAVAILABLE`, and one more: redis-py's asyncio cluster client raises an
    ``AttributeError`` (``'NoneType' object has no attribute 'writelines'``) from inside itself when
    a node's connection is torn down under a command during a failover. The fault suite's
    primary-killed run met it through ordinary commands; it is raised by redis-py's own frames,
    which is what is checked, so an ``AttributeError`` of our code still counts as a bug.
    """
    if isinstance(exc, REDIS_UNAVAILABLE):
        return True
    if not isinstance(exc, AttributeError) or exc.__traceback__ is None:
        return False
    innermost = exc.__traceback__
    while innermost.tb_next is not None:
        innermost = innermost.tb_next
    module = str(innermost.tb_frame.f_globals.get("__name__", ""))
    return module.startswith("redis.asyncio.")


#: How often :func:`open_redis` tries to connect (containers start in any order).
CONNECT_ATTEMPTS = 5

#: Seconds between two connection attempts.
RETRY_DELAY = 1.0

#: Seconds before a Redis call gives up: a stalled Redis then fails the request (503) instead of
#: hanging it. Also the limit for establishing a connection.
REDIS_TIMEOUT = 5.0

#: Connections one single-server client opens at most; more concurrent commands wait for a free one.
REDIS_MAX_CONNECTIONS = 100

# Seconds one connection attempt may take as a whole: a cluster client talks to several nodes.
_ATTEMPT_TIMEOUT = 10.0

# RedisClusterException is no RedisError: it says no start-up node gave a full slot map.
_RETRIED: tuple[type[BaseException], ...] = (
    redis.exceptions.RedisError,
    redis.exceptions.RedisClusterException,
    OSError,
    asyncio.TimeoutError,
)


async def open_redis(settings: RedisSettings, *, attempts: int | None = None, **options: Any) -> RedisClient:
    """A connected client for ``settings.url``; the caller closes it with ``await client.aclose()``.

    :param settings: ``url`` (required: the embedded Redis is started by its owner, which passes
        its URL in) and ``cluster`` (a :class:`~redis.asyncio.RedisCluster` when true, a
        :class:`~redis.asyncio.Redis` otherwise).
    :param attempts: connection attempts, :data:`RETRY_DELAY` seconds apart, each logged when it
        fails; default :data:`CONNECT_ATTEMPTS`.
    :param options: passed to the client class, overriding the defaults: connect and command
        timeouts of :data:`REDIS_TIMEOUT` seconds, a health check on connections idle for 30 s.
    :raises ConfigError: ``settings.url`` is ``None``.
    :raises ServiceUnavailable: no attempt reached Redis (or, for a cluster, every primary).
    """
    if settings.url is None:
        raise ConfigError("REDIS_URL is required to open a Redis client")
    url = settings.url
    options = {
        "socket_connect_timeout": REDIS_TIMEOUT,
        "socket_timeout": REDIS_TIMEOUT,
        "health_check_interval": 30,
        **options,
    }
    total = max(1, CONNECT_ATTEMPTS if attempts is None else attempts)
    kind = "Redis Cluster" if settings.cluster else "Redis"
    attempt = 0
    while True:
        attempt += 1
        # A fresh client per attempt: a cluster client that failed to read the slot map has
        # closed its node connections and is not reused.
        client: RedisClient = RedisCluster.from_url(url, **options) if settings.cluster else _single(url, options)
        try:
            await asyncio.wait_for(_connect(client), _ATTEMPT_TIMEOUT)
            return client
        except _RETRIED as exc:
            await client.aclose()
            # The exception's text may name the host, never the URL's password.
            log.warning("%s not reachable (attempt %d of %d): %s: %s", kind, attempt, total, type(exc).__name__, exc)
            if attempt == total:
                raise ServiceUnavailable(f"{kind} is unreachable; is it running and REDIS_URL right?") from exc
            await asyncio.sleep(RETRY_DELAY)
        except BaseException:
            await client.aclose()
            raise


def _single(url: str, options: dict[str, Any]) -> Redis:
    # A blocking pool: past REDIS_MAX_CONNECTIONS busy connections a command waits (up to
    # REDIS_TIMEOUT) for a free one. redis-py's default pool raises "Too many connections" at once,
    # so a burst of 400 requests got 300 answers of 503 while Redis was idle.
    pool = BlockingConnectionPool.from_url(
        url, **{"max_connections": REDIS_MAX_CONNECTIONS, "timeout": REDIS_TIMEOUT, **options}
    )
    return Redis.from_pool(pool)


async def _connect(client: RedisClient) -> None:
    if isinstance(client, RedisCluster):
        await client.initialize()
    # On a cluster client PING goes to every node and is true only when all of them answer.
    if not await client.ping():
        raise redis.exceptions.ConnectionError("PING was not answered with PONG")


def lua_script(package: str, name: str) -> str:
    """The text of ``<name>.lua`` in the Python package ``package`` (``"delivery.lua"``, ``"backend.lua"``).

    Each script's header says what it does and returns, then one line per ``KEYS[i]`` / ``ARGV[i]``.
    """
    return importlib.resources.files(package).joinpath(f"{name}.lua").read_text(encoding="utf-8")
