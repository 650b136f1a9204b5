"""What durability costs: the queue's insert under each Redis durability setting.

    .venv/bin/python -m bench.durability [--seconds 10] [--concurrency 16]

For each setting it starts its own ``redis-server`` processes (:mod:`bench.redis_servers`; the
machine's Redis 7 when it has one) on free loopback ports with an append-only file in a temporary
directory, runs the delivery service's insert (:meth:`delivery.queue.MessageQueue.enqueue`, the
script every submission ends in; 3 KB envelopes) closed-loop with ``concurrency`` inserts in
flight for ``seconds``, and stops them:

==========================  =====================================================================
everysec                    ``appendfsync everysec`` (Ensign's compose file): fsync once a second
always                      ``appendfsync always``: fsync before every answer
replica, no WAIT            everysec, plus a replica; the answer does not wait for it
replica, WAIT 1             everysec, plus a replica; ``REDIS_WAIT_REPLICAS=1``: each insert
                            waits until the replica has it
==========================  =====================================================================

The figures are inserts per second and the latency of one insert (p50, p99) as this machine gave
them; the disk and the other processes on the machine move them, so compare rows of one run.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from delivery.queue import MessageQueue

from .redis_servers import RedisServer

__all__ = ["measure", "main"]

ENVELOPE = b"x" * 3000
TTL = 3600


async def _insert_loop(queue: MessageQueue, until: float, latencies: list[float]) -> None:
    account = "0x" + secrets.token_hex(20)
    while time.monotonic() < until:
        started = time.perf_counter()
        await queue.enqueue(account, secrets.token_hex(32), ENVELOPE, now=time.time(), ttl_seconds=TTL)
        latencies.append(time.perf_counter() - started)


async def measure(name: str, root: Path, *, appendfsync: str, replica: bool, wait: int, seconds: float,
                  concurrency: int) -> dict[str, Any]:
    """One row: start the servers, insert closed-loop, stop them."""
    primary = RedisServer(root / f"{name}-primary", appendfsync=appendfsync).start()
    copy = RedisServer(root / f"{name}-replica", appendfsync=appendfsync).start() if replica else None
    try:
        client = aioredis.Redis(port=primary.port)
        if copy is not None:
            async with aioredis.Redis(port=copy.port) as replica_client:
                await replica_client.replicaof("127.0.0.1", primary.port)
                while (await replica_client.info("replication")).get("master_link_status") != "up":
                    await asyncio.sleep(0.05)
        queue = MessageQueue(client, prefix="durability:", require_account=False, wait_replicas=wait,
                             wait_timeout_ms=5000)
        latencies: list[float] = []
        started = time.monotonic()
        await asyncio.gather(*(_insert_loop(queue, started + seconds, latencies) for _ in range(concurrency)))
        elapsed = time.monotonic() - started
        await client.aclose()
    finally:
        for server in (primary, copy):
            if server is not None:
                server.stop()
    latencies.sort()
    return {
        "setting": name,
        "inserts": len(latencies),
        "rate": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))] * 1000, 2),
    }


async def run(seconds: float, concurrency: int) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="ensign-durability-") as tmp:
        root = Path(tmp)
        for name, appendfsync, replica, wait in (
            ("everysec", "everysec", False, 0),
            ("always", "always", False, 0),
            ("replica, no WAIT", "everysec", True, 0),
            ("replica, WAIT 1", "everysec", True, 1),
        ):
            rows.append(await measure(name, root, appendfsync=appendfsync, replica=replica, wait=wait,
                                      seconds=seconds, concurrency=concurrency))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.durability", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    rows = asyncio.run(run(args.seconds, args.concurrency))
    base = rows[0]["rate"]
    print(f"| setting | inserts/s | vs everysec | p50 ms | p99 ms |\n| --- | ---: | ---: | ---: | ---: |")
    for row in rows:
        ratio = row["rate"] / base
        print(f"| {row['setting']} | {row['rate']:.0f} | {ratio:.2f}× | {row['p50_ms']} | {row['p99_ms']} |")


if __name__ == "__main__":
    main()
