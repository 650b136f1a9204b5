"""delivery.queue on a real three-master Redis Cluster (tests/cluster.py): every script runs on the
node that owns the account's slot, the cluster itself (CLUSTER KEYSLOT) puts all of an account's
keys and its channel in one slot, accounts spread over the nodes, and the sweep reaches every node."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from redis.asyncio import RedisCluster
from tests.cluster import Cluster
from tests.delivery.test_queue import TRICKY_ACCOUNTS, envelope, mid

from delivery.devices import Device, DeviceList
from delivery.keys import account_key, account_tag
from delivery.queue import MessageQueue

NOW = 1_700_000_000.0
DAY = 86_400


@pytest.fixture
def cluster_queue(cluster_redis: RedisCluster, redis_prefix: str) -> MessageQueue:
    return MessageQueue(cluster_redis, prefix=redis_prefix, require_account=False)


async def keys_on_each_node(cluster: Cluster, prefix: str) -> dict[int, list[str]]:
    """Node port → the keys under ``prefix`` that node holds, asked of each node directly."""
    held: dict[int, list[str]] = {}
    for port in cluster.ports:
        client = aioredis.Redis(host="127.0.0.1", port=port)
        try:
            # A set first: SCAN may return a key more than once (while Redis resizes its table).
            held[port] = sorted({k.decode() async for k in client.scan_iter(match=f"{prefix}*")})
        finally:
            await client.aclose()
    return held


@pytest.mark.parametrize("account", TRICKY_ACCOUNTS)
async def test_every_script_runs_and_the_cluster_puts_an_account_in_one_slot(
    cluster_queue: MessageQueue, cluster_redis: RedisCluster, redis_cluster: Cluster, redis_prefix: str, account: str
) -> None:
    assert await cluster_queue.enqueue(account, mid(1), envelope(1), now=NOW, ttl_seconds=DAY)
    assert await cluster_queue.enqueue(account, mid(2), envelope(2), now=NOW + 1, ttl_seconds=1)
    assert [m.id for m in (await cluster_queue.fetch(account, now=NOW + 0.5)).items] == [mid(1), mid(2)]
    stored = await cluster_queue.get(account, mid(1), now=NOW)
    assert stored is not None and stored.envelope == envelope(1)

    names = cluster_queue.keys(account)
    written = [key for keys in (await keys_on_each_node(redis_cluster, redis_prefix)).values() for key in keys]
    assert sorted(written) == sorted(names.keys)
    slots = {int(await cluster_redis.cluster_keyslot(key)) for key in [*written, names.channel]}
    assert slots == {int(await cluster_redis.cluster_keyslot(account_tag(account)))}

    assert await cluster_queue.sweep_expired(NOW + 10) == 1
    assert await cluster_queue.ack(account, [mid(1), mid(3)]) == 1
    assert await cluster_queue.count(account, NOW) == 0
    assert await cluster_queue.enqueue(account, mid(4), envelope(4), now=NOW + 20, ttl_seconds=DAY)
    assert await cluster_queue.delete_queue(account) == 1
    assert await keys_on_each_node(redis_cluster, redis_prefix) == {port: [] for port in redis_cluster.ports}


async def test_accounts_spread_over_the_nodes_and_the_sweep_reaches_every_node(
    cluster_queue: MessageQueue, redis_cluster: Cluster, redis_prefix: str
) -> None:
    accounts = [f"0x{n:040x}" for n in range(24)]
    for n, account in enumerate(accounts):
        await cluster_queue.enqueue(account, mid(n), envelope(n), now=NOW, ttl_seconds=60)

    held = await keys_on_each_node(redis_cluster, redis_prefix)
    # 24 tags over three nodes of ~5461 slots each: all on one node has odds of about 3e-11.
    assert sum(1 for keys in held.values() if keys) == len(redis_cluster.nodes)
    assert sum(len(keys) for keys in held.values()) == 4 * len(accounts)  # queue, expiry, msg, qbytes

    assert await cluster_queue.sweep_expired(NOW + 61) == len(accounts)
    assert await keys_on_each_node(redis_cluster, redis_prefix) == {port: [] for port in redis_cluster.ports}


@pytest.mark.parametrize("account", TRICKY_ACCOUNTS)
async def test_device_cursors_run_on_the_node_of_the_accounts_slot(
    cluster_redis: RedisCluster, redis_prefix: str, account: str
) -> None:
    queue = MessageQueue(cluster_redis, prefix=redis_prefix)
    await cluster_redis.hset(account_key(redis_prefix, account), "created", "1")
    listed = DeviceList(1, (Device("laptop", "k1", 1), Device("phone", "k2", 1)))
    assert await queue.set_devices(account, expected="", devices=listed.to_stored(), now=NOW) == 0
    await queue.enqueue(account, mid(1), envelope(1), now=NOW, ttl_seconds=DAY)
    assert await queue.ack(account, [mid(1)], now=NOW + 1, device="laptop") == 1
    assert (await queue.fetch(account, now=NOW + 2, device="laptop")).items == ()
    assert [m.id for m in (await queue.fetch(account, now=NOW + 2, device="phone")).items] == [mid(1)]
    keys = queue.keys(account)
    assert len({int(await cluster_redis.cluster_keyslot(k)) for k in (keys.seen, keys.account, keys.queue)}) == 1
    # Removing the phone releases the message, in the same slot's script.
    one = DeviceList(2, (Device("laptop", "k1", 1),)).to_stored()
    assert await queue.set_devices(account, expected=listed.to_stored(), devices=one, now=NOW + 3) == 1
    assert await queue.count(account, NOW + 4) == 0
