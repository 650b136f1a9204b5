"""Script calls of concurrent requests, pipelined to Redis on one connection of their own.

Under load many submissions reach a script call (their rate buckets, their insert) in the same
turn of the event loop. Through redis-py's client each call, and each pipeline, pays for a pool
checkout and release, a task timing the write, a timer around every reply and the client's
observability hooks: more of this process's CPU than the script costs Redis. Here the calls made
in one turn go out as one write on a connection the batcher holds for itself, and each write
follows the one before without waiting for its replies (Redis answers a connection's commands in
order). redis-py opens that connection (address, TLS, password, database, protocol as the
client's own); from then on the replies are parsed as their bytes arrive, in the socket's own
callback, and each caller is handed its own in order: no task or coroutine per write or reply.
Not a transaction: each script stays atomic on its own, and they touch different
keys. A call made alone still goes out at once, in the next turn.

Failures end as redis-py's client would end them, so callers (and the 503 they answer with,
:data:`ensign.redis_client.REDIS_UNAVAILABLE`) see the same errors:

* a connection that breaks (Redis restarted, the socket reset) is dropped with every call waiting
  on it; each such call is sent once more, on a new connection, as redis-py retries a pipeline
  (the scripts sent here are safe to repeat: an insert is de-duplicated by its id, a rate bucket
  at worst gives one token twice), and fails with the error if that fails too;
* no reply for ``timeout`` seconds while calls wait (a stalled Redis): the connection is dropped
  and the waiting calls fail with redis-py's ``TimeoutError``, not sent again. One timer per
  period watches the whole connection, not one per reply;
* a script Redis does not know (``NOSCRIPT``, after a restart or ``SCRIPT FLUSH``) is loaded, once
  for all the calls that met it, and those calls are sent again;
* a caller that is cancelled leaves its call in the stream: its reply is read, to keep the order,
  and dropped.

Only for a single Redis server: a cluster client keeps calling each script directly (its keys
live on many nodes).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Sequence
from typing import Any, cast

import hiredis
import redis.exceptions
from redis._parsers.base import BaseParser
from redis.asyncio import RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.commands.core import AsyncScript

from ensign.background import Background
from ensign.redis_client import REDIS_TIMEOUT, RedisClient

__all__ = ["ScriptBatcher"]

#: Most calls in one write; more go in the next one.
MAX_BATCH = 128

#: Times a call is sent at most: once, and once more on a new connection when the first broke.
SEND_ATTEMPTS = 2

# What the parser answers while a reply has not fully arrived.
_NOT_ENOUGH_DATA = object()
# RESP3 pushes, as hiredis 3.2 and later give them (None before: no such replies then).
_PUSH: type | None = getattr(hiredis, "PushNotification", None)


class _Call:
    __slots__ = ("script", "keys", "args", "future", "attempts", "loaded")

    def __init__(self, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any], future: asyncio.Future[Any]) -> None:
        self.script = script
        self.keys = keys
        self.args = args
        self.future = future
        self.attempts = 0
        self.loaded = False  # sent again after loading its script (NOSCRIPT)


class ScriptBatcher:
    """Runs :class:`AsyncScript` calls, pipelined on a connection of its own (module docstring).

    :param redis: the client whose scripts are called and whose connection settings (address,
        password, database, protocol) the batcher's own connection uses.
    :param timeout: seconds calls may wait for a reply before they fail; default
        :data:`ensign.redis_client.REDIS_TIMEOUT`, as the client's own commands.
    """

    def __init__(self, redis: RedisClient, *, timeout: float = REDIS_TIMEOUT) -> None:
        self._redis = redis
        self._direct = isinstance(redis, RedisCluster)
        # Where the batcher's own connection gets its settings (address, password, database, protocol).
        self._pool = None if isinstance(redis, RedisCluster) else redis.connection_pool
        self._timeout = timeout
        self._queued: list[_Call] = []  # made in this turn, not written yet
        self._scheduled = False
        self._waiting: deque[_Call] = deque()  # written on self._link, reply not read yet, in order
        self._link: _Link | None = None
        self._connector: asyncio.Future[None] | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._progress_at = 0.0  # loop time of the last reply, or of the first write after none waited
        self._tasks = Background()
        self._loading: dict[str, list[_Call]] = {}  # script sha -> calls waiting for SCRIPT LOAD
        self._closed = False

    def call(self, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]) -> Awaitable[Any]:
        """What ``script(keys=keys, args=args)`` would answer, to await; pipelined with other calls.

        A plain function returning the call's future, not a coroutine: each submission awaits
        three calls, and every coroutine frame between the request and the future is walked again
        each time the request resumes.
        """
        if self._direct:
            return script(keys=keys, args=args)
        if self._closed:
            raise _closed_error()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queued.append(_Call(script, keys, args, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return future

    async def aclose(self) -> None:
        """Fail what still waits, close the connection; later calls raise ``ConnectionError``."""
        self._closed = True
        self._scheduled = True  # nothing queued from now on is flushed
        queued, self._queued = self._queued, []
        error = _closed_error()
        _fail_all(queued, error)
        if self._link is not None:
            self._drop(self._link, error, resend=False)
        await self._tasks.wait()

    def _flush(self) -> None:
        """Write what this turn queued, at once and in order; first connect if there is no link."""
        self._scheduled = False
        if not self._queued or self._closed:
            return
        link = self._link
        if link is None:
            if self._connector is None:
                self._connector = self._tasks.start(self._connect())
            return  # written once connected (or failed if the connection cannot be made)
        if link.transport.is_closing():
            # Lost, and told so in a callback still to come: its waiting calls go again with these.
            self._drop(link, redis.exceptions.ConnectionError("the connection to Redis was lost"), resend=True)
            self._flush()
            return
        while self._queued:
            batch, self._queued = self._queued[:MAX_BATCH], self._queued[MAX_BATCH:]
            self._write(link, batch)

    def _write(self, link: _Link, batch: list[_Call]) -> None:
        packed: list[bytes] = []
        sendable: list[_Call] = []
        for call in batch:
            try:
                packed.append(_pack(call))
            except (TypeError, ValueError, UnicodeError) as exc:
                _fail(call, redis.exceptions.DataError(f"a script argument cannot be sent to Redis: {exc}"))
            else:
                call.attempts += 1
                sendable.append(call)
        if not sendable:
            return
        loop = asyncio.get_running_loop()
        if not self._waiting:
            self._progress_at = loop.time()
        self._waiting.extend(sendable)
        if self._watchdog is None:
            self._watchdog = loop.call_later(self._timeout, self._watch)
        # The transport sends what the socket takes now and buffers the rest; a Redis that stops
        # reading stops answering too, and the watchdog ends the waiting calls.
        link.transport.writelines(packed)

    def _requeue(self, calls: list[_Call]) -> None:
        if self._closed:  # a load or a dropped connection finishing after aclose()
            _fail_all(calls, _closed_error())
            return
        self._queued.extend(calls)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    async def _connect(self) -> None:
        """Open the batcher's connection with redis-py (address, TLS, password, database and
        protocol as the client's own), then read its replies here (:class:`_Link`); write what
        waits, or fail it when no connection can be made."""
        pool = self._pool
        assert pool is not None  # a cluster client's calls are direct
        # No socket timeout: redis-py would time each write with a task and each reply with a
        # timer; the watchdog times the connection instead.
        conn = pool.connection_class(**{**pool.connection_kwargs, "socket_timeout": None})
        try:
            try:
                await conn.connect()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
                link = _Link(self, conn)
            except BaseException:
                await conn.disconnect(nowait=True)
                raise
        except Exception as exc:
            queued, self._queued = self._queued, []
            _fail_all(queued, exc)
            return
        finally:
            self._connector = None
        if self._closed:  # closed while connecting
            await link.close()
            return
        self._link = link
        self._flush()

    def _reply(self, link: _Link, reply: Any) -> None:
        """``reply`` read on ``link``: the answer to the call written first of those waiting."""
        if link is not self._link:
            return
        if isinstance(reply, redis.exceptions.ConnectionError):
            # A server still loading its data, say: redis-py's client raises these as if the
            # connection failed, and so are they taken here (the calls go again on a new one).
            self._drop(link, reply, resend=True)
            return
        if not self._waiting:
            self._drop(link, redis.exceptions.ConnectionError("Redis sent a reply no call waited for"), resend=False)
            return
        self._progress_at = asyncio.get_running_loop().time()
        self._settle(self._waiting.popleft(), reply)

    def _settle(self, call: _Call, reply: Any) -> None:
        if isinstance(reply, redis.exceptions.NoScriptError) and not call.loaded:
            self._load_then_send(call)
        elif call.future.done():
            return
        elif isinstance(reply, Exception):
            call.future.set_exception(reply)
        else:
            call.future.set_result(reply)

    def _load_then_send(self, call: _Call) -> None:
        """Load ``call``'s script once for every call that met NOSCRIPT with it, then send them again."""
        call.loaded = True
        waiting = self._loading.get(call.script.sha)
        if waiting is not None:
            waiting.append(call)
            return
        self._loading[call.script.sha] = [call]

        async def load() -> None:
            try:
                await self._redis.script_load(call.script.script)
            except Exception as exc:
                for each in self._loading.pop(call.script.sha, []):
                    _fail(each, exc)
            else:
                again = [c for c in self._loading.pop(call.script.sha, []) if not c.future.done()]
                for each in again:
                    each.attempts = 0
                self._requeue(again)

        self._tasks.start(load())

    def _watch(self) -> None:
        self._watchdog = None
        link = self._link
        if link is None or not self._waiting:
            return
        idle = asyncio.get_running_loop().time() - self._progress_at
        if idle >= self._timeout:
            error = redis.exceptions.TimeoutError(f"Redis did not answer within {self._timeout:g} s")
            self._drop(link, error, resend=False)
        else:
            self._watchdog = asyncio.get_running_loop().call_later(self._timeout - idle, self._watch)

    def _drop(self, link: _Link, error: Exception, *, resend: bool) -> None:
        """Give up ``link``: close it, and send its waiting calls again (``resend``, once) or fail them."""
        if link is not self._link:
            return  # dropped already
        self._link = None
        calls, self._waiting = list(self._waiting), deque()
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        self._tasks.start(link.close())
        again: list[_Call] = []
        for call in calls:
            if resend and not self._closed and call.attempts < SEND_ATTEMPTS and not call.future.done():
                again.append(call)
            else:
                _fail(call, error)
        if again:
            self._requeue(again)


class _Link(asyncio.Protocol):
    """The batcher's connection once redis-py has opened it (handshake, TLS, AUTH, SELECT done):
    replies are parsed by hiredis as the bytes arrive and handed to the batcher in order, in the
    transport's own callback. redis-py's reading path (a task reading a stream, a coroutine and a
    future per reply) cost more of this process's CPU than the scripts cost Redis when calls come
    one at a time.

    The parser is made as redis-py makes its own for the connection (the same error classes, the
    same decoding), so callers get the replies and exceptions redis-py's client would give them.
    """

    def __init__(self, batcher: ScriptBatcher, conn: AbstractConnection) -> None:
        self._batcher = batcher
        self._conn = conn
        # redis-py keeps the connected stream's writer to itself; its transport is the socket.
        writer = getattr(conn, "_writer", None)
        if writer is None:
            raise redis.exceptions.ConnectionError("redis-py did not leave an open connection to read from")
        # A socket's transport reads and writes; the stream writer types it for writing only.
        self.transport = cast(asyncio.Transport, writer.transport)
        options: dict[str, Any] = {
            "protocolError": redis.exceptions.InvalidResponse,
            "replyError": BaseParser.parse_error,
            "notEnoughData": _NOT_ENOUGH_DATA,
        }
        if conn.encoder.decode_responses:
            options["encoding"] = conn.encoder.encoding
            options["errors"] = conn.encoder.encoding_errors
        self._parser = hiredis.Reader(**options)
        # Nothing is left unread after the handshake (each of its replies was read in turn).
        self.transport.set_protocol(self)
        if not self.transport.is_reading():  # paused by the stream's flow control: never here so far
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        try:
            parser.feed(data)
            while (reply := parser.gets()) is not _NOT_ENOUGH_DATA:
                if _PUSH is not None and isinstance(reply, _PUSH):
                    continue  # RESP3 out-of-band data (none is asked for on this connection)
                self._batcher._reply(self, reply)
        except redis.exceptions.InvalidResponse as exc:
            self._batcher._drop(self, redis.exceptions.ConnectionError(f"Redis sent a reply that cannot be read: {exc}"), resend=True)

    def eof_received(self) -> bool:
        return False  # the transport closes; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        error = redis.exceptions.ConnectionError(
            f"the connection to Redis was lost: {exc}" if exc is not None else "Redis closed the connection"
        )
        self._batcher._drop(self, error, resend=True)

    def close(self) -> Awaitable[None]:
        """Close the socket at once (what was not sent is dropped with the calls waiting on it);
        to await: redis-py forgetting the connection (its writer is this transport)."""
        self.transport.abort()
        return self._conn.disconnect(nowait=True)


def _pack(call: _Call) -> bytes:
    """``EVALSHA`` of ``call`` in the Redis protocol, packed by hiredis in C: redis-py's own packer
    (pure Python, re-joining its buffer at every argument) cost 13 µs for an insert with a 6 KB
    envelope against hiredis's 2.3 µs, the same bytes (floats too: hiredis writes their ``repr``,
    as redis-py does; a test holds both to it)."""
    command = ("EVALSHA", call.script.sha, len(call.keys), *call.keys, *call.args)
    return bytes(hiredis.pack_command(command))


def _closed_error() -> redis.exceptions.ConnectionError:
    return redis.exceptions.ConnectionError("the script batcher is closed")


def _fail_all(calls: list[_Call], error: BaseException) -> None:
    for call in calls:
        _fail(call, error)


def _fail(call: _Call, error: BaseException) -> None:
    if not call.future.done():
        call.future.set_exception(error)
