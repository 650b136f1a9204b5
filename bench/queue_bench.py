"""Queue micro-benchmark: ack cost at 1,000 vs 100,000 queued, memory per message, submit rate.

    REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python bench/queue_bench.py [--big 100000]

Writes only under a fresh ``bench:<hex>:`` prefix and deletes its queues at the end. Needs about
``big`` × 6.5 KB of Redis memory (650 MB for 100,000).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
import uuid

import redis.asyncio as aioredis

from delivery.queue import MessageQueue

ENVELOPE_SIZE = 6000
NOW = 1_700_000_000.0
DAY = 86_400


def envelope(i: int) -> bytes:
    head = f'{{"message":"{i:08d}'.encode()
    return head + b"x" * (ENVELOPE_SIZE - len(head) - 2) + b'"}'


async def fill(queue: MessageQueue, account: str, count: int, in_flight: int = 64) -> float:
    """Enqueue ``count`` messages with ``in_flight`` concurrent calls; returns messages/s."""
    ids = iter(range(count))

    async def worker() -> None:
        for i in ids:
            await queue.enqueue(account, f"0x{i:064x}", envelope(i), now=NOW + i / 1e3, ttl_seconds=DAY)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return count / (time.perf_counter() - started)


async def ack_latencies(queue: MessageQueue, account: str, queued: int, samples: int) -> list[float]:
    """Ack ``samples`` random queued ids one call each; returns microseconds per call."""
    picked = random.Random(1).sample(range(queued), samples)
    out = []
    for i in picked:
        started = time.perf_counter()
        assert await queue.ack(account, [f"0x{i:064x}"]) == 1
        out.append((time.perf_counter() - started) * 1e6)
    return out


async def bulk_ack_usec_per_id(queue: MessageQueue, account: str, count: int) -> float:
    """Ack ``count`` queued ids in one script call (server work dominates); returns µs per id."""
    live: list[str] = []
    cursor = None
    while True:
        page = await queue.fetch(account, now=NOW, cursor=cursor, limit=1000)
        live += [m.id for m in page.items]
        if (cursor := page.next_cursor) is None:
            break
    ids = random.Random(2).sample(live, count)
    started = time.perf_counter()
    assert await queue.ack(account, ids) == count
    return (time.perf_counter() - started) * 1e6 / count


async def server_usec_per_evalsha(redis: aioredis.Redis) -> tuple[int, float]:
    stats = (await redis.info("commandstats")).get("cmdstat_evalsha", {})
    return int(stats.get("calls", 0)), float(stats.get("usec", 0))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--big", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=500)
    args = parser.parse_args()
    redis = aioredis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), max_connections=128)
    queue = MessageQueue(redis, prefix=f"bench:{uuid.uuid4().hex[:8]}:")
    try:
        info = await redis.info("server")
        print(f"redis {info['redis_version']}, envelope {ENVELOPE_SIZE} B")

        one_by_one = time.perf_counter()
        for i in range(2000):
            await queue.enqueue("seq", f"0x{i:064x}", envelope(i), now=NOW, ttl_seconds=DAY)
        print(f"enqueue, one call at a time:  {2000 / (time.perf_counter() - one_by_one):8.0f} msg/s")

        for queued in (1_000, args.big):
            account = f"acct{queued}"
            rate = await fill(queue, account, queued)
            memory = sum([await redis.memory_usage(k, samples=0) or 0 for k in queue.keys(account).keys])
            calls0, usec0 = await server_usec_per_evalsha(redis)
            latencies = await ack_latencies(queue, account, queued, min(args.samples, queued // 2))
            calls1, usec1 = await server_usec_per_evalsha(redis)
            server = (usec1 - usec0) / max(1, calls1 - calls0)
            bulk = await bulk_ack_usec_per_id(queue, account, 400)
            print(
                f"{queued:>7} queued: enqueue {rate:6.0f} msg/s (64 in flight); "
                f"memory {memory / queued:6.0f} B/msg = {memory / queued / ENVELOPE_SIZE:.2f}x envelope; "
                f"ack p50 {statistics.median(latencies):5.0f} us, p99 "
                f"{statistics.quantiles(latencies, n=100)[98]:5.0f} us, server {server:4.1f} us/EVALSHA; "
                f"bulk ack {bulk:4.1f} us/id"
            )
    finally:
        for account in ("seq", "acct1000", f"acct{args.big}"):
            await queue.delete_queue(account)
        await redis.aclose()


if __name__ == "__main__":
    asyncio.run(main())
