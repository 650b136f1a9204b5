"""Rate limits and socket caps of the delivery service, kept in Redis so every process shares them.

Rate limits are token buckets as Signal-Server keeps them (``rate_limit.lua``): one hash per
(limit, subject) holding the tokens left and when they were counted, refilled by elapsed time on
Redis's clock (``TIME`` inside the script, so processes with skewed clocks agree), expiring when
full. One EVALSHA per check, atomic, so concurrent requests on many processes cannot overdraw a
bucket; the buckets one request takes at the same step (``sender`` and ``pair``) go in the same
call, all or none (on a Redis Cluster one call each, in order: their keys live on different
slots). The delivery service names each bucket by its subject's keyed tag, never the subject
itself (:mod:`delivery.at_rest`). The limits (their defaults in :class:`ensign.config.DeliveryLimits`):

==========  =====================================  ==============================================
limit       subject                                checked
==========  =====================================  ==============================================
``sender``  the sender's address                   each submission, after its signature verifies,
                                                   in the queue insert's call (one server)
``pair``    ``<sender>><receiver>`` addresses      each submission, with ``sender``
``address`` the client address (IPv6: its /64)     each request without a session, each socket
                                                   handshake
``login``   the client address                     ``GET``/``POST /auth/<name>``, ``POST /profile``
==========  =====================================  ==============================================

A refused check raises :class:`delivery.errors.RateLimited` (429, ``Retry-After``, ``details.limit``).

Socket caps (``socket_slot.lua``) are leases in a zset per account and per client address: a
socket takes a slot at its handshake and frees it when it closes; the process renews its sockets'
leases every :data:`SOCKET_LEASE_SECONDS` / 3, so the slots of a process that died expire.

Both fail closed: when Redis is unreachable the request gets 503 (as every route that needs Redis).
"""

from __future__ import annotations

import functools
import ipaddress
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from redis.asyncio import RedisCluster

from ensign.config import RateLimit
from ensign.redis_client import RedisClient, lua_script

from .at_rest import AtRest
from .batching import ScriptBatcher
from .errors import RateLimited, TooManySockets
from .keys import rate_key, socket_key

__all__ = [
    "SOCKET_LEASE_SECONDS",
    "BucketTakes",
    "RateLimiter",
    "SocketSlots",
    "client_address",
    "pair_subject",
    "with_rate_buckets",
]

SOCKET_LEASE_SECONDS = 300

_RATE_LIMIT_LUA = lua_script("delivery.lua", "rate_limit")
_SOCKET_SLOT_LUA = lua_script("delivery.lua", "socket_slot")
_SOCKET_RENEW_LUA = lua_script("delivery.lua", "socket_renew")


def pair_subject(sender: str, receiver: str) -> str:
    """The subject of the ``pair`` limit."""
    return f"{sender}>{receiver}"


class RateLimiter:
    """Token buckets in Redis (module docstring).

    :param redis: single server or cluster; each bucket is its own key (own hash tag).
    :param prefix: the service's key prefix.
    :param at_rest: when given, buckets are named by the subject's keyed tag
        (:meth:`delivery.at_rest.AtRest.subject`), so no key names a sender, pair or client
        address; ``None`` (default) names them by the subject itself.
    :param batcher: the script batcher to send takes through, shared with the queue's inserts
        (the caller closes it); default: one of its own, closed by :meth:`aclose`.
    """

    def __init__(
        self, redis: RedisClient, *, prefix: str, at_rest: AtRest | None = None, batcher: ScriptBatcher | None = None
    ) -> None:
        self._prefix = prefix
        self._at_rest = at_rest
        self._cluster = isinstance(redis, RedisCluster)
        self._script = redis.register_script(_RATE_LIMIT_LUA)
        # Every submission takes up to three buckets in two calls: concurrent requests' takes are
        # pipelined, as their inserts are, instead of each paying a round trip's redis-py overhead alone.
        self._owns_batcher = batcher is None
        self._batcher = ScriptBatcher(redis) if batcher is None else batcher

    async def aclose(self) -> None:
        """Close the limiter's own script batcher (one passed in stays the caller's)."""
        if self._owns_batcher:
            await self._batcher.aclose()

    def _tag(self, subject: str) -> str:
        return subject if self._at_rest is None else self._at_rest.subject(subject)

    async def take(self, name: str, limit: RateLimit | None, subject: str, cost: int = 1) -> None:
        """Take ``cost`` tokens from ``subject``'s ``name`` bucket; ``limit=None`` (off) passes.

        :raises RateLimited: the bucket holds fewer than ``cost`` tokens; nothing was taken.
        """
        await self.take_all([(name, limit, subject)], cost)

    async def take_all(self, buckets: Sequence[tuple[str, RateLimit | None, str]], cost: int = 1) -> None:
        """Take ``cost`` tokens from each ``(name, limit, subject)`` bucket, all or none, in one call.

        Buckets whose limit is ``None`` (off) are skipped. On a Redis Cluster the buckets are taken
        one call each, in order, and a refusal leaves the ones before it taken.

        :raises RateLimited: naming the first bucket that holds fewer than ``cost`` tokens.
        """
        takes = self.takes(buckets, cost)
        if not takes.keys:
            return
        if self._cluster and len(takes.keys) > 1:
            for name, limit, subject in buckets:
                await self.take(name, limit, subject, cost)
            return
        takes.check(await self._batcher.call(self._script, keys=takes.keys, args=takes.args))

    def takes(self, buckets: Sequence[tuple[str, RateLimit | None, str]], cost: int = 1) -> BucketTakes:
        """The buckets of :meth:`take_all` as one script's keys and arguments (limits off left out)."""
        active: list[tuple[str, RateLimit]] = []
        keys: list[str] = []
        args: list[object] = []
        for name, limit, subject in buckets:
            if limit is None:
                continue
            active.append((name, limit))
            keys.append(rate_key(self._prefix, name, self._tag(subject)))
            args += [limit.capacity, limit.per_second / 1000, cost]
        return BucketTakes(active, keys, args)

    async def takes_for_write(
        self, buckets: Sequence[tuple[str, RateLimit | None, str]], cost: int = 1
    ) -> BucketTakes | None:
        """The buckets to take inside a write's own script call (:func:`with_rate_buckets`), on
        one Redis server; on a cluster, where their keys hash to other slots than the write's,
        they are taken now (:meth:`take_all`) and ``None`` is answered.

        :raises RateLimited: on a cluster, as :meth:`take_all`.
        """
        if self._cluster:
            await self.take_all(buckets, cost)
            return None
        return self.takes(buckets, cost)


@dataclass(frozen=True)
class BucketTakes:
    """Rate buckets to take in one script call (:meth:`RateLimiter.takes`): their keys, their
    arguments (three each, as ``rate_limit.lua`` reads them) and what a refusal says."""

    buckets: list[tuple[str, RateLimit]]
    keys: list[str]
    args: list[object]

    def check(self, reply: Any) -> None:
        """Raise the refusal ``rate_limit.lua``'s ``reply`` (``{allowed, retry_ms, index}``) holds.

        :raises RateLimited: naming the bucket that refused, with ``Retry-After`` in whole seconds.
        """
        allowed, retry_ms, index = reply
        if int(allowed) == 1:
            return
        name, limit = self.buckets[int(index) - 1]
        retry_after = max(1, -(-int(retry_ms) // 1000))
        raise RateLimited(
            f"too many requests ({name} limit: {limit.capacity} per {limit.period} s); retry after {retry_after} s",
            details={"limit": name, "capacity": limit.capacity, "period": limit.period},
            retry_after=retry_after,
        )


def with_rate_buckets(lua: str) -> str:
    """The script ``lua`` run in the same call after rate buckets were taken: one round trip for a
    write and the limits it counts against (one Redis server: :meth:`RateLimiter.takes_for_write`).

    KEYS are the buckets' keys, then ``lua``'s own; ARGV the number of buckets, their arguments
    (:attr:`BucketTakes.args`), then ``lua``'s own. When a bucket refuses, nothing is taken,
    ``lua`` does not run and the answer is ``rate_limit.lua``'s refusal, ``{0, retry_ms, i}``;
    otherwise the tokens are taken and the answer is ``lua``'s. Both scripts run unchanged, each as
    a function of its own KEYS and ARGV.
    """
    return f"""local function take(KEYS, ARGV)
{_RATE_LIMIT_LUA}
end
local function run(KEYS, ARGV)
{lua}
end
local n = tonumber(ARGV[1])
local bucketKeys, bucketArgs, keys, args = {{}}, {{}}, {{}}, {{}}
for i = 1, #KEYS do
    if i <= n then bucketKeys[i] = KEYS[i] else keys[i - n] = KEYS[i] end
end
for i = 2, #ARGV do
    if i <= 1 + 3 * n then bucketArgs[i - 1] = ARGV[i] else args[i - 1 - 3 * n] = ARGV[i] end
end
if n > 0 then
    local taken = take(bucketKeys, bucketArgs)
    if taken[1] ~= 1 then
        return taken
    end
end
return run(keys, args)
"""


class SocketSlots:
    """Caps on live sockets per account and per client address (module docstring).

    :param redis: single server or cluster.
    :param prefix: the service's key prefix.
    :param per_account: most sockets one account may hold at once.
    :param per_address: most sockets one client address may hold at once.
    :param at_rest: when given, a client address's set is named by its keyed tag
        (:meth:`delivery.at_rest.AtRest.subject`), not the address.
    """

    def __init__(
        self, redis: RedisClient, *, prefix: str, per_account: int, per_address: int, at_rest: AtRest | None = None
    ) -> None:
        self._prefix = prefix
        self._at_rest = at_rest
        self._redis = redis
        self._caps = {"account": per_account, "address": per_address}
        self._take = redis.register_script(_SOCKET_SLOT_LUA)
        self._renew = redis.register_script(_SOCKET_RENEW_LUA)
        # Socket ids are unique per process only; this makes them unique across processes.
        self._process = f"{os.getpid()}.{secrets.token_hex(4)}"
        #: This process's sockets: member -> [(kind, subject), …] it holds a slot in.
        self._held: dict[str, list[tuple[str, str]]] = {}

    def _member(self, sid: str) -> str:
        return f"{self._process}:{sid}"

    async def acquire(self, sid: str, *, account: str, address: str) -> None:
        """Take a slot for socket ``sid`` in ``account``'s and ``address``'s sets.

        :raises TooManySockets: one of them is full; no slot is held afterwards.
        """
        member = self._member(sid)
        held: list[tuple[str, str]] = []
        self._held[member] = held
        if self._at_rest is not None:
            address = self._at_rest.subject(address)
        for kind, subject in (("account", account), ("address", address)):
            cap = self._caps[kind]
            taken = await self._take(
                keys=[socket_key(self._prefix, kind, subject)],
                args=[member, cap, SOCKET_LEASE_SECONDS * 1000],
            )
            if int(taken) != 1:
                await self.release(sid)
                raise TooManySockets(
                    f"this {kind} already holds {cap} sockets, its limit",
                    details={"limit": f"sockets_per_{kind}", "max": cap},
                )
            held.append((kind, subject))

    async def release(self, sid: str) -> None:
        """Free ``sid``'s slots (nothing when it holds none)."""
        member = self._member(sid)
        for kind, subject in self._held.pop(member, []):
            await self._redis.zrem(socket_key(self._prefix, kind, subject), member)

    async def renew(self) -> int:
        """Renew the leases of every socket this process holds; returns how many were renewed."""
        by_key: dict[str, list[str]] = {}
        for member, held in self._held.items():
            for kind, subject in held:
                by_key.setdefault(socket_key(self._prefix, kind, subject), []).append(member)
        renewed = 0
        for key, members in by_key.items():
            renewed += int(await self._renew(keys=[key], args=[SOCKET_LEASE_SECONDS * 1000, *members]))
        return renewed


def client_address(request: web.Request, trusted_proxies: tuple[str, ...]) -> str:
    """The address a per-client limit is kept for.

    The peer address, unless the peer is one of ``trusted_proxies`` (addresses or networks): then
    the right-most ``X-Forwarded-For`` entry that is not a trusted proxy (entries further left are
    written by the client and could be anything). IPv6 addresses count by their /64, since one
    host commonly holds a whole /64.
    """
    networks = _networks(trusted_proxies)
    chosen = _parse(request.remote)
    if chosen is not None and networks and _within(chosen, networks):
        forwarded = [part.strip() for header in request.headers.getall("X-Forwarded-For", []) for part in header.split(",")]
        for raw in reversed(forwarded):
            hop = _parse(raw)
            if hop is None:
                break
            chosen = hop
            if not _within(hop, networks):
                break
    if chosen is None:
        return request.remote or "unknown"
    if isinstance(chosen, ipaddress.IPv6Address):
        if chosen.ipv4_mapped is not None:
            return str(chosen.ipv4_mapped)
        return str(ipaddress.IPv6Network((chosen, 64), strict=False))
    return str(chosen)


@functools.lru_cache(maxsize=8)
def _networks(trusted_proxies: tuple[str, ...]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    # Parsed once per setting, not per request (the setting was validated by ensign.config).
    return [ipaddress.ip_network(item, strict=False) for item in trusted_proxies]


_LONGEST_CACHED_ADDRESS = 64  # an IPv6 address with a zone is shorter


def _parse(raw: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not raw:
        return None
    if len(raw) > _LONGEST_CACHED_ADDRESS:  # parsed without the cache: its keys stay short
        return _parsed.__wrapped__(raw)
    return _parsed(raw)


@functools.lru_cache(maxsize=8192)
def _parsed(raw: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    # Every request without a session parses its peer's address; clients come again and again.
    # Address objects are immutable, so one may serve every request of its client.
    try:
        return ipaddress.ip_address(raw.strip())
    except ValueError:
        return None


def _within(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network],
) -> bool:
    return any(address.version == net.version and address in net for net in networks)
