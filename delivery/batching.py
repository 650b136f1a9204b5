"""Script calls of concurrent requests sent to Redis together: one pipeline per event-loop turn.

Under load many submissions reach their insert in the same turn of the event loop. Each call on
its own costs a connection checkout, a write, a read and redis-py's bookkeeping around them; sent
as one pipeline (not a transaction: each script stays atomic on its own, and they touch different
accounts) they share all of that. A call made alone still goes out at once, in the next turn.

Every caller gets its own script's reply or error. A connection failure fails every call of the
pipeline, as it would have failed each of them. A script the server does not know (after a
restart or ``SCRIPT FLUSH``) is retried alone by redis-py's script object, which loads it.

Only for a single Redis server: a cluster client keeps calling each script directly (its
pipeline splits by node anyway, and its script bookkeeping differs).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.asyncio import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from ensign.redis_client import RedisClient

__all__ = ["ScriptBatcher"]

#: Most calls in one pipeline; more wait for the next one.
MAX_BATCH = 128

_Call = tuple[AsyncScript, Sequence[Any], Sequence[Any], "asyncio.Future[Any]"]


class ScriptBatcher:
    """Runs :class:`AsyncScript` calls, batching those made in the same event-loop turn."""

    def __init__(self, redis: RedisClient) -> None:
        self._redis = redis
        self._direct = isinstance(redis, RedisCluster)
        self._pending: list[_Call] = []
        self._scheduled = False
        self._sending: set[asyncio.Future[None]] = set()  # referenced until done

    async def call(self, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """``await script(keys=keys, args=args)``, possibly in a pipeline with other calls."""
        if self._direct:
            return await script(keys=keys, args=args)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((script, keys, args, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            task = asyncio.ensure_future(self._send(batch))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[_Call]) -> None:
        if len(batch) == 1:
            script, keys, args, future = batch[0]
            await _settle(future, script(keys=keys, args=args))
            return
        pipe = self._redis.pipeline(transaction=False)
        for script, keys, args, _ in batch:
            pipe.evalsha(script.sha, len(keys), *keys, *args)
        try:
            replies = await pipe.execute(raise_on_error=False)
        except BaseException as exc:
            for *_, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (script, keys, args, future), reply in zip(batch, replies):
            if isinstance(reply, NoScriptError):
                await _settle(future, script(keys=keys, args=args))
            elif isinstance(reply, BaseException):
                if not future.done():
                    future.set_exception(reply)
            elif not future.done():
                future.set_result(reply)


async def _settle(future: asyncio.Future[Any], call: Any) -> None:
    try:
        result = await call
    except Exception as exc:
        if not future.done():
            future.set_exception(exc)
    else:
        if not future.done():
            future.set_result(result)
