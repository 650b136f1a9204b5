"""Per-recipient queues of end-to-end-encrypted messages in Redis.

Redis layout: :mod:`delivery.keys` names every key and channel and documents what each holds;
only the scripts below write the queue's three keys.

Time: expiry, receive order and the receive time are decided by Redis's clock (``TIME`` inside
the scripts), so processes whose clocks disagree still agree on which message has expired. A
queue made with ``redis_time=False`` uses the ``now`` each caller passes instead (tests that move a
clock by hand); with ``redis_time=True`` (the delivery service) ``now`` is ignored.

Why Lua: each operation is one EVALSHA, atomic on the server. No write spans two round trips, so
a process that dies at any point leaves either the whole operation or none of it. Scripts are
registered once with redis-py ``register_script``, which re-sends the source on ``NOSCRIPT``
(after a Redis restart or a failover). They use only commands and options of Redis 6.2.

Delivery is at least once: fetch never removes anything; a message leaves when the client
acknowledges it by id or when it expires. De-duplication covers the time a message is queued: the
same id submitted again by the same sender while queued, or within :data:`ACK_MEMORY_SECONDS` after
its acknowledgement (``{prefix}acked:{<tag>}``), is stored once and its expiry is not extended;
after that, a resubmission is a new delivery (clients de-duplicate by message hash). De-duplication is per sender: an id that another sender already holds (a
source-form ``messageHash`` is chosen by its sender and only the receiver can check it) does not
shadow this sender's message, which is stored under ``<id>:<sender>`` (:func:`scoped_id`).

At rest (a queue given an :class:`~delivery.at_rest.AtRest`, as the delivery service's is): the
envelope is stored sealed and opened when read, and ``<sender>`` above is the sender's keyed tag,
never the address (:mod:`delivery.at_rest`). Records stored in clear (before sealing existed) are
read as they are, and acknowledged under the ids they were stored with (:meth:`MessageQueue.scoped_ids`).

Devices: an account with a device list (:mod:`delivery.devices`) has one cursor per device. Fetch
for a device skips what that device acknowledged; an ack is that device's, and the message leaves
when every listed device has acknowledged it (or it expires). :meth:`MessageQueue.set_devices`
replaces the list and settles what a removed device was the last to miss. Without a list an ack
removes the message at once, as it always did (the profile key is the one implicit device).

Quotas: ``max_queued`` live messages and ``max_bytes`` bytes of stored records per queue, checked
in the insert script; a fetched page stops before ``max_bytes`` too (at least one message).
"""

from __future__ import annotations

import logging
import math
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import ConnectionPool, Redis, RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import AskError, NoScriptError

from ensign.config import DEFAULT_REDIS_PREFIX
from ensign.errors import DecryptionError, InvalidRequest
from ensign.redis_client import RedisClient, lua_script
from ensign.sessions import SessionStale

from .at_rest import AtRest
from .batching import ScriptBatcher
from .errors import AccountMissingError, NotReplicatedError, QueueFullError
from .limits import BucketTakes, with_rate_buckets
from .keys import (
    QueueKeys,
    account_from_tag,
    expiry_key_pattern,
    notify_pattern,
    queue_keys,
    queue_keys_from_expiry_key,
    sweeper_claim_key,
)

__all__ = [
    "ACK_MEMORY_MAX",
    "ACK_MEMORY_SECONDS",
    "DEFAULT_PAGE_SIZE",
    "DEFAULT_SWEEP_BATCH",
    "DEVICE_SKIP_ROWS",
    "KEY_TTL_GRACE_SECONDS",
    "MAX_PAGE_SIZE",
    "MAX_TTL_SECONDS",
    "MessageQueue",
    "AccountStateChangedError",
    "Page",
    "StoredMessage",
    "scoped_id",
]

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
DEFAULT_SWEEP_BATCH = 500
MAX_SWEEP_BATCH = 5000
# Ten years: an upper bound that keeps expires_at and the key EXPIRE far from overflow.
MAX_TTL_SECONDS = 10 * 365 * 86_400
KEY_TTL_GRACE_SECONDS = 86_400
MAX_MESSAGE_ID_LENGTH = 256
# Ids per ack.lua call: bounds the time one script holds Redis and the Lua unpack() size.
ACK_CHUNK = 500
# How long, and how many per account, acknowledged messages are remembered (``{prefix}acked:{<tag>}``):
# long enough for any client's retries, bounded so an account's memory stays ~100 KB.
ACK_MEMORY_SECONDS = 3600
ACK_MEMORY_MAX = 1000
# Rows a device has acknowledged (while another device has not) that a fetch skips without
# counting them against its page: a device sees past its acknowledged messages, dm3 clients (which
# never follow a cursor) included, while one fetch scans at most limit + this many rows.
DEVICE_SKIP_ROWS = 1000
# Expired messages the insert script drops when a queue is at its limit.
ENQUEUE_PURGE_BATCH = 100

_CURSOR = re.compile(r"[0-9]{1,17}")

log = logging.getLogger(__name__)


# -- Scripts ---------------------------------------------------------------------------------


_ENQUEUE_LUA = lua_script("delivery.lua", "enqueue")
_FETCH_LUA = lua_script("delivery.lua", "fetch")
_GET_LUA = lua_script("delivery.lua", "get")
_ACK_LUA = lua_script("delivery.lua", "ack")
_SWEEP_LUA = lua_script("delivery.lua", "sweep")
_DELETE_QUEUE_LUA = lua_script("delivery.lua", "delete_queue")
_DELETE_ACCOUNT_LUA = lua_script("delivery.lua", "delete_account")
_SET_DEVICES_LUA = lua_script("delivery.lua", "set_devices")


# -- Public types ----------------------------------------------------------------------------


class AccountStateChangedError(Exception):
    """The account is no longer in the state the caller checked (settings, notifications,
    suspension: :func:`delivery.accounts.account_state`); nothing was stored.

    Not an answer to anyone: intake reads the settings again and checks the message anew.
    """


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One queued message as fetched: the envelope bytes as stored, times in epoch seconds."""

    id: str
    envelope: bytes
    received_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a queue, oldest first.

    ``next_cursor`` is ``None`` when the queue ended in this page. A page can hold fewer than
    ``limit`` items while ``next_cursor`` is set (expired messages are skipped, not replaced).
    """

    items: tuple[StoredMessage, ...]
    next_cursor: str | None


def scoped_id(message_id: str, sender: str) -> str:
    """The id a message of ``sender`` is stored under when another sender holds ``message_id``."""
    return f"{message_id}:{sender}"


class MessageQueue:
    """Per-account message queues in Redis (layout and guarantees in the module docstring).

    :param redis: a single-server or cluster client; ``decode_responses=False`` is recommended
        (envelopes come back as bytes either way).
    :param prefix: prepended to every key and channel name; default
        :data:`ensign.config.DEFAULT_REDIS_PREFIX`. It must not
        contain ``{`` or ``}``, which would move the hash tag.
    :param require_account: store a message only while the account hash
        ``{prefix}account:{<tag>}`` exists (default ``True``, the delivery service); ``False``
        for a queue used without :mod:`delivery.accounts` (benchmarks, the queue's own tests).
    :param redis_time: decide expiry and receive times by Redis's clock (``TIME``), ignoring the
        ``now`` callers pass (default ``False``: the caller's ``now``, for tests with a clock).
    :param wait_replicas: replicas that must confirm each enqueue and ack (Redis ``WAIT``, sent
        on the script's own connection right after it, on the node that holds the account's
        keys) before the call returns; 0 (default) returns once the primary ran the script.
    :param wait_timeout_ms: how long ``WAIT`` may take; fewer confirmations raise
        :class:`~delivery.errors.NotReplicatedError` (the write stays on the primary).
    :param at_rest: seal envelopes and tag senders at rest (:mod:`delivery.at_rest`); ``None``
        (default) stores both as given (benchmarks, the queue's own tests).
    :param batcher: the script batcher inserts go through (:mod:`delivery.batching`), shared with
        the rate limits (the caller closes it); default: one of its own, closed by :meth:`aclose`.
    """

    def __init__(
        self,
        redis: RedisClient,
        *,
        prefix: str = DEFAULT_REDIS_PREFIX,
        require_account: bool = True,
        redis_time: bool = False,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 1000,
        at_rest: AtRest | None = None,
        batcher: ScriptBatcher | None = None,
    ) -> None:
        if not isinstance(prefix, str) or "{" in prefix or "}" in prefix:
            raise ValueError("prefix must be a string without '{' or '}'")
        if wait_replicas < 0 or wait_timeout_ms < 1:
            raise ValueError("wait_replicas must be >= 0 and wait_timeout_ms >= 1")
        self._wait_replicas = wait_replicas
        self._wait_timeout_ms = wait_timeout_ms
        self._node_clients: dict[str, Redis] = {}
        self._redis = redis
        # Once: isinstance against redis-py's client classes (typing Protocols) costs microseconds.
        self._cluster = isinstance(redis, RedisCluster)
        self._prefix = prefix
        self._require_account = require_account
        self._redis_time = redis_time
        self._at_rest = at_rest
        self._enqueue = redis.register_script(_ENQUEUE_LUA)
        # The insert with the submission's sender and pair buckets in one round trip (one server).
        self._rated_enqueue = redis.register_script(with_rate_buckets(_ENQUEUE_LUA))
        # Inserts of concurrent submissions are pipelined on one connection (delivery.batching).
        self._owns_batcher = batcher is None
        self._batcher = ScriptBatcher(redis) if batcher is None else batcher
        self._fetch = redis.register_script(_FETCH_LUA)
        self._get = redis.register_script(_GET_LUA)
        self._ack = redis.register_script(_ACK_LUA)
        self._sweep = redis.register_script(_SWEEP_LUA)
        self._delete_queue = redis.register_script(_DELETE_QUEUE_LUA)
        self._delete_account = redis.register_script(_DELETE_ACCOUNT_LUA)
        self._set_devices = redis.register_script(_SET_DEVICES_LUA)

    @property
    def prefix(self) -> str:
        return self._prefix

    @property
    def redis_time(self) -> bool:
        """Whether expiry and receive times follow Redis's clock (the ``now`` passed is ignored)."""
        return self._redis_time

    @property
    def notify_pattern(self) -> str:
        """PSUBSCRIBE pattern matching the notification channel of every account."""
        return notify_pattern(self._prefix)

    def keys(self, account: str) -> QueueKeys:
        """Key and channel names of ``account``'s queue."""
        return queue_keys(self._prefix, account)

    def channel(self, account: str) -> str:
        """The pub/sub channel on which a new message for ``account`` is announced (payload: id)."""
        return queue_keys(self._prefix, account).channel

    def scoped_ids(self, account: str, message_id: str, sender: str) -> list[str]:
        """The ids ``sender``'s message ``message_id`` to ``account`` may be queued under besides
        ``message_id`` itself (when another sender held that id): the one :meth:`enqueue` uses,
        and with sealing on the one a record stored in clear used."""
        if self._at_rest is None:
            return [scoped_id(message_id, sender)]
        return [scoped_id(message_id, self._at_rest.sender_tag(sender, account)), scoped_id(message_id, sender)]

    def account_from_channel(self, channel: str | bytes) -> str:
        """Invert :meth:`channel` (for a PSUBSCRIBE listener)."""
        name = channel.decode() if isinstance(channel, bytes) else channel
        head = f"{self._prefix}notify:{{"
        if not name.startswith(head) or not name.endswith("}"):
            raise ValueError(f"not a notification channel under prefix {self._prefix!r}")
        return account_from_tag(name[len(head) : -1])

    async def enqueue(
        self,
        account: str,
        message_id: str,
        envelope: bytes | str,
        *,
        now: float,
        ttl_seconds: int,
        max_queued: int | None = None,
        max_bytes: int | None = None,
        sender: str | None = None,
        account_state: str | None = None,
        takes: BucketTakes | None = None,
    ) -> bool:
        """Store a message for ``account`` and publish its id on the account's channel.

        One round trip (EVALSHA). Idempotent: if ``message_id`` is already queued and not expired,
        nothing changes (its expiry is not extended) and ``False`` is returned.

        :param account: the recipient, an opaque non-empty string (the normalised address).
        :param message_id: the message hash; the id used for de-duplication and ack.
        :param envelope: the envelope to deliver, postmark included; ``str`` is stored as UTF-8.
        :param now: the caller's clock, epoch seconds; becomes ``received_at``.
        :param ttl_seconds: lifetime of this message, 1 … ``MAX_TTL_SECONDS``.
        :param max_queued: most live messages the account may have queued; ``None`` = no limit.
        :param max_bytes: most bytes of stored records (envelope plus a few dozen bytes) the
            account may have queued; ``None`` = no limit.
        :param sender: scopes de-duplication (module docstring); ``None`` = by id alone.
        :param account_state: the account as the caller read and checked it
            (:func:`delivery.accounts.account_state`); the message is stored only while the
            account is still in that state (``require_account`` only).
        :param takes: rate buckets to take in the same call, before the insert
            (:meth:`delivery.limits.RateLimiter.takes_for_write`; one Redis server only). Taken
            whatever the insert then answers, as when taken in a call of their own just before.
        :returns: ``True`` if newly stored, ``False`` if it was already queued.
        :raises RateLimited: a bucket of ``takes`` refused; nothing was taken or stored.
        :raises QueueFullError: ``max_queued`` live messages or ``max_bytes`` bytes are queued;
            nothing was stored.
        :raises AccountMissingError: the account hash does not exist (``require_account``); nothing
            was stored and nothing published.
        :raises AccountStateChangedError: ``account_state`` is given and the account changed since;
            nothing was stored and nothing published.
        """
        keys = self.keys(account)
        _check_message_id(message_id)
        body = envelope.encode("utf-8") if isinstance(envelope, str) else envelope
        if not isinstance(body, bytes) or not body:
            raise InvalidRequest("envelope must be non-empty bytes or str")
        now = _check_now(now)
        ttl = _check_positive_int("ttl_seconds", ttl_seconds, MAX_TTL_SECONDS)
        limit = 0 if max_queued is None else _check_positive_int("max_queued", max_queued, None)
        byte_limit = 0 if max_bytes is None else _check_positive_int("max_bytes", max_bytes, None)
        if sender is not None and (not isinstance(sender, str) or not sender or " " in sender or "|" in sender):
            raise InvalidRequest("sender must be a non-empty string without spaces or '|'")
        if self._at_rest is not None:
            body = self._at_rest.seal(body, account)
            sender = None if sender is None else self._at_rest.sender_tag(sender, account)
        # KEYS[6], when present, is the account hash the script requires (module docstring).
        script_keys = [*keys.keys, keys.acked, keys.account, keys.seen] if self._require_account else [*keys.keys, keys.acked]
        script_args = [
            message_id,
            body,
            self._now_arg(now),
            ttl,
            limit,
            ENQUEUE_PURGE_BATCH,
            ttl + KEY_TTL_GRACE_SECONDS,
            keys.channel,
            byte_limit,
            sender or "",
            scoped_id(message_id, sender) if sender else "",
            account_state or "",
        ]
        if takes is not None and takes.keys:
            if self._cluster:
                raise ValueError("a cluster cannot take rate buckets in the insert's call (their keys hash to other slots)")
            reply = await self._write(
                self._rated_enqueue, [*takes.keys, *script_keys], [len(takes.keys), *takes.args, *script_args], batch=True
            )
            takes.check(reply[0])
            status = reply[1]
        else:
            status = await self._write(self._enqueue, script_keys, script_args, batch=True)
        if status == -1:
            raise QueueFullError(
                f"the recipient's queue holds {limit} messages, its limit",
                details={"limit": "queued_messages", "max": limit},
            )
        if status == -3:
            raise QueueFullError(
                f"the recipient's queue would pass {byte_limit} bytes, its limit",
                details={"limit": "queued_bytes", "max": byte_limit},
            )
        if status == -2:
            raise AccountMissingError("the receiver has no account on this delivery service")
        if status == -4:
            raise AccountStateChangedError("the receiver's account changed since it was read")
        return bool(status == 1)

    async def _write(self, script: AsyncScript, keys: list[str], args: list[Any], *, batch: bool = False) -> Any:
        """Run a writing script (``batch``: through the batcher, with other requests' calls); with
        ``wait_replicas``, then ``WAIT`` on the same connection, unbatched.

        ``WAIT`` counts the replicas that have the writes *of its own connection*, so script and
        ``WAIT`` go in one pipeline, which sends both on one connection. On a cluster that is a
        client of the primary that owns the keys' slot (a cluster pipeline refuses scripts).
        """
        if not self._wait_replicas:
            if batch:
                return await self._batcher.call(script, keys=keys, args=args)
            return await script(keys=keys, args=args)
        for _ in range(3):
            client = self._primary_of(keys[0])
            pipe = client.pipeline(transaction=False)
            pipe.evalsha(script.sha, len(keys), *keys, *args)
            pipe.execute_command("WAIT", self._wait_replicas, self._wait_timeout_ms)
            try:
                result, confirmed = await pipe.execute()
            except NoScriptError:
                # A restarted or promoted node has no scripts yet. Every script is idempotent,
                # so loading it and running script and WAIT again is safe.
                await client.script_load(script.script)
                continue
            except AskError:
                # The slot moved (a failover, MOVED, or a migration, ASK): the cluster client
                # follows the redirect and learns the new owner; then script and WAIT there.
                await script(keys=keys, args=args)
                continue
            if int(confirmed) < self._wait_replicas:
                raise NotReplicatedError(
                    f"stored on the primary, but {confirmed} of {self._wait_replicas} required replicas "
                    f"confirmed it within {self._wait_timeout_ms} ms; repeat the request (it is de-duplicated)"
                )
            return result
        raise NotReplicatedError("the keys' primary changed while waiting for its replicas; repeat the request")

    def _primary_of(self, key: str) -> Redis:
        """The client to send a script and its ``WAIT`` on: the app's client for a single server, a
        client of the slot's primary (one per node, made on first use) for a cluster."""
        if not isinstance(self._redis, RedisCluster):
            return self._redis
        node = self._redis.get_node_from_key(key)
        if node is None:
            raise NotReplicatedError("no primary serves these keys now (a failover in progress); repeat the request")
        client = self._node_clients.get(node.name)
        if client is None:
            pool = ConnectionPool(connection_class=node.connection_class, **node.connection_kwargs)
            client = self._node_clients[node.name] = Redis.from_pool(pool)
        return client

    async def aclose(self) -> None:
        """Close the per-node clients made for ``WAIT`` on a cluster and the queue's own script
        batcher (the app's client, and a batcher passed in, are the caller's)."""
        clients, self._node_clients = list(self._node_clients.values()), {}
        for client in clients:
            await client.aclose()
        if self._owns_batcher:
            await self._batcher.aclose()

    async def fetch(
        self,
        account: str,
        *,
        now: float,
        cursor: str | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        max_bytes: int | None = None,
        device: str = "",
    ) -> Page:
        """Return one page of ``account``'s live messages, oldest first. Removes nothing.

        :param now: the caller's clock, epoch seconds; messages with ``expires_at <= now`` are
            skipped even before the sweeper removes them.
        :param cursor: ``next_cursor`` of the previous page, ``None`` for the first page. Opaque;
            it marks a position in receive order, so acks made meanwhile do not shift it.
        :param limit: messages scanned for this page, 1 … ``MAX_PAGE_SIZE`` (default
            ``DEFAULT_PAGE_SIZE``).
        :param max_bytes: the page stops before the message that would take its records past
            this many bytes (it always holds at least one); ``None`` = no byte cap. The cursor
            then points after the last message returned.
        :param device: the fetching device of an account with a device list: the messages it has
            acknowledged are skipped, up to :data:`DEVICE_SKIP_ROWS` of them without counting
            against ``limit``; ``""`` (default) for an account without one.
        """
        keys = self.keys(account)
        now = _check_now(now)
        limit = _check_positive_int("limit", limit, MAX_PAGE_SIZE)
        if cursor is not None and (not isinstance(cursor, str) or not _CURSOR.fullmatch(cursor)):
            raise InvalidRequest("cursor is not a cursor returned by fetch")
        byte_limit = 0 if max_bytes is None else _check_positive_int("max_bytes", max_bytes, None)
        reply: list[Any] = await self._fetch(
            keys=[*keys.keys, keys.seen],
            args=[cursor or "", self._now_arg(now), limit, byte_limit, device, DEVICE_SKIP_ROWS if device else 0],
        )
        next_seq = _text(reply[0])
        items = [
            item
            for i in range(1, len(reply), 4)
            if (item := self._stored(account, _text(reply[i]), expires_at=reply[i + 2], record=reply[i + 3]))
        ]
        # Scores come back as doubles' text; the cursor is their integer value.
        next_cursor = str(int(float(next_seq))) if next_seq else None
        return Page(items=tuple(items), next_cursor=next_cursor)

    def cursor_at(self, received_at: float) -> str:
        """A :meth:`fetch` cursor from which the pages hold every message received after
        ``received_at`` (epoch seconds on the writers' clocks), oldest first.

        The receive sequence is the writer's clock in microseconds (raised when a clock lags), so a
        caller that catches up after a gap passes the gap's start minus any clock skew it allows.
        """
        received_at = _check_now(received_at)
        return str(math.floor(received_at * 1_000_000))

    async def get(self, account: str, message_id: str, *, now: float) -> StoredMessage | None:
        """Return one queued message of ``account`` by id, or ``None``. Removes nothing.

        One round trip (EVALSHA). ``None`` when the id was never stored, was acknowledged or swept,
        or has expired (``expires_at <= now``) even if the sweeper has not removed it yet.

        :param now: the caller's clock, epoch seconds.
        """
        keys = self.keys(account)
        _check_message_id(message_id)
        now = _check_now(now)
        reply: list[Any] | None = await self._get(keys=keys.keys, args=[message_id, self._now_arg(now)])
        if reply is None:
            return None
        return self._stored(account, message_id, expires_at=reply[0], record=reply[1])

    def _stored(self, account: str, message_id: str, *, expires_at: bytes | str, record: bytes | str) -> StoredMessage | None:
        # The hash value is "<received_at>[|<sender>] <envelope>" (module docstring).
        head, _, body = _bytes(record).partition(b" ")
        if self._at_rest is not None:
            try:
                body = self._at_rest.open(body, account)
            except DecryptionError:
                # Sealed with another ENCRYPTION_PRIVATE_KEY: nobody can read it; it expires.
                log.warning("a queued message does not open; skipped", extra={"message_id": message_id})
                return None
        return StoredMessage(
            id=message_id, envelope=body, received_at=float(head.partition(b"|")[0]), expires_at=float(expires_at)
        )

    async def ack(self, account: str, ids: Iterable[str], *, now: float | None = None, device: str = "") -> int:
        """Remove the acknowledged messages of ``account``; O(log n) each. Each removed message is
        remembered (with its sender) for :data:`ACK_MEMORY_SECONDS`, so :meth:`enqueue` does not
        store the sender's retry of it again.

        With a device list, the ack is ``device``'s: a message leaves once every listed device
        has acknowledged it (module docstring).

        Unknown ids (already acked, swept, never stored) are not an error.

        :param now: the caller's clock, epoch seconds (default the wall clock).
        :param device: the acknowledging device; ``""`` (default) for an account without a list.

        :returns: how many of ``ids`` were queued and are now acknowledged by this device (removed,
            without a device list).
        :raises SessionStale: ``device`` is not on the account's list (removed since the session
            began), or is ``""`` while the account has a list; nothing changed.
        """
        keys = self.keys(account)
        if isinstance(ids, (str, bytes)):
            raise InvalidRequest("ids must be a collection of message ids, not one string")
        unique = list(dict.fromkeys(ids))
        for message_id in unique:
            _check_message_id(message_id)
        clock = self._now_arg(_check_now(time.time() if now is None else now))
        removed = 0
        # Each chunk is atomic; acking is idempotent, so a retry after a failed chunk is safe.
        for start in range(0, len(unique), ACK_CHUNK):
            acked = int(
                await self._write(
                    self._ack,
                    [*keys.keys, keys.acked, keys.account, keys.seen],
                    [clock, ACK_MEMORY_SECONDS, ACK_MEMORY_MAX, device, *unique[start : start + ACK_CHUNK]],
                )
            )
            if acked < 0:
                raise SessionStale("the device of this session is no longer on the account's device list")
            removed += acked
        return removed

    async def count(self, account: str, now: float) -> int:
        """Number of live (not expired) messages queued for ``account``."""
        keys = self.keys(account)
        now = _check_now(now)
        if self._redis_time:
            seconds, micros = await self._redis.time()
            now = seconds + micros / 1_000_000
        return int(await self._redis.zcount(keys.expiry, f"({now!r}", "+inf"))

    async def delete_queue(self, account: str) -> int:
        """Delete ``account``'s queue, leaving its account keys alone (a queue used without
        accounts; the delivery service deletes with :meth:`delete_account`). Returns how many
        messages it held."""
        keys = self.keys(account)
        return int(await self._delete_queue(keys=[*keys.keys, keys.acked, keys.seen]))

    async def delete_account(self, account: str, *, generation: int, tombstone: str) -> int | None:
        """Delete ``account``: its account hash and whole queue, and write its tombstone, in one
        script (``delete_account.lua``), so no message can be stored in between; the same script
        publishes ``deleted`` on the account's sessions channel (:mod:`delivery.push` ends its
        sockets on every process).

        Only the generation the caller checked is deleted: when the account hash is missing or
        its ``created`` field is not ``generation`` (deleted, or deleted and re-created, since the
        caller read it), nothing changes and ``None`` is returned.

        :param generation: the account's ``created`` value (ms) the caller read.
        :param tombstone: the value stored in ``{prefix}tombstone:{<tag>}`` (no expiry).
        :returns: how many messages the queue held (expired but unswept ones included), or ``None``.
        """
        keys = self.keys(account)
        if isinstance(generation, bool) or not isinstance(generation, int):
            raise InvalidRequest("generation must be the account's creation time in ms")
        if not isinstance(tombstone, str) or not tombstone:
            raise InvalidRequest("tombstone must be a non-empty string")
        dropped = int(
            await self._delete_account(
                keys=[*keys.keys, keys.account, keys.tombstone, keys.acked, keys.seen],
                args=[str(generation), tombstone, keys.sessions],
            )
        )
        return None if dropped < 0 else dropped

    async def set_devices(self, account: str, *, expected: str, devices: str, now: float | None = None) -> int | None:
        """Replace ``account``'s device list (the account hash's ``devices`` field) with ``devices``
        (``""`` removes it) if it is still ``expected``, in one script (``set_devices.lua``) that
        also drops removed devices from every message's acknowledgers, removes the messages every
        remaining device has acknowledged, and publishes ``devices`` on the account's sessions
        channel (:mod:`delivery.push` re-checks its sockets on every process).

        :returns: how many messages left the queue, or ``None`` when the account is gone or its
            list changed since the caller read it (nothing changed).
        """
        keys = self.keys(account)
        clock = self._now_arg(_check_now(time.time() if now is None else now))
        left = int(
            await self._write(
                self._set_devices,
                [*keys.keys, keys.acked, keys.account, keys.seen],
                [expected, devices, keys.sessions, clock, ACK_MEMORY_SECONDS, ACK_MEMORY_MAX],
            )
        )
        return None if left < 0 else left

    async def sweep_expired(
        self, now: float, *, batch: int = DEFAULT_SWEEP_BATCH, scan_count: int = 1000
    ) -> int:
        """Remove every message with ``expires_at <= now`` from every queue under the prefix.

        Walks the keyspace with SCAN (never KEYS) and calls ``sweep.lua`` per queue, at most
        ``batch`` messages per call, so Redis is never held long. Safe to run from several
        processes at once: removing an expired message twice removes it once.

        :param batch: most messages removed per script call, 1 … ``MAX_SWEEP_BATCH``.
        :param scan_count: SCAN ``COUNT`` hint.
        :returns: how many messages this call removed.
        """
        now = _check_now(now)
        batch = _check_positive_int("batch", batch, MAX_SWEEP_BATCH)
        now_arg = self._now_arg(now)
        removed = 0
        # On a cluster client, scan_iter walks every primary.
        async for raw in self._redis.scan_iter(
            match=expiry_key_pattern(self._prefix), count=scan_count, _type="zset"
        ):
            keys = queue_keys_from_expiry_key(self._prefix, _text(raw))
            while True:
                n = int(await self._sweep(keys=[*keys.keys, keys.seen], args=[now_arg, batch]))
                removed += n
                if n < batch:
                    break
        return removed

    def _now_arg(self, now: float) -> str:
        # "" tells the scripts to read Redis's clock (module docstring).
        return "" if self._redis_time else repr(now)

    async def claim_sweep(self, seconds: int) -> bool:
        """Claim the sweep for ``seconds`` (``SET NX EX``); ``False`` if another process holds it."""
        seconds = _check_positive_int("seconds", seconds, None)
        token = secrets.token_hex(8)
        return bool(
            await self._redis.set(sweeper_claim_key(self._prefix), token, nx=True, ex=seconds)
        )


# -- Validation and reply decoding ----------------------------------------------------------


def _check_now(now: float) -> float:
    if isinstance(now, bool) or not isinstance(now, (int, float)):
        raise InvalidRequest("now must be a number of seconds since the epoch")
    value = float(now)
    if not math.isfinite(value) or value < 0:
        raise InvalidRequest("now must be a finite, non-negative number of seconds")
    return value


def _check_positive_int(name: str, value: int, maximum: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequest(f"{name} must be a positive integer")
    if maximum is not None and value > maximum:
        raise InvalidRequest(f"{name} must be at most {maximum}")
    return value


def _check_message_id(message_id: str) -> None:
    if not isinstance(message_id, str) or not message_id:
        raise InvalidRequest("message id must be a non-empty string")
    if len(message_id) > MAX_MESSAGE_ID_LENGTH:
        raise InvalidRequest(f"message id is longer than {MAX_MESSAGE_ID_LENGTH} characters")


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _bytes(value: bytes | str) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value
