"""Script calls of concurrent requests, pipelined to Redis on one connection of their own.

Under load many submissions reach a script call (their rate buckets, their insert) in the same
turn of the event loop. Through redis-py's client each call, and each pipeline, pays for a pool
checkout and release, a task timing the write, a timer around every reply and the client's
observability hooks: more of this process's CPU than the script costs Redis. Here the calls made
in one turn go out as one write on a connection the batcher holds for itself, and each write
follows the one before without waiting for its replies (Redis answers a connection's commands in
order); one reader reads the replies in that order, while any are outstanding, and hands each
caller its own. Not a transaction: each script stays atomic on its own, and they touch different
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
from typing import Any

import hiredis
import redis.exceptions
from redis.asyncio import RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.commands.core import AsyncScript

from ensign.redis_client import REDIS_TIMEOUT, RedisClient

__all__ = ["ScriptBatcher"]

#: Most calls in one write; more go in the next one.
MAX_BATCH = 128

#: Times a call is sent at most: once, and once more on a new connection when the first broke.
SEND_ATTEMPTS = 2


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
        self._waiting: deque[_Call] = deque()  # written on self._conn, reply not read yet, in order
        self._conn: AbstractConnection | None = None
        self._connecting: asyncio.Lock | None = None
        self._reader: asyncio.Task[None] | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._progress_at = 0.0  # loop time of the last reply, or of the first write after none waited
        self._tasks: set[asyncio.Future[Any]] = set()  # referenced until done
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
        if self._conn is not None:
            self._drop(self._conn, error, resend=False)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _track(self, task: asyncio.Future[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _flush(self) -> None:
        self._scheduled = False
        while self._queued:
            batch, self._queued = self._queued[:MAX_BATCH], self._queued[MAX_BATCH:]
            self._track(asyncio.ensure_future(self._send(batch)))

    def _requeue(self, calls: list[_Call]) -> None:
        if self._closed:  # a load or a dropped connection finishing after aclose()
            _fail_all(calls, _closed_error())
            return
        self._queued.extend(calls)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    async def _connection(self) -> AbstractConnection:
        """The batcher's connection, connected; a new one after the last was dropped."""
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._conn is None:
                pool = self._pool
                assert pool is not None  # a cluster client's calls are direct
                # No socket timeout: redis-py would then time each write with a task and each
                # reply with a timer; the watchdog times the connection instead.
                conn = pool.connection_class(**{**pool.connection_kwargs, "socket_timeout": None})
                try:
                    await conn.connect()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
                except BaseException:
                    await conn.disconnect(nowait=True)
                    raise
                self._conn = conn
            return self._conn

    async def _send(self, batch: list[_Call]) -> None:
        if self._closed:  # flushed just before aclose(): no new connection after it
            _fail_all(batch, _closed_error())
            return
        conn = self._conn
        if conn is None:
            try:
                conn = await self._connection()
            except Exception as exc:
                _fail_all(batch, exc)
                return
        if not conn.is_connected:
            # Dropped by redis-py after a failed write or read the reader has not handled yet:
            # writing now would reconnect this object under the reader's feet.
            self._drop(conn, redis.exceptions.ConnectionError("the connection to Redis was lost"), resend=True)
            self._requeue(batch)
            return
        packed: list[bytes] = []
        sendable: list[_Call] = []
        for call in batch:
            try:
                packed.append(_pack(call))
            except (TypeError, ValueError, UnicodeError) as exc:
                _fail(call, redis.exceptions.DataError(f"a script argument cannot be sent to Redis: {exc}"))
            else:
                sendable.append(call)
        batch = sendable
        if not batch:
            return
        loop = asyncio.get_running_loop()
        if not self._waiting:
            self._progress_at = loop.time()
        for call in batch:
            call.attempts += 1
        self._waiting.extend(batch)
        if self._reader is None:
            self._reader = loop.create_task(self._read(conn))
            self._track(self._reader)
        if self._watchdog is None:
            self._watchdog = loop.call_later(self._timeout, self._watch)
        try:
            # Connected and without a health check, the write happens before this first yields,
            # so writes reach the socket in the order their calls joined self._waiting.
            await conn.send_packed_command(packed, check_health=False)
        except Exception as exc:
            self._drop(conn, exc, resend=True)

    async def _read(self, conn: AbstractConnection) -> None:
        """Read replies on ``conn`` in order while calls wait on it."""
        loop = asyncio.get_running_loop()
        try:
            while self._waiting and self._conn is conn:
                try:
                    reply = await conn.read_response()
                except redis.exceptions.ResponseError as error:
                    reply = error
                if self._conn is not conn:
                    return
                self._progress_at = loop.time()
                self._settle(self._waiting.popleft(), reply)
        except Exception as exc:
            self._drop(conn, exc, resend=True)
        finally:
            if self._reader is asyncio.current_task():
                self._reader = None

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

        self._track(asyncio.ensure_future(load()))

    def _watch(self) -> None:
        self._watchdog = None
        conn = self._conn
        if conn is None or not self._waiting:
            return
        idle = asyncio.get_running_loop().time() - self._progress_at
        if idle >= self._timeout:
            error = redis.exceptions.TimeoutError(f"Redis did not answer within {self._timeout:g} s")
            self._drop(conn, error, resend=False)
        else:
            self._watchdog = asyncio.get_running_loop().call_later(self._timeout - idle, self._watch)

    def _drop(self, conn: AbstractConnection, error: Exception, *, resend: bool) -> None:
        """Give up ``conn``: close it, and send its waiting calls again (``resend``, once) or fail them."""
        if conn is not self._conn:
            return  # dropped already
        self._conn = None
        calls, self._waiting = list(self._waiting), deque()
        reader, self._reader = self._reader, None
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        self._track(asyncio.ensure_future(conn.disconnect(nowait=True)))
        again: list[_Call] = []
        for call in calls:
            if resend and not self._closed and call.attempts < SEND_ATTEMPTS and not call.future.done():
                again.append(call)
            else:
                _fail(call, error)
        if again:
            self._requeue(again)


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
