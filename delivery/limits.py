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

Each process remembers what Redis last answered for a bucket (:class:`BucketMemory`, the
:data:`REMEMBERED_BUCKETS` most recent): a refusal until its ``retry_ms`` is over, so a flood is
refused without a Redis call (no bucket refills sooner), and the tokens one held after a take. On
``POST /rpc`` a submission's ``address`` token is then taken in its queue insert's call, with
``sender`` and ``pair``, instead of a call of its own before the body is read: the process lends
the client address, for the requests it has in flight, at most the tokens Redis last said its
bucket held (:meth:`RateLimiter.defer`), so no more submissions are worked on ahead of their
token than the bucket could pay for; a request that ends before its insert (refused, malformed,
any other method) takes its token then, and a refusal then is its answer. Without a loan (the
first request of an address, a bucket nearly empty, a cluster) the token is taken first, as
every other request without a session takes it.

Socket caps (``socket_slot.lua``) are leases in a zset per account and per client address: a
socket takes a slot at its handshake and frees it when it closes; the process renews its sockets'
leases every :data:`SOCKET_LEASE_SECONDS` / 3, so the slots of a process that died expire.

Both fail closed: when Redis is unreachable the request gets 503 (as every route that needs Redis).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import math
import os
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web
from redis.asyncio import RedisCluster

from ensign.background import Background
from ensign.config import RateLimit
from ensign.redis_client import RedisClient, lua_script

from .at_rest import AtRest
from .batching import ScriptBatcher
from .errors import RateLimited, TooManySockets
from .keys import rate_key, socket_key

__all__ = [
    "LENDABLE",
    "REMEMBERED_BUCKETS",
    "SOCKET_LEASE_SECONDS",
    "BucketMemory",
    "BucketTakes",
    "DeferredTake",
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


#: Buckets one process remembers Redis's last answer for (refused until, tokens left); the
#: least recently heard is forgotten first, so clients with many addresses cannot make it grow.
REMEMBERED_BUCKETS = 10_000

#: The buckets whose tokens a process lends to requests in flight (:meth:`RateLimiter.defer`).
LENDABLE = frozenset({"address"})


class BucketMemory:
    """What this process last heard from Redis about its buckets, by key (module docstring).

    It only ever answers what Redis would: a bucket refused a take of one token for ``retry_ms``
    cannot hold a token before then (tokens leave only by takes), and a bucket that held ``left``
    tokens holds at least as many until some take, here or in another process, spends them (that
    other processes may have spent them is why a loan is bounded, not exact). Tokens left are
    kept only for the buckets named in ``lendable``, the ones :meth:`RateLimiter.defer` lends: every
    submission hears its ``sender`` and ``pair`` buckets, and keeping those too would churn the
    memory for nothing.

    :param clock: monotonic seconds (``time.monotonic``); tests pass their own.
    :param size: most buckets remembered, of each kind (refused; tokens left).
    """

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, size: int = REMEMBERED_BUCKETS,
        lendable: frozenset[str] = LENDABLE,
    ) -> None:
        self._clock = clock
        self._size = size
        self.lendable = lendable
        # Least recently heard first (OrderedDict: moving and dropping an end are O(1)).
        self._refused: OrderedDict[str, float] = OrderedDict()  # key -> refused until (clock)
        self._left: OrderedDict[str, int] = OrderedDict()  # key -> whole tokens left, lendable buckets
        self._lent: dict[str, int] = {}  # key -> tokens lent to requests in flight

    def _keep(self, heard: OrderedDict[str, Any], key: str, value: Any) -> None:
        heard[key] = value
        heard.move_to_end(key)
        if len(heard) > self._size:
            heard.popitem(last=False)

    def heard_left(self, name: str, key: str, left: int) -> None:
        """A take passed; ``name``'s bucket ``key`` holds ``left`` whole tokens."""
        if self._refused:
            self._refused.pop(key, None)
        if name in self.lendable:
            self._keep(self._left, key, left)

    def heard_passed(self, buckets: Sequence[tuple[str, RateLimit, str]], keys: Sequence[str], left: Sequence[Any]) -> None:
        """A take of ``buckets`` (their ``keys``) passed; each holds its ``left`` whole tokens."""
        # Every submission's answer comes here: nothing is done for a bucket that is neither
        # lendable nor remembered refused, which is nearly all of them.
        refused, lendable = self._refused, self.lendable
        for (name, _, _), key, tokens in zip(buckets, keys, left):
            if refused or name in lendable:
                self.heard_left(name, key, int(tokens))

    def first_refused(self, keys: Sequence[str]) -> tuple[int, float] | None:
        """The index of the first of ``keys`` heard refused lately and the seconds it still refuses."""
        if not self._refused:
            return None
        for index, key in enumerate(keys):
            wait = self.refused_for(key)
            if wait > 0:
                return index, wait
        return None

    def heard_refused(self, key: str, retry_ms: int) -> None:
        """A take of one token was refused; none is back for ``retry_ms``."""
        self._keep(self._refused, key, self._clock() + retry_ms / 1000)
        self._left.pop(key, None)

    def refused_for(self, key: str) -> float:
        """Seconds the bucket still refuses, as last heard; 0 when it may pass."""
        if not self._refused:
            return 0.0
        until = self._refused.get(key)
        if until is None:
            return 0.0
        wait = until - self._clock()
        if wait <= 0:  # over: forgotten, so takes skip the lookups again once none is refusing
            del self._refused[key]
            return 0.0
        return wait

    def lend(self, key: str) -> bool:
        """Lend one of the bucket's last heard tokens to a request in flight, if one is not lent yet."""
        left = self._left.get(key)
        lent = self._lent.get(key, 0)
        if left is None or left <= lent or self.refused_for(key):
            return False
        self._lent[key] = lent + 1
        return True

    def repay(self, key: str) -> None:
        """The request that was lent a token ended (it took the token, or was refused)."""
        lent = self._lent.get(key, 0) - 1
        if lent > 0:
            self._lent[key] = lent
        else:
            self._lent.pop(key, None)


class DeferredTake:
    """A request's bucket tokens lent by :meth:`RateLimiter.defer`, to take with its write.

    :meth:`claim` hands them to the write (once); a request that ends without a write takes them
    with :meth:`RateLimiter.settle`.
    """

    __slots__ = ("buckets", "key", "claimed")

    def __init__(self, buckets: list[tuple[str, RateLimit | None, str]], key: str) -> None:
        self.buckets = buckets
        self.key = key
        self.claimed = False

    def claim(self) -> list[tuple[str, RateLimit | None, str]]:
        """The buckets to take in the write about to be sent; none after the first claim."""
        if self.claimed:
            return []
        self.claimed = True
        return self.buckets


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
    :param memory: what the process last heard of its buckets; default a new one.
    """

    def __init__(
        self, redis: RedisClient, *, prefix: str, at_rest: AtRest | None = None, batcher: ScriptBatcher | None = None,
        memory: BucketMemory | None = None,
    ) -> None:
        self._prefix = prefix
        self._at_rest = at_rest
        self._cluster = isinstance(redis, RedisCluster)
        self._script = redis.register_script(_RATE_LIMIT_LUA)
        # Every submission takes up to three buckets in two calls: concurrent requests' takes are
        # pipelined, as their inserts are, instead of each paying a round trip's redis-py overhead alone.
        self._owns_batcher = batcher is None
        self._batcher = ScriptBatcher(redis) if batcher is None else batcher
        self.memory = BucketMemory() if memory is None else memory
        self._settling = Background()  # settle_soon's tasks

    async def aclose(self) -> None:
        """Finish the loans still settling; close the limiter's own script batcher (one passed in
        stays the caller's)."""
        await self._settling.wait()
        if self._owns_batcher:
            await self._batcher.aclose()

    def _tag(self, subject: str) -> str:
        return subject if self._at_rest is None else self._at_rest.subject(subject)

    async def take(self, name: str, limit: RateLimit | None, subject: str, cost: int = 1) -> None:
        """Take ``cost`` tokens from ``subject``'s ``name`` bucket; ``limit=None`` (off) passes.

        :raises RateLimited: the bucket holds fewer than ``cost`` tokens; nothing was taken.
        """
        await self.take_all([(name, limit, subject)], cost)

    async def take_all(
        self, buckets: Sequence[tuple[str, RateLimit | None, str]], cost: int = 1, *, deferred: DeferredTake | None = None
    ) -> None:
        """Take ``cost`` tokens from each ``(name, limit, subject)`` bucket, all or none, in one call.

        Buckets whose limit is ``None`` (off) are skipped. On a Redis Cluster the buckets are taken
        one call each, in order, and a refusal leaves the ones before it taken. ``deferred``'s
        buckets, unless claimed, are taken first in the same call (claimed unless refused).

        :raises RateLimited: naming the first bucket that holds fewer than ``cost`` tokens, or
            that this process heard refuse lately.
        """
        takes = self._prepared(buckets, cost, deferred)
        if not takes.keys:
            return
        if self._cluster and len(takes.keys) > 1:
            for name, limit, subject in takes.buckets:
                await self.take(name, limit, subject, cost)
            return
        takes.check(await self._batcher.call(self._script, keys=takes.keys, args=takes.args))

    def takes(
        self, buckets: Sequence[tuple[str, RateLimit | None, str]], cost: int = 1, deferred: DeferredTake | None = None
    ) -> BucketTakes:
        """The buckets of :meth:`take_all` as one script's keys and arguments (limits off left out);
        ``deferred`` is the loan whose buckets are among them, unclaimed again if they refuse."""
        active: list[tuple[str, RateLimit, str]] = []
        keys: list[str] = []
        args: list[object] = []
        for name, limit, subject in buckets:
            if limit is None:
                continue
            active.append((name, limit, subject))
            keys.append(rate_key(self._prefix, name, self._tag(subject)))
            args += [limit.capacity, limit.per_second / 1000, cost]
        return BucketTakes(active, keys, args, cost, self.memory, deferred)

    def _prepared(
        self, buckets: Sequence[tuple[str, RateLimit | None, str]], cost: int, deferred: DeferredTake | None
    ) -> BucketTakes:
        """:meth:`takes` with ``deferred``'s buckets first, claimed; refused at once when the memory
        heard one of them refuse (the loan unclaimed again, to be settled)."""
        lent = [] if deferred is None else deferred.claim()
        takes = self.takes([*lent, *buckets], cost, deferred if lent else None)
        takes.refuse_remembered()
        return takes

    def defer(self, name: str, limit: RateLimit | None, subject: str) -> DeferredTake | None:
        """One token of ``subject``'s ``name`` bucket lent to a request, to take later with its
        write (:meth:`DeferredTake.claim`) or, without one, by :meth:`settle`; ``None`` when none
        can be lent (module docstring): then take it now. Every loan ends with :meth:`settle`."""
        if limit is None or self._cluster:
            return None
        key = rate_key(self._prefix, name, self._tag(subject))
        if not self.memory.lend(key):
            return None
        return DeferredTake([(name, limit, subject)], key)

    async def settle(self, deferred: DeferredTake) -> None:
        """End ``deferred``'s loan: take its token now unless its write claimed it.

        :raises RateLimited: the bucket is empty (the request is refused, as it would have been first).
        """
        self.memory.repay(deferred.key)
        if not deferred.claimed:  # the usual end, claimed by the insert, costs nothing more
            await self.take_all([], deferred=deferred)

    def settle_soon(self, deferred: DeferredTake) -> None:
        """:meth:`settle` in a task of its own, for a request that ended by an exception (its
        client went away, its deadline passed): its work was done, so its token is still taken."""
        self._settling.start(self.settle(deferred)).add_done_callback(_quietly)

    async def takes_for_write(
        self, buckets: Sequence[tuple[str, RateLimit | None, str]], cost: int = 1, *, deferred: DeferredTake | None = None
    ) -> BucketTakes | None:
        """The buckets to take inside a write's own script call (:func:`with_rate_buckets`), on
        one Redis server, ``deferred``'s first (as :meth:`take_all`); on a cluster, where their
        keys hash to other slots than the write's, they are taken now (:meth:`take_all`) and
        ``None`` is answered. The write must be sent next: its call takes what is claimed.

        :raises RateLimited: a bucket this process heard refuse lately; on a cluster, as :meth:`take_all`.
        """
        if self._cluster:
            await self.take_all(buckets, cost, deferred=deferred)
            return None
        return self._prepared(buckets, cost, deferred)


class BucketTakes:
    """Rate buckets to take in one script call (:meth:`RateLimiter.takes`): their keys, their
    arguments (three each, as ``rate_limit.lua`` reads them), the tokens each take and what a
    refusal says; the process's memory hears the answer.

    ``buckets`` are the ``(name, limit, subject)`` of each, limits off left out. ``deferred`` is the
    loan whose buckets are among these: a refusal takes nothing, so it is unclaimed again.
    """

    __slots__ = ("buckets", "keys", "args", "cost", "memory", "deferred")

    def __init__(
        self, buckets: list[tuple[str, RateLimit, str]], keys: list[str], args: list[object], cost: int = 1,
        memory: BucketMemory | None = None, deferred: DeferredTake | None = None,
    ) -> None:
        # A plain class: one is made per submission, and a frozen dataclass sets each field the slow way.
        self.buckets = buckets
        self.keys = keys
        self.args = args
        self.cost = cost
        self.memory = memory
        self.deferred = deferred

    def refuse_remembered(self) -> None:
        """Refuse, without asking Redis, when the memory heard one of the buckets refuse lately.

        :raises RateLimited: naming that bucket.
        """
        if self.memory is None:
            return
        refused = self.memory.first_refused(self.keys)
        if refused is not None:
            index, wait = refused
            name, limit, _ = self.buckets[index]
            raise self._refused(name, limit, wait)

    def _refused(self, name: str, limit: RateLimit, wait: float) -> RateLimited:
        if self.deferred is not None:
            self.deferred.claimed = False  # nothing was taken: the loan is still to settle
        return _refusal(name, limit, wait)

    def check(self, reply: Any) -> None:
        """Raise the refusal ``rate_limit.lua``'s ``reply`` (``{allowed, retry_ms, index, left…}``)
        holds; tell the memory what it says.

        :raises RateLimited: naming the bucket that refused, with ``Retry-After`` in whole seconds.
        """
        allowed, retry_ms, index = reply[0], int(reply[1]), int(reply[2])
        if int(allowed) == 1:
            if self.memory is not None:
                self.memory.heard_passed(self.buckets, self.keys, reply[3:])
            return
        if self.memory is not None and self.cost == 1:  # a dearer take says nothing of one token
            self.memory.heard_refused(self.keys[index - 1], retry_ms)
        name, limit, _ = self.buckets[index - 1]
        raise self._refused(name, limit, retry_ms / 1000)


def _quietly(task: asyncio.Future[None]) -> None:
    """Retrieve a background settle's outcome: a refusal or an unreachable Redis there has no one to tell."""
    if not task.cancelled():
        task.exception()


def _refusal(name: str, limit: RateLimit, wait: float) -> RateLimited:
    retry_after = max(1, math.ceil(wait))
    return RateLimited(
        f"too many requests ({name} limit: {limit.capacity} per {limit.period} s); retry after {retry_after} s",
        details={"limit": name, "capacity": limit.capacity, "period": limit.period},
        retry_after=retry_after,
    )


def with_rate_buckets(lua: str) -> str:
    """The script ``lua`` run in the same call after rate buckets were taken: one round trip for a
    write and the limits it counts against (one Redis server: :meth:`RateLimiter.takes_for_write`).

    KEYS are the buckets' keys, then ``lua``'s own; ARGV the number of buckets, their arguments
    (:attr:`BucketTakes.args`), then ``lua``'s own. The answer is ``{taken}`` when a bucket
    refuses — ``rate_limit.lua``'s refusal, ``{0, retry_ms, i}``: nothing is taken and ``lua`` does
    not run — else ``{taken, answer}``: the tokens are taken (``taken`` is ``rate_limit.lua``'s
    ``{1, 0, 0, left…}``) and ``answer`` is ``lua``'s, which must not be nil. Both scripts run
    unchanged, each as a function of its own KEYS and ARGV.
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
local taken = {{1, 0, 0}}
if n > 0 then
    taken = take(bucketKeys, bucketArgs)
    if taken[1] ~= 1 then
        return {{taken}}
    end
end
return {{taken, run(keys, args)}}
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
