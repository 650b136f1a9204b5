"""The backend's Lua scripts and reads, directly on a real Redis (one test group per script)."""

from __future__ import annotations

import pytest

from backend.keys import alias_key, aliases_key, claim_key, domains_key, profile_key, superseded_key
from backend.store import ProfileStore

A = "0x" + "ab" * 20
B = "0x" + "cd" * 20


@pytest.fixture
def store(redis, redis_prefix) -> ProfileStore:
    return ProfileStore(redis, redis_prefix, max_aliases=2)


# --- register_profile.lua ----------------------------------------------------------------------


async def test_register_creates_replaces_and_refuses_superseded(store, redis, redis_prefix):
    assert await store.register(A, "addr.x.eth", '{"v":1}', "h1", 1000) == "created"
    assert await store.register(A, "addr.x.eth", '{"v":2}', "h2", 2000) == "replaced"
    assert await redis.smembers(superseded_key(redis_prefix, A)) == {b"h1"}
    before = await redis.hgetall(profile_key(redis_prefix, A))
    assert await store.register(A, "addr.y.eth", '{"v":1}', "h1", 3000) == "superseded"
    assert await redis.hgetall(profile_key(redis_prefix, A)) == before
    assert await store.domains(A) == ["addr.x.eth"]
    stored = await store.profile(A)
    assert stored is not None
    assert (stored.profile_json, stored.content_hash, stored.updated_at) == ('{"v":2}', "h2", 2000)


async def test_register_same_content_keeps_the_stored_bytes_and_adds_the_domain(store, redis, redis_prefix):
    await store.register(A, "addr.x.eth", '{"sig":"first"}', "h1", 1000)
    assert await store.register(A, "addr.y.eth", '{"sig":"second"}', "h1", 2000) == "unchanged"
    stored = await store.profile(A)
    assert stored is not None and stored.profile_json == '{"sig":"first"}' and stored.updated_at == 1000
    assert await store.domains(A) == ["addr.x.eth", "addr.y.eth"]
    assert await redis.exists(superseded_key(redis_prefix, A)) == 0


async def test_register_keys_are_per_address_in_lowercase(store, redis, redis_prefix):
    await store.register(A.upper().replace("0X", "0x"), "addr.x.eth", "{}", "h", 1)
    assert await redis.exists(profile_key(redis_prefix, A), domains_key(redis_prefix, A)) == 2
    assert await store.profile(B) is None
    assert await store.has_domain(A, "addr.x.eth") and not await store.has_domain(B, "addr.x.eth")


# --- claim_alias.lua ---------------------------------------------------------------------------


async def claim(store, alias, address, digest, *, strict=False, ttl=0, profile_hash="h"):
    return await store.claim_alias(
        alias, address, profile_hash, claim_digest=digest, used_ttl_ms=ttl, strict=strict, now_ms=1000
    )


async def test_claim_outcomes(store, redis, redis_prefix):
    await store.register(A, "addr.x.eth", "{}", "h", 1)
    await store.register(B, "addr.x.eth", "{}", "h", 1)
    assert await claim(store, "a.u.eth", A, "d1") == "claimed"
    assert await redis.get(claim_key(redis_prefix, "d1")) == b"1"
    assert await redis.pttl(claim_key(redis_prefix, "d1")) == -1  # dm3 form: kept for ever
    assert await claim(store, "a.u.eth", A, "d1") == "unchanged"
    assert await claim(store, "a.u.eth", B, "d2") == "taken"
    assert await claim(store, "b.u.eth", A, "d3") == "claimed"
    assert await claim(store, "c.u.eth", A, "d4") == "limit"
    assert await redis.exists(claim_key(redis_prefix, "d4"), alias_key(redis_prefix, "c.u.eth")) == 0
    assert await store.aliases(A) == ["a.u.eth", "b.u.eth"]
    assert await store.alias_owner("a.u.eth") == A
    assert await claim(store, "x.u.eth", A, "d5", profile_hash="other") == "stale_profile"
    assert await store.alias_owner("x.u.eth") is None


async def test_claim_replay_rules(store, redis, redis_prefix):
    await store.register(A, "addr.x.eth", "{}", "h", 1)
    # dm3 form: a used claim is refused once it would change state again.
    assert await claim(store, "a.u.eth", A, "d1") == "claimed"
    assert await store.release_alias("a.u.eth", A, "h", claim_digest="r1", used_ttl_ms=0, strict=False) == "released"
    assert await claim(store, "a.u.eth", A, "d1") == "replayed"
    # Timestamped form: any reuse is a replay, and the mark expires.
    assert await claim(store, "t.u.eth", A, "t1", strict=True, ttl=60_000) == "claimed"
    assert 0 < await redis.pttl(claim_key(redis_prefix, "t1")) <= 60_000
    assert await claim(store, "t.u.eth", A, "t1", strict=True, ttl=60_000) == "replayed"
    assert await claim(store, "t.u.eth", A, "t2", strict=True, ttl=60_000) == "unchanged"
    assert await redis.exists(claim_key(redis_prefix, "t2")) == 1


# --- release_alias.lua -------------------------------------------------------------------------


async def test_release_outcomes(store, redis, redis_prefix):
    await store.register(A, "addr.x.eth", "{}", "h", 1)
    await store.register(B, "addr.x.eth", "{}", "h", 1)
    await claim(store, "a.u.eth", A, "d1")
    assert await store.release_alias("a.u.eth", B, "h", claim_digest="r", used_ttl_ms=0, strict=False) == "not_owner"
    assert await store.release_alias("a.u.eth", A, "x", claim_digest="r", used_ttl_ms=0, strict=False) == "stale_profile"
    assert await redis.exists(claim_key(redis_prefix, "r")) == 0
    assert await store.release_alias("a.u.eth", A, "h", claim_digest="r", used_ttl_ms=5000, strict=True) == "released"
    assert 0 < await redis.pttl(claim_key(redis_prefix, "r")) <= 5000
    assert await redis.exists(alias_key(redis_prefix, "a.u.eth"), aliases_key(redis_prefix, A)) == 0
    assert await store.release_alias("a.u.eth", A, "h", claim_digest="r", used_ttl_ms=5000, strict=True) == "replayed"
    assert await store.release_alias("a.u.eth", A, "h", claim_digest="r2", used_ttl_ms=0, strict=False) == "not_owner"


async def test_store_works_with_a_decoding_client(redis_url, redis_prefix, redis):
    import redis.asyncio as aioredis

    decoding = aioredis.from_url(redis_url, decode_responses=True)
    try:
        store = ProfileStore(decoding, redis_prefix)
        assert await store.register(A, "addr.x.eth", "{}", "h", 1) == "created"
        assert await claim(store, "a.u.eth", A, "d") == "claimed"
        assert await store.aliases(A) == ["a.u.eth"]
        assert (await store.profile(A)).content_hash == "h"
    finally:
        await decoding.aclose()
