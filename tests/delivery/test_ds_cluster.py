"""The delivery service on a real three-master Redis Cluster (tests/cluster.py), through the
production app: accounts, sessions, submit → fetch → ack, and push across two app instances, with
the slot of every key an account owns checked by the cluster itself (CLUSTER KEYSLOT)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from redis.asyncio import RedisCluster
from tests.cluster import Cluster
from tests.delivery.ds_helpers import (  # noqa: F401  (fixtures)
    Clock,
    MemoryChain,
    MemoryDirectory,
    User,
    bearer,
    chain,
    clock,
    directory,
    ds_settings,
    envelope,
    login,
    rpc_submit,
    signup,
    users,
)
from tests.delivery.test_ds_push import Socket

from delivery.app import create_app
from delivery.push import push_listener_key
from delivery.keys import account_tag, queue_keys
from ensign.config import DeliverySettings, RateLimit
from ensign.protocol.envelope import open_envelope
from ensign.protocol.models import EncryptionEnvelop
from ensign.redis_client import RedisClient, open_redis

AppClient = Callable[[RedisClient], Awaitable[Any]]


async def slots_by_tag(redis: RedisCluster, prefix: str) -> dict[str, set[int]]:
    """For every key under ``prefix``: its hash tag → the slots the cluster computes for those keys."""
    slots: dict[str, set[int]] = defaultdict(set)
    async for raw in redis.scan_iter(match=f"{prefix}*", count=500):
        key = raw.decode()
        tag = key[key.index("{") + 1 : key.index("}")] if "{" in key else key
        slots[tag].add(int(await redis.cluster_keyslot(key)))
    return dict(slots)


def app_on(
    aiohttp_client: Any, settings: DeliverySettings, directory: MemoryDirectory, chain: MemoryChain, clock: Clock
) -> AppClient:
    async def build(redis: RedisClient) -> Any:
        app = create_app(settings, redis=redis, directory=directory, chain=chain, clock=clock, sweep_interval=None)
        return await aiohttp_client(app)

    return build


async def test_accounts_and_sessions_on_a_cluster(
    aiohttp_client: Any, cluster_redis: RedisCluster, redis_prefix: str, ds_settings: DeliverySettings,
    directory: MemoryDirectory, chain: MemoryChain, clock: Clock, users: list[User],
) -> None:
    alice, bob = users[0], users[1]
    client = await app_on(aiohttp_client, ds_settings, directory, chain, clock)(cluster_redis)

    # dm3 sign-up creates the account; the challenge is redeemed once for a session.
    await signup(client, alice)
    token = await login(client, alice)
    resp = await client.put(f"/account/{alice.name}/settings", json={"messageTTL": 600}, headers=bearer(token))
    assert resp.status == 200, await resp.text()
    clock.advance(1)
    update = alice.signed("updateSettings", clock.ms, settings={"messageTTL": 120})
    assert (await client.post(f"/account/{alice.name}/settings", json=update)).status == 200
    assert (await client.post(f"/account/{alice.name}/settings", json=update)).status == 409

    # A signed creation on top of an existing account is refused; deletion, then re-creation.
    clock.advance(1)
    resp = await client.post(f"/account/{alice.name}", json=alice.signed("createAccount", clock.ms))
    assert (resp.status, (await resp.json())["error"]) == (409, "account_exists")
    clock.advance(1)
    assert (await client.delete(f"/account/{alice.name}", json=alice.signed("deleteAccount", clock.ms))).status == 200
    resp = await client.post(f"/profile/{alice.name}", json=alice.profile.to_json())
    assert (resp.status, (await resp.json())["error"]) == (403, "account_deleted")
    clock.advance(1)
    assert (await client.post(f"/account/{alice.name}", json=alice.signed("createAccount", clock.ms))).status == 201
    resp = await client.get(f"/account/{alice.name}", headers=bearer(await login(client, alice)))
    assert (await resp.json())["origin"] == "signed"

    await signup(client, bob)
    await login(client, bob)
    # Each account's keys (account, tombstone, signed-message marks) share one slot.
    slots = await slots_by_tag(cluster_redis, redis_prefix)
    for user in (alice, bob):
        assert len(slots[account_tag(user.address)]) == 1


async def test_submit_fetch_and_ack_on_a_cluster(
    aiohttp_client: Any, cluster_redis: RedisCluster, redis_prefix: str, ds_settings: DeliverySettings,
    directory: MemoryDirectory, chain: MemoryChain, clock: Clock, users: list[User],
) -> None:
    alice, bob = users[0], users[1]
    client = await app_on(aiohttp_client, ds_settings, directory, chain, clock)(cluster_redis)
    await signup(client, alice)
    await signup(client, bob)
    token = await login(client, bob)
    env = envelope(alice, bob, ds_settings, "over the cluster")

    assert (await client.post("/rpc", json=rpc_submit(env))).status == 200
    resp = await client.get(f"/delivery/messages/incoming/{bob.name}", headers=bearer(token))
    [stored] = await resp.json()
    opened = open_envelope(EncryptionEnvelop.from_json(stored), bob.keys.encryption, alice.keys.signing.public_key)
    assert opened.message == "over the cluster"
    keys = queue_keys(redis_prefix, bob.address)
    assert len({int(await cluster_redis.cluster_keyslot(k)) for k in (*keys.keys, keys.account, keys.channel)}) == 1

    ack = {"acknowledgements": [{"contactAddress": alice.name, "messageHash": env["metadata"]["encryptedMessageHash"]}]}
    resp = await client.post(f"/delivery/messages/{bob.name}/syncAcknowledgements/", json=ack, headers=bearer(token))
    assert await resp.json() == {"acknowledged": 1}
    assert await cluster_redis.exists(*keys.keys) == 0


async def test_a_sender_over_its_limit_is_refused_on_a_cluster(
    aiohttp_client: Any, cluster_redis: RedisCluster, redis_prefix: str, ds_settings: DeliverySettings,
    directory: MemoryDirectory, chain: MemoryChain, clock: Clock, users: list[User],
) -> None:
    # On a cluster the sender's and pair's buckets live on other slots than the queue: they are
    # taken in calls of their own before the insert, with the same answers as on one server.
    alice, bob = users[0], users[1]
    settings = replace(ds_settings, limits=replace(ds_settings.limits, sender=RateLimit(1, 3600), pair=RateLimit(5, 3600)))
    client = await app_on(aiohttp_client, settings, directory, chain, clock)(cluster_redis)
    await signup(client, alice)
    await signup(client, bob)
    assert (await client.post("/rpc", json=rpc_submit(envelope(alice, bob, settings, "one")))).status == 200
    refused = await client.post("/rpc", json=rpc_submit(envelope(alice, bob, settings, "two")))
    assert refused.status == 429 and int(refused.headers["Retry-After"]) >= 1
    assert (await refused.json())["error"]["data"]["details"]["limit"] == "sender"
    assert await cluster_redis.zcard(queue_keys(redis_prefix, bob.address).queue) == 1


async def test_push_crosses_app_instances_on_a_cluster(
    aiohttp_client: Any, redis_cluster: Cluster, cluster_redis: RedisCluster, redis_prefix: str,
    ds_settings: DeliverySettings, directory: MemoryDirectory, chain: MemoryChain, clock: Clock, users: list[User],
) -> None:
    alice, bob = users[0], users[1]
    build = app_on(aiohttp_client, ds_settings, directory, chain, clock)
    # Two processes: each has its own cluster client, so its own pub/sub connection.
    other_redis = await open_redis(redis_cluster.settings(redis_prefix))
    try:
        first, second = await build(cluster_redis), await build(other_redis)
        await signup(first, alice)
        await signup(first, bob)
        socket = Socket()
        try:
            await socket.connect(str(second.make_url("/")), bob.name, await login(second, bob))
            assert (await socket.next_event())[0] == "authorized"
            # The listener subscribes in the background (to a random node of the cluster).
            await asyncio.wait_for(second.app[push_listener_key].subscribed.wait(), 5)
            assert (await first.post("/rpc", json=rpc_submit(envelope(alice, bob, ds_settings, "pushed")))).status == 200
            name, data = await socket.next_event()
            assert name == "message"
            opened = open_envelope(EncryptionEnvelop.from_json(data), bob.keys.encryption, alice.keys.signing.public_key)
            assert opened.message == "pushed"
        finally:
            await socket.close()
        await second.close()
    finally:
        await other_redis.aclose()
