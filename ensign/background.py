"""Tasks a caller starts and does not await: kept referenced until done, awaited together at close.

The event loop holds only a weak reference to a running task, so one nobody references can be
collected before it finishes (the asyncio documentation warns of it). Each owner of such tasks
(the script batcher's connects and loads, the limiter's loans settled after their request ended,
the notifier's jobs being queued) keeps one :class:`Background` for them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")


class Background:
    """The tasks one owner started and has not seen finish."""

    __slots__ = ("_running",)

    def __init__(self) -> None:
        self._running: set[asyncio.Future[Any]] = set()

    def start(self, work: Awaitable[T]) -> asyncio.Future[T]:
        """Run ``work`` (a coroutine or a future) in the background, referenced until it is done."""
        task = asyncio.ensure_future(work)
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return task

    def __len__(self) -> int:
        return len(self._running)

    async def wait(self) -> None:
        """Return once every task started before this call is done; their errors are not raised
        (each task's owner handles its own outcome). Tasks started meanwhile are not waited for:
        under steady load new ones keep coming, and a caller waiting for those too (the notifier
        before each round) might never go on."""
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
