"""The backend on a real three-master Redis Cluster (tests/cluster.py): every flow that runs a
multi-key script, through the production app, and the slot of every key it writes."""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from typing import Any

from redis.asyncio import RedisCluster
from tests.backend.backend_helpers import ADDR_DOMAIN, Wallet, now_ms
from tests.backend.storage_helpers import grant, login, revision
from tests.cluster import Cluster

from backend.app import create_app
from backend.keys import alias_key, aliases_key, claim_key, profile_key, storage_tag
from backend.store import ProfileStore
from ensign.config import BackendSettings
from ensign.protocol.revisions import cosign

ALIAS = "alice.user.ensign.eth"


async def slots_of_keys_under(redis: RedisCluster, prefix: str) -> set[int]:
    """The slots the cluster itself computes (CLUSTER KEYSLOT) for every key under ``prefix``."""
    keys = [key async for key in redis.scan_iter(match=f"{prefix}*", count=500)]
    assert keys
    return {int(await redis.cluster_keyslot(key)) for key in keys}


async def post(client: Any, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(path, json=body)
    assert response.status == 200, await response.text()
    return dict(await response.json())


async def test_register_claim_release_and_records_on_a_cluster(
    aiohttp_client: Any, settings: BackendSettings, cluster_redis: RedisCluster, redis_prefix: str,
    alice: Wallet, bob: Wallet,
) -> None:
    client = await aiohttp_client(create_app(settings, redis=cluster_redis))

    await post(client, "/profile/address", alice.register_body())
    await post(client, "/profile/address", bob.register_body())
    # A new profile replaces the old one (register_profile.lua: profile, superseded, domains).
    await post(client, "/profile/address", alice.register_body(alice.profile("ds.example.eth")))
    assert (await client.post("/profile/address", json=alice.register_body())).status == 409

    # claim_alias.lua / release_alias.lua: alias, aliases, profile and claim keys in one script.
    assert (await post(client, "/profile/name", alice.timed_claim(ALIAS)))["status"] == "claimed"
    assert (await client.post("/profile/name", json=bob.timed_claim(ALIAS))).status == 409
    assert await cluster_redis.get(alias_key(redis_prefix, ALIAS)) == alice.address.lower().encode()
    records = await (await client.get(f"/records/{ALIAS}")).json()
    assert records["address"] == alice.address
    assert (await post(client, "/profile/deleteName", alice.timed_release(ALIAS)))["status"] == "released"
    assert (await post(client, "/profile/name", bob.dm3_claim(ALIAS)))["status"] == "claimed"
    assert await cluster_redis.zrange(aliases_key(redis_prefix, bob.address), 0, -1) == [ALIAS.encode()]
    assert (await client.get(f"/profile/name/{bob.address}")).status == 200
    assert (await client.get(f"/profile/name/{alice.address}")).status == 404

    # Every key the backend wrote sits in one slot, whichever node holds it.
    assert len(await slots_of_keys_under(cluster_redis, redis_prefix)) == 1


async def test_store_scripts_refuse_on_a_cluster_without_writing(
    aiohttp_client: Any, settings: BackendSettings, cluster_redis: RedisCluster, redis_prefix: str, alice: Wallet
) -> None:
    client = await aiohttp_client(create_app(settings, redis=cluster_redis))
    await post(client, "/profile/address", alice.register_body())
    store = ProfileStore(cluster_redis, redis_prefix)
    stored = await store.profile(alice.address)
    assert stored is not None

    # The owner's profile changed between verification and the script: nothing is written.
    outcome = await store.claim_alias(
        ALIAS, alice.address, "0xstale", claim_digest="d1", used_ttl_ms=0, strict=True, now_ms=1
    )
    assert outcome == "stale_profile"
    assert await cluster_redis.exists(alias_key(redis_prefix, ALIAS), claim_key(redis_prefix, "d1")) == 0
    assert await store.claim_alias(
        ALIAS, alice.address, stored.content_hash, claim_digest="d1", used_ttl_ms=60_000, strict=True, now_ms=1
    ) == "claimed"
    assert await store.release_alias(
        ALIAS, alice.address, stored.content_hash, claim_digest="d1", used_ttl_ms=60_000, strict=True
    ) == "replayed"
    assert await store.alias_owner(ALIAS) == alice.address.lower()
    assert await store.register(alice.address, ADDR_DOMAIN, stored.profile_json, stored.content_hash, 2) == "unchanged"


async def test_app_opens_its_own_cluster_client_from_settings(
    aiohttp_client: Any, settings: BackendSettings, redis_cluster: Cluster, cluster_redis: RedisCluster,
    redis_prefix: str, alice: Wallet,
) -> None:
    # What `ensign backend` does with REDIS_CLUSTER=yes: the app opens the client at start-up.
    own = replace(settings, redis=redis_cluster.settings(redis_prefix))
    client = await aiohttp_client(create_app(own))

    assert await (await client.get("/health")).json() == {"status": "ok", "redis": "ok"}
    await post(client, "/profile/address", alice.register_body(subdomain=ADDR_DOMAIN))
    assert await cluster_redis.hget(profile_key(redis_prefix, alice.address), "hash") is not None


async def test_storage_scripts_on_a_cluster_keep_each_account_in_its_own_slot(
    aiohttp_client: Any, settings: BackendSettings, cluster_redis: RedisCluster, redis_prefix: str,
    alice: Wallet, bob: Wallet,
) -> None:
    client = await aiohttp_client(create_app(settings, redis=cluster_redis))
    await post(client, "/profile/address", alice.register_body())
    await post(client, "/profile/address", bob.register_body())
    ha, hb = await login(client, alice), await login(client, bob)
    base = f"/storage/docs/{alice.address_name}/notes/todo"
    first = revision(alice, "notes", "todo", "c1", None)
    assert (await client.put(base, json=first.to_json(), headers=ha)).status == 200  # set_revision.lua
    stale = revision(alice, "notes", "todo", "c2", None)
    assert (await client.put(base, json=stale.to_json(), headers=ha)).status == 409
    notary = cosign(bob.keys.signing.secret_key, bob.keys.signing.public_key, first.rev)
    assert (await client.post(base + f"/revisions/{first.rev}/cosignatures", json=notary.to_json(), headers=ha)).status == 200
    signed = grant(alice, bob, "notes", None, expires=now_ms() + 60_000, secret=os.urandom(32))
    assert (await client.post(f"/storage/grants/{alice.address_name}", json=signed.to_json(), headers=ha)).status == 200
    assert (await client.get(base, headers=hb)).status == 200
    assert (await client.delete(f"/storage/grants/{alice.address_name}/{signed.id}", headers=ha)).status == 200
    dm3 = f"/storage/new/{bob.address_name}"
    body = {"encryptedContactName": "c", "messageBatch": [{"messageId": "m", "createdAt": 1,
                                                           "encryptedEnvelopContainer": "x", "isHalted": True}]}
    assert (await client.post(dm3 + "/addMessageBatch", json=body, headers=hb)).status == 200
    [halted] = await (await client.get(dm3 + "/getHaltedMessages", headers=hb)).json()
    cleared = await client.post(dm3 + "/clearHaltedMessage", json={"messageId": halted["messageId"], "aliasName": "a"},
                                headers=hb)
    assert cleared.status == 200
    data = os.urandom(300_000)
    blob = f"/storage/blobs/{alice.address_name}/0x{hashlib.sha256(data).hexdigest()}"
    assert (await client.put(blob, data=data, headers=ha)).status == 200  # commit_blob.lua
    assert await (await client.get(blob, headers=ha)).read() == data
    assert (await client.delete(blob, headers=ha)).status == 200  # delete_blob.lua

    for wallet in (alice, bob):
        tag = storage_tag(redis_prefix, wallet.address)
        assert len(await slots_of_keys_under(cluster_redis, tag)) == 1
