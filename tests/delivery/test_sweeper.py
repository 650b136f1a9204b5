"""sweep.lua, MessageQueue.sweep_expired and the APScheduler job, against a real Redis."""

from __future__ import annotations

import asyncio
import logging

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from delivery.keys import sweeper_claim_key
from delivery.queue import MessageQueue
from delivery.sweeper import JOB_ID, add_sweeper_job, run_sweep
from ensign.errors import InvalidRequest

NOW = 1_700_000_000.0
DAY = 86_400


def mid(n: int) -> str:
    return f"0x{n:064x}"


async def members(redis, queue: MessageQueue, account: str) -> tuple[set[str], set[str], set[str]]:
    keys = queue.keys(account)
    return (
        {m.decode() for m in await redis.zrange(keys.queue, 0, -1)},
        {m.decode() for m in await redis.zrange(keys.expiry, 0, -1)},
        {f.decode() for f in await redis.hkeys(keys.messages)},
    )


async def test_sweep_removes_expired_messages_from_every_structure(queue, redis):
    await queue.enqueue("alice", mid(1), b"short", now=NOW, ttl_seconds=60)
    await queue.enqueue("alice", mid(2), b"long", now=NOW, ttl_seconds=DAY)
    await queue.enqueue("bob", mid(3), b"short", now=NOW, ttl_seconds=60)

    removed = await queue.sweep_expired(NOW + 60)

    assert removed == 2
    assert await members(redis, queue, "alice") == ({mid(2)},) * 3
    assert await members(redis, queue, "bob") == (set(),) * 3


async def test_sweep_keeps_messages_that_have_not_expired(queue):
    await queue.enqueue("alice", mid(1), b"e", now=NOW, ttl_seconds=60)

    assert await queue.sweep_expired(NOW + 59.999) == 0
    assert [m.id for m in (await queue.fetch("alice", now=NOW + 59.999)).items] == [mid(1)]


async def test_no_key_left_once_every_message_expired_and_was_swept(queue, keys_under, redis_prefix):
    for i in range(5):
        await queue.enqueue(f"user{i}", mid(i), b"e", now=NOW, ttl_seconds=10 + i)

    await queue.sweep_expired(NOW + 12)
    left_midway = await keys_under(redis_prefix)
    await queue.sweep_expired(NOW + 14)

    assert left_midway == sorted(queue.keys("user3").keys + queue.keys("user4").keys)
    assert await keys_under(redis_prefix) == []


async def test_sweep_removes_more_messages_than_one_batch(queue, redis):
    for i in range(53):
        await queue.enqueue("alice", mid(i), b"e", now=NOW, ttl_seconds=10)
    await queue.enqueue("alice", mid(100), b"e", now=NOW, ttl_seconds=DAY)

    removed = await queue.sweep_expired(NOW + 10, batch=7)

    assert removed == 53
    assert await members(redis, queue, "alice") == ({mid(100)},) * 3


async def test_concurrent_sweeps_remove_each_message_once(queue, redis, redis_prefix):
    for account in ("alice", "bob", "carol"):
        for i in range(40):
            await queue.enqueue(account, mid(i), b"e", now=NOW, ttl_seconds=10)
    others = [MessageQueue(redis, prefix=redis_prefix, require_account=False) for _ in range(3)]

    counts = await asyncio.gather(*(q.sweep_expired(NOW + 10, batch=5) for q in others))

    assert sum(counts) == 120
    for account in ("alice", "bob", "carol"):
        assert await members(redis, queue, account) == (set(), set(), set())


async def test_sweep_touches_only_its_own_prefix(redis, redis_prefix, keys_under):
    # Glob characters in a prefix are literal: "a*:" must not match "ab:".
    starry = MessageQueue(redis, prefix=f"{redis_prefix}a*[1]:", require_account=False)
    plain = MessageQueue(redis, prefix=f"{redis_prefix}ab1:", require_account=False)
    await starry.enqueue("alice", mid(1), b"e", now=NOW, ttl_seconds=10)
    await plain.enqueue("alice", mid(1), b"e", now=NOW, ttl_seconds=10)

    assert await starry.sweep_expired(NOW + 10) == 1

    assert await keys_under(redis_prefix) == sorted(plain.keys("alice").keys)


@pytest.mark.parametrize("batch", [0, -3, 10_000])
async def test_sweep_rejects_an_unbounded_batch(queue, batch):
    with pytest.raises(InvalidRequest, match="batch"):
        await queue.sweep_expired(NOW, batch=batch)


async def test_run_sweep_logs_the_count(queue, caplog):
    await queue.enqueue("alice", mid(1), b"e", now=NOW, ttl_seconds=10)
    caplog.set_level(logging.INFO, logger="delivery.sweeper")

    removed = await run_sweep(queue, clock=lambda: NOW + 10)

    assert removed == 1
    assert "swept 1 expired messages" in caplog.text


async def test_claim_lets_one_process_sweep_per_interval(redis, redis_prefix, keys_under):
    first = MessageQueue(redis, prefix=redis_prefix, require_account=False)
    second = MessageQueue(redis, prefix=redis_prefix, require_account=False)
    await first.enqueue("alice", mid(1), b"e", now=NOW, ttl_seconds=10)

    by_first = await run_sweep(first, clock=lambda: NOW + 10, claim_seconds=30)
    await first.enqueue("alice", mid(2), b"e", now=NOW, ttl_seconds=10)
    by_second = await run_sweep(second, clock=lambda: NOW + 10, claim_seconds=30)

    assert (by_first, by_second) == (1, None)
    # The claim is the only key left beside the unswept queue, and it expires by itself.
    claim = sweeper_claim_key(redis_prefix)
    assert await keys_under(redis_prefix) == sorted(first.keys("alice").keys + [claim])
    assert 0 < await redis.ttl(claim) <= 30


async def test_sweeper_job_is_added_with_interval_and_no_overlap(queue):
    scheduler = AsyncIOScheduler()
    scheduler.start(paused=True)
    try:
        job = add_sweeper_job(scheduler, queue, interval_seconds=120, batch=50)
        # Adding it again (an app factory run twice) replaces the job instead of doubling it.
        add_sweeper_job(scheduler, queue, interval_seconds=120, batch=50)

        assert [j.id for j in scheduler.get_jobs()] == [JOB_ID]
        assert isinstance(job.trigger, IntervalTrigger)
        assert job.trigger.interval.total_seconds() == 120
        assert job.max_instances == 1 and job.coalesce is True
        assert job.kwargs["batch"] == 50 and job.kwargs["claim_seconds"] == 108
    finally:
        scheduler.shutdown(wait=False)


async def test_scheduled_sweeper_removes_expired_messages(queue, keys_under, redis_prefix):
    await queue.enqueue("alice", mid(1), b"e", now=NOW, ttl_seconds=10)
    await queue.enqueue("bob", mid(2), b"e", now=NOW, ttl_seconds=10)
    scheduler = AsyncIOScheduler()
    add_sweeper_job(scheduler, queue, interval_seconds=0.1, clock=lambda: NOW + 10, claim=False)

    scheduler.start()
    try:
        for _ in range(100):
            if not await keys_under(redis_prefix):
                break
            await asyncio.sleep(0.05)
    finally:
        scheduler.shutdown(wait=False)

    assert await keys_under(redis_prefix) == []
