"""Fetch and acknowledge: throughput, the cost of one ack as the queue grows, memory per message.

Queues are filled through :meth:`delivery.queue.MessageQueue.enqueue` (the insert script the
service uses) with a real stored envelope: a 900-character message's envelope, postmarked and in
dm3's stored form, about 6 KB.

* **fetch** — closed loop of ``GET /delivery/messages/incoming/{name}?limit=100`` (first page, a
  session token each) over several receivers: pages and messages per second.
* **ack** — closed loop of ``POST …/syncAcknowledgements`` acknowledging 100 hashes each, until
  every queued message is acknowledged: acknowledgements per second.
* **one ack at 1,000 vs 100,000 queued** — one id per call, serially, on a queue of each size,
  the two queues taking turns call by call: the queue's ``ack`` (one EVALSHA) and the HTTP route;
  then 400 ids in one call, where Redis' own work per id dominates the round trip. The sorted
  sets make it O(log n), so none of these should move.
* **memory** — ``MEMORY USAGE`` of the big queue's three keys per message, against the size of the
  stored envelope.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from delivery.intake import stored_envelope
from ensign.protocol.canonical import parse_json, stringify
from ensign.protocol.crypto import EncryptionKeyPair
from ensign.protocol.envelope import open_delivery_information
from ensign.protocol.models import EncryptionEnvelop
from ensign.protocol.postmark import create_postmark

from .fixtures import BenchUser
from .httpload import Connection, build_request, closed_loop, open_connections
from .procstat import CpuMeter
from .services import ServiceProcess, login
from .suite import Suite

__all__ = ["run_inbox"]

PAGE = 100
TTL = 30 * 86_400


def stored_example(suite: Suite) -> bytes:
    """One stored envelope as the service stores it (postmarked, dm3's stored form)."""
    spec = suite.spec
    envelope = suite.envelopes[0]
    env = EncryptionEnvelop.from_json(parse_json(json.loads(envelope.body)["params"][0]))
    info = open_delivery_information(
        env, EncryptionKeyPair(public_key=spec.encryption_public_key, secret_key=spec.encryption_private_key)
    )
    receiver = suite.users[envelope.receiver]
    postmark = create_postmark(env.message, spec.signing_private_key, receiver.encryption_public_key,
                               int(time.time() * 1000))
    return stringify(stored_envelope(env.to_json(), info.to_json(), postmark)).encode()


def message_id(owner: int, index: int) -> str:
    return f"0x{owner:08x}{index:056x}"


async def fill(suite: Suite, user: BenchUser, owner: int, count: int, body: bytes, in_flight: int = 64) -> float:
    """Queue ``count`` messages for ``user``; returns inserts per second."""
    queue = suite.queue
    indexes = iter(range(count))
    now = time.time()

    async def worker() -> None:
        for i in indexes:
            await queue.enqueue(user.address, message_id(owner, i), body, now=now + i * 1e-6, ttl_seconds=TTL)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return count / (time.perf_counter() - started)


async def _serial(conn: Connection, request: bytes) -> tuple[int, bytes, float]:
    future: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
    started = time.perf_counter()
    conn.send(request, lambda status, body: future.set_result((status, body)))
    status, body = await future
    return status, body, time.perf_counter() - started


def _ack_request(user: BenchUser, token: str, ids: list[str]) -> bytes:
    body = {"acknowledgements": [{"contactAddress": "sender.eth", "messageHash": i} for i in ids]}
    return build_request("POST", f"/delivery/messages/{user.name}/syncAcknowledgements", json.dumps(body).encode(),
                         {"Authorization": f"Bearer {token}"})


def _fetch_request(user: BenchUser, token: str) -> bytes:
    return build_request("GET", f"/delivery/messages/incoming/{user.name}?limit={PAGE}",
                         headers={"Authorization": f"Bearer {token}"})


@dataclass(frozen=True)
class AckQueue:
    """A filled queue to acknowledge from: its owner, the owner's index in message ids, a session
    token, how many messages it holds."""

    user: BenchUser
    owner: int
    token: str
    queued: int


async def one_ack_costs(suite: Suite, server: ServiceProcess, queues: list[AckQueue], samples: int) -> list[dict[str, Any]]:
    """Serial single-id acks on each of ``queues``: the queue call and the HTTP route, then a page
    fetch and many ids in one call. The queues take turns call by call, so a change in the host's
    speed (it moves within a minute here) hits each queue's figures alike: measured one queue after
    the other, the ratio between a small and a big queue moved 0.95–1.63× between runs of the same code."""
    queue = suite.queue
    orders = [random.Random(q.owner).sample(range(q.queued), q.queued) for q in queues]
    direct: list[list[float]] = [[] for _ in queues]
    http: list[list[float]] = [[] for _ in queues]
    fetch: list[list[float]] = [[] for _ in queues]
    for k in range(samples):
        for q, order, times in zip(queues, orders, direct):
            started = time.perf_counter()
            removed = await queue.ack(q.user.address, [message_id(q.owner, order[k])])
            times.append(time.perf_counter() - started)
            assert removed == 1, "the message to acknowledge was not queued"
    (conn,) = await open_connections([("127.0.0.1", server.port)], 1)
    try:
        for k in range(samples, 2 * samples):
            for q, order, times in zip(queues, orders, http):
                status, body, seconds = await _serial(conn, _ack_request(q.user, q.token, [message_id(q.owner, order[k])]))
                assert status == 200 and json.loads(body) == {"acknowledged": 1}, (status, body[:200])
                times.append(seconds)
        for _ in range(min(50, samples)):
            for q, times in zip(queues, fetch):
                status, body, seconds = await _serial(conn, _fetch_request(q.user, q.token))
                assert status == 200, (status, body[:200])
                times.append(seconds)
    finally:
        conn.close()
    results = []
    for q, order, q_direct, q_http, q_fetch in zip(queues, orders, direct, http, fetch):
        # Many ids in one script call: Redis' own work per id dominates, so O(log n) shows here.
        rest = order[2 * samples :]
        bulk = rest[: min(400, len(rest) // 2)]
        started = time.perf_counter()
        assert await queue.ack(q.user.address, [message_id(q.owner, i) for i in bulk]) == len(bulk)
        bulk_seconds = time.perf_counter() - started
        results.append({
            "queued": q.queued,
            "bulk_ack_us_per_id": round(bulk_seconds / len(bulk) * 1e6, 2),
            "queue_ack_p50_us": round(statistics.median(q_direct) * 1e6, 1),
            "queue_ack_p99_us": round(sorted(q_direct)[int(len(q_direct) * 0.99) - 1] * 1e6, 1),
            "http_ack_p50_ms": round(statistics.median(q_http) * 1e3, 3),
            "http_fetch_page_p50_ms": round(statistics.median(q_fetch) * 1e3, 3),
        })
    return results


async def run_inbox(suite: Suite, server: ServiceProcess) -> dict[str, Any]:
    d = suite.durations
    body = stored_example(suite)
    receivers = suite.users[: d.inbox_receivers]
    big = suite.users[d.inbox_receivers]
    base = f"http://127.0.0.1:{server.port}"
    async with aiohttp.ClientSession() as http:
        tokens = {u.name: await login(http, base, u.name, u.signing_secret_key) for u in [*receivers, big]}

    rates = [await fill(suite, user, owner, d.inbox_queued, body) for owner, user in enumerate(receivers)]
    big_rate = await fill(suite, big, 999, d.big_queue, body)
    out: dict[str, Any] = {
        "stored_envelope_bytes": len(body),
        "enqueue_rate": round(statistics.median([*rates, big_rate]), 1),
    }

    # One ack, small queue vs big queue, taking turns.
    small = AckQueue(receivers[0], 0, tokens[receivers[0].name], d.inbox_queued)
    out["one_ack"] = await one_ack_costs(suite, server, [small, AckQueue(big, 999, tokens[big.name], d.big_queue)],
                                         min(d.ack_samples, d.inbox_queued // 4))

    # Memory of the big queue.
    keys = suite.queue.keys(big.address)
    memory = sum([int(await suite.redis.memory_usage(k, samples=0) or 0) for k in keys.keys])
    count = int(await suite.redis.zcard(keys.queue))
    out["memory_big_queue"] = {
        "messages": count,
        "redis_bytes_per_msg": round(memory / count),
        "envelope_bytes": len(body),
        "ratio": round(memory / count / len(body), 3),
    }
    await suite.queue.delete_queue(big.address)

    # Fetch throughput: first pages of the receivers (fetch removes nothing).
    fetches = [_fetch_request(u, tokens[u.name]) for u in receivers]
    conns = await open_connections([("127.0.0.1", server.port)], 16)
    meter = CpuMeter({"server": server.pid})
    try:
        meter.start()
        result = await closed_loop(conns, lambda i: fetches[i % len(fetches)], duration=d.phase)
        cpu = meter.stop()
    finally:
        for conn in conns:
            conn.close()
    out["fetch"] = {
        "pages_per_s": round(result.rate, 1),
        "messages_per_s": round(result.rate * PAGE, 1),
        "mb_per_s": round(result.rate * PAGE * len(body) / 1e6, 1),
        "p50_ms": round(result.p(0.5), 2),
        "errors": result.errors,
        "server_cpu_us_per_page": round((cpu["server"] or 0) / max(1, result.completed) * 1e6, 1),
    }

    # Ack throughput: every remaining message of the other receivers, 100 hashes per request.
    acks: list[bytes] = []
    acked = 0
    for owner, user in enumerate(receivers[1:], start=1):
        ids = [message_id(owner, i) for i in range(d.inbox_queued)]
        for start in range(0, len(ids), PAGE):
            acks.append(_ack_request(user, tokens[user.name], ids[start : start + PAGE]))
            acked += len(ids[start : start + PAGE])
    conns = await open_connections([("127.0.0.1", server.port)], 16)
    try:
        meter.start()
        result = await closed_loop(conns, acks.__getitem__, duration=3600, limit=len(acks))
        cpu = meter.stop()
    finally:
        for conn in conns:
            conn.close()
    remaining = sum([int(await suite.redis.zcard(suite.queue.keys(u.address).queue)) for u in receivers[1:]])
    out["ack"] = {
        "requests": result.completed,
        "acks_per_s": round(acked / result.elapsed, 1),
        "requests_per_s": round(result.rate, 1),
        "p50_ms": round(result.p(0.5), 2),
        "errors": result.errors,
        "left_in_queues": remaining,
        "server_cpu_us_per_ack": round((cpu["server"] or 0) / max(1, acked) * 1e6, 1),
    }
    await suite.clear_queues()
    return out
