"""Soak: one delivery process at half its maximum for an hour, memory and p99 each minute.

    .venv/bin/python -m bench.soak                      # 60 minutes (README "Faults and durability")
    .venv/bin/python -m bench.soak --minutes 3          # a short look

It starts its own Redis (:mod:`bench.redis_servers`, ``appendonly yes``, ``appendfsync
everysec``) and one delivery process (:mod:`bench.server`: the production app and serving loop),
signs up the users, measures the maximum (closed loop, ``--connections`` in flight, 20 s), then
offers half of it open-loop (latency from the scheduled send time) for ``--minutes`` while a
receiver in this process drains the queues with the queue's own fetch and ack (so memory shows
what the service keeps, not a growing backlog). Each envelope is built when it is sent (signed
and encrypted as a dm3 client does), so none repeats. After every minute it samples the
process's resident memory, Redis' ``used_memory`` and that minute's p50/p99, then prints the
table and writes a PNG plot (``--plot``, default ``bench/results/soak.png``; needs the ``bench``
extra's matplotlib).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from delivery.queue import MessageQueue
from ensign.protocol.envelope import build_envelope
from ensign.protocol.message import create_message

from .fixtures import BenchUser, ServiceSpec, make_users
from .httpload import build_request, closed_loop, open_connections, open_loop, percentile
from .redis_servers import RedisServer
from .services import ServiceProcess, free_port, signup

__all__ = ["main"]

RESULTS = Path(__file__).resolve().parent / "results"
MAX_SECONDS = 20.0


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Envelopes:
    """Request bytes of a fresh ``dm3_submitMessage`` each call, between random users."""

    def __init__(self, users: list[BenchUser], ds_key: str) -> None:
        self.users, self.ds_key, self.rng, self.count = users, ds_key, random.Random(5), 0

    def __call__(self, _: int) -> bytes:
        self.count += 1
        receiver = self.rng.randrange(len(self.users))
        sender = (receiver + 1 + self.rng.randrange(len(self.users) - 1)) % len(self.users)
        s, r = self.users[sender], self.users[receiver]
        message = create_message(r.name, s.name, f"soak {self.count} " * 40, s.signing_secret_key,
                                 timestamp=int(time.time() * 1000) * 1000 + self.count % 1000)
        env = build_envelope(message, s.signing_secret_key, r.encryption_public_key, self.ds_key)
        body = {"jsonrpc": "2.0", "id": self.count, "method": "dm3_submitMessage",
                "params": [json.dumps(env.to_json())]}
        return build_request("POST", "/rpc", json.dumps(body).encode())


async def _drain(queue: MessageQueue, users: list[BenchUser], stop: asyncio.Event) -> None:
    """The receivers: fetch and acknowledge every queue, over and over."""
    while not stop.is_set():
        for user in users:
            page = await queue.fetch(user.address, now=time.time(), limit=1000)
            if page.items:
                await queue.ack(user.address, [m.id for m in page.items], now=time.time())
        await asyncio.sleep(1.0)


async def soak(minutes: int, connections: int, users_count: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ensign-soak-") as tmp:
        root = Path(tmp)
        redis_server = RedisServer(root / "redis").start()
        users = await asyncio.to_thread(make_users, users_count, 2)
        spec = ServiceSpec.create(redis_server.url, "soak:", users)
        spec_path = root / "spec.json"
        spec.save(spec_path)
        server = ServiceProcess.delivery(spec_path, free_port(), root)
        redis = aioredis.Redis(port=redis_server.port)
        stop = asyncio.Event()
        try:
            await server.start()
            import aiohttp

            async with aiohttp.ClientSession() as http:
                for user in users:
                    await signup(http, f"http://127.0.0.1:{server.port}", user.name, user.profile)
            queue = MessageQueue(redis, prefix="soak:")
            drainer = asyncio.ensure_future(_drain(queue, users, stop))
            requests = Envelopes(users, spec.encryption_public_key)
            conns = await open_connections([("127.0.0.1", server.port)], connections)
            maximum = await closed_loop(conns, requests, duration=MAX_SECONDS, warmup=2.0)
            rate = maximum.completed / maximum.elapsed / 2
            print(f"maximum {maximum.completed / maximum.elapsed:.0f} submissions/s; soaking at {rate:.0f}/s "
                  f"for {minutes} min", flush=True)
            for minute in range(1, minutes + 1):
                result = await open_loop(conns, requests, rate=rate, count=int(rate * 60))
                info = await redis.info("memory")
                row = {
                    "minute": minute,
                    "rate": round(result.completed / result.elapsed, 1),
                    "errors": result.errors,
                    "p50_ms": round(percentile(result.latencies, 0.5) * 1000, 1),
                    "p99_ms": round(percentile(result.latencies, 0.99) * 1000, 1),
                    "service_rss_mb": round(_rss_mb(server.pid), 1),
                    "redis_used_mb": round(int(info["used_memory"]) / 2**20, 1),
                }
                rows.append(row)
                print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
            for conn in conns:
                conn.close()
        finally:
            stop.set()
            await server.stop()
            await redis.aclose()
            redis_server.stop()
    return rows


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [r["minute"] for r in rows]
    fig, (memory, latency) = plt.subplots(2, 1, sharex=True, figsize=(8, 6))
    memory.plot(minutes, [r["service_rss_mb"] for r in rows], label="delivery process RSS", marker=".")
    memory.plot(minutes, [r["redis_used_mb"] for r in rows], label="Redis used_memory", marker=".")
    memory.set_ylabel("MB")
    memory.legend()
    latency.plot(minutes, [r["p99_ms"] for r in rows], label="p99", marker=".")
    latency.plot(minutes, [r["p50_ms"] for r in rows], label="p50", marker=".")
    latency.set_ylabel("submit latency, ms")
    latency.set_xlabel("minute")
    latency.legend()
    fig.suptitle("Ensign delivery soak at half the maximum load")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--plot", type=Path, default=RESULTS / "soak.png")
    args = parser.parse_args()
    rows = asyncio.run(soak(args.minutes, args.connections, args.users))
    print("| minute | submissions/s | errors | p50 ms | p99 ms | service RSS MB | Redis used MB |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['minute']} | {r['rate']} | {r['errors']} | {r['p50_ms']} | {r['p99_ms']} | "
              f"{r['service_rss_mb']} | {r['redis_used_mb']} |")
    plot(rows, args.plot)
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
