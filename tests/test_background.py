"""Background tasks: kept until done, awaited together at close, their errors left to their owner."""

from __future__ import annotations

import asyncio

from ensign.background import Background


async def test_wait_returns_once_every_task_is_done_including_those_started_meanwhile() -> None:
    background = Background()
    finished: list[str] = []
    release = asyncio.Event()

    async def later(name: str) -> None:
        await release.wait()
        finished.append(name)

    async def starts_another() -> None:
        await release.wait()
        background.start(later("second"))
        finished.append("first")

    background.start(starts_another())
    assert len(background) == 1
    waiting = asyncio.ensure_future(background.wait())
    await asyncio.sleep(0)
    assert not waiting.done()  # nothing has finished yet
    release.set()
    await asyncio.wait_for(waiting, 1)
    assert finished == ["first", "second"]
    assert len(background) == 0


async def test_a_failed_task_is_dropped_and_wait_does_not_raise_it() -> None:
    background = Background()

    async def fails() -> None:
        raise RuntimeError("the owner's to handle")

    task = background.start(fails())
    await background.wait()
    assert isinstance(task.exception(), RuntimeError)
    assert len(background) == 0
