"""Background tasks: kept until done, awaited together at close, their errors left to their owner."""

from __future__ import annotations

import asyncio

from ensign.background import Background


async def test_wait_returns_once_the_tasks_started_before_it_are_done() -> None:
    background = Background()
    finished: list[str] = []
    release = asyncio.Event()
    never = asyncio.Event()

    async def later(name: str, event: asyncio.Event) -> None:
        await event.wait()
        finished.append(name)

    async def starts_another() -> None:
        await release.wait()
        background.start(later("started meanwhile", never))
        finished.append("first")

    background.start(starts_another())
    background.start(later("second", release))
    assert len(background) == 2
    waiting = asyncio.ensure_future(background.wait())
    await asyncio.sleep(0)
    assert not waiting.done()  # nothing has finished yet
    release.set()
    # Returns although a task started meanwhile never ends: a waiter is not held by new work.
    await asyncio.wait_for(waiting, 1)
    assert finished == ["first", "second"]
    assert len(background) == 1
    never.set()
    await background.wait()
    assert len(background) == 0


async def test_a_failed_task_is_dropped_and_wait_does_not_raise_it() -> None:
    background = Background()

    async def fails() -> None:
        raise RuntimeError("the owner's to handle")

    task = background.start(fails())
    await background.wait()
    assert isinstance(task.exception(), RuntimeError)
    assert len(background) == 0
