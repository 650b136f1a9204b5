"""Alias claim and release (dm3 form and timestamped form) through the production app."""

from __future__ import annotations

import json

import pytest
from tests.backend.backend_helpers import Wallet, now_ms

from backend.app import create_app
from backend.claims import WINDOW_MS, claim_digest, timestamped_claim_text
from backend.keys import alias_key, aliases_key, claim_key
from backend.store import MAX_ALIASES
from ensign.protocol.crypto import sign
from ensign.protocol.keys import random_signing_key_pair

ALIAS = "alice.user.ensign.eth"


async def register(client, wallet: Wallet, **kw) -> None:
    response = await client.post("/profile/address", json=wallet.register_body(wallet.profile(**kw)))
    assert response.status == 200, await response.text()


async def claim(client, body):
    return await client.post("/profile/name", json=body)


async def release(client, body):
    return await client.post("/profile/deleteName", json=body)


# --- dm3 form --------------------------------------------------------------------------------------


async def test_dm3_claim_and_release(client, redis, redis_prefix, alice):
    await register(client, alice)
    response = await claim(client, alice.dm3_claim(ALIAS))
    assert response.status == 200
    assert await response.json() == {"name": ALIAS, "address": alice.address, "status": "claimed"}
    assert await redis.get(alias_key(redis_prefix, ALIAS)) == alice.address.lower().encode()
    assert await redis.zrange(aliases_key(redis_prefix, alice.address), 0, -1) == [ALIAS.encode()]
    assert await (await client.get(f"/profile/name/{alice.address}")).json() == {"name": ALIAS, "names": [ALIAS]}

    response = await release(client, alice.dm3_release(ALIAS))
    assert response.status == 200
    assert await response.json() == {"name": ALIAS, "address": alice.address, "status": "released"}
    assert await redis.get(alias_key(redis_prefix, ALIAS)) is None
    assert await redis.zcard(aliases_key(redis_prefix, alice.address)) == 0
    assert (await client.get(f"/profile/name/{alice.address}")).status == 404


async def test_dm3_claim_replayed_while_held_is_unchanged(client, store_snapshot, alice):
    await register(client, alice)
    body = alice.dm3_claim(ALIAS)
    await claim(client, body)
    before = await store_snapshot()
    response = await claim(client, body)
    assert response.status == 200
    assert (await response.json())["status"] == "unchanged"
    assert await store_snapshot() == before


async def test_dm3_claim_replayed_after_release_is_refused(client, store_snapshot, alice):
    await register(client, alice)
    claim_body, release_body = alice.dm3_claim(ALIAS), alice.dm3_release(ALIAS)
    await claim(client, claim_body)
    await release(client, release_body)
    before = await store_snapshot()
    response = await claim(client, claim_body)
    assert response.status == 409
    assert (await response.json())["error"] == "replayed"
    assert await store_snapshot() == before


async def test_dm3_release_replayed_after_reclaim_is_refused(client, store_snapshot, alice):
    await register(client, alice)
    release_body = alice.dm3_release(ALIAS)
    await claim(client, alice.dm3_claim(ALIAS))
    await release(client, release_body)
    # The owner claims again with the timestamped form; the old removal must not undo that.
    assert (await claim(client, alice.timed_claim(ALIAS))).status == 200
    before = await store_snapshot()
    response = await release(client, release_body)
    assert response.status == 409
    assert (await response.json())["error"] == "replayed"
    assert await store_snapshot() == before


async def test_dm3_claim_text_must_cover_the_name_as_sent(client, store_snapshot, alice):
    await register(client, alice)
    body = alice.dm3_claim("Alice.user.ensign.eth")
    response = await claim(client, body)
    assert response.status == 200
    assert (await response.json())["name"] == ALIAS
    # The signature over "Alice…" does not verify for "alice…".
    other = dict(body, dm3Name="bob.user.ensign.eth")
    before = await store_snapshot()
    assert (await claim(client, other)).status == 400
    assert await store_snapshot() == before


# --- timestamped form ------------------------------------------------------------------------------


async def test_timestamped_claim_and_release(client, redis, redis_prefix, alice):
    await register(client, alice)
    body = alice.timed_claim(ALIAS)
    response = await claim(client, body)
    assert response.status == 200
    assert (await response.json())["status"] == "claimed"
    text = timestamped_claim_text(ALIAS, alice.address_name, body["timestamp"])
    used = claim_key(redis_prefix, claim_digest(alice.keys.signing.public_key, text))
    ttl = await redis.pttl(used)
    # Remembered until the window has passed, and not much longer.
    assert WINDOW_MS - 5000 < ttl <= WINDOW_MS + 1000

    response = await release(client, alice.timed_release(ALIAS))
    assert response.status == 200
    assert (await response.json())["status"] == "released"
    assert await redis.get(alias_key(redis_prefix, ALIAS)) is None


async def test_replayed_timestamped_claim_is_refused(client, store_snapshot, alice):
    await register(client, alice)
    body = alice.timed_claim(ALIAS)
    await claim(client, body)
    await release(client, alice.timed_release(ALIAS))
    before = await store_snapshot()
    response = await claim(client, body)
    assert response.status == 409
    assert (await response.json())["error"] == "replayed"
    assert await store_snapshot() == before


async def test_replayed_timestamped_claim_is_refused_even_while_held(client, store_snapshot, alice):
    await register(client, alice)
    body = alice.timed_claim(ALIAS)
    await claim(client, body)
    before = await store_snapshot()
    assert (await claim(client, body)).status == 409
    assert await store_snapshot() == before


async def test_replayed_timestamped_release_is_refused(client, store_snapshot, alice):
    await register(client, alice)
    await claim(client, alice.timed_claim(ALIAS))
    release_body = alice.timed_release(ALIAS)
    assert (await release(client, release_body)).status == 200
    assert (await claim(client, alice.timed_claim(ALIAS, timestamp=now_ms() + 1))).status == 200
    before = await store_snapshot()
    response = await release(client, release_body)
    assert response.status == 409
    assert await store_snapshot() == before


@pytest.mark.parametrize("offset", [-(WINDOW_MS + 60_000), WINDOW_MS + 60_000])
async def test_stale_or_future_timestamp_is_refused(client, store_snapshot, alice, offset):
    await register(client, alice)
    before = await store_snapshot()
    response = await claim(client, alice.timed_claim(ALIAS, timestamp=now_ms() + offset))
    assert response.status == 400
    assert (await response.json())["error"] == "stale_timestamp"
    assert await store_snapshot() == before


async def test_stale_timestamped_release_is_refused(client, store_snapshot, alice):
    await register(client, alice)
    await claim(client, alice.dm3_claim(ALIAS))
    before = await store_snapshot()
    response = await release(client, alice.timed_release(ALIAS, timestamp=now_ms() - 2 * WINDOW_MS))
    assert response.status == 400
    assert await store_snapshot() == before


async def test_timestamp_not_covered_by_the_signature_is_refused(client, store_snapshot, alice):
    await register(client, alice)
    body = alice.timed_claim(ALIAS)
    body["timestamp"] += 1
    before = await store_snapshot()
    response = await claim(client, body)
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_signature"
    assert await store_snapshot() == before


async def test_dm3_signature_is_not_a_timestamped_claim(client, store_snapshot, alice):
    await register(client, alice)
    body = dict(alice.dm3_claim(ALIAS), timestamp=now_ms())
    before = await store_snapshot()
    assert (await claim(client, body)).status == 400
    assert await store_snapshot() == before


# --- signatures, ownership, limits ----------------------------------------------------------------


async def test_bad_ed25519_signature_is_refused(client, store_snapshot, alice, bob):
    await register(client, alice)
    cases = [
        alice.dm3_claim(ALIAS, secret_key=bob.keys.signing.secret_key),  # someone else's key
        dict(alice.dm3_claim(ALIAS), signature="A" * 86 + "=="),  # well-formed, wrong
        dict(alice.dm3_claim(ALIAS), signature="not base64!"),
        dict(alice.dm3_claim(ALIAS), signature=sign(alice.keys.signing.secret_key, "alias: x")),
    ]
    before = await store_snapshot()
    for body in cases:
        response = await claim(client, body)
        assert response.status == 400
        assert (await response.json())["error"] == "invalid_signature"
    assert await store_snapshot() == before


async def test_alias_taken_by_another_address_is_409(client, store_snapshot, alice, bob):
    await register(client, alice)
    await register(client, bob)
    await claim(client, alice.dm3_claim(ALIAS))
    before = await store_snapshot()
    for body in (bob.dm3_claim(ALIAS), bob.timed_claim(ALIAS)):
        response = await claim(client, body)
        assert response.status == 409
        assert (await response.json())["error"] == "alias_taken"
    assert await store_snapshot() == before


async def test_release_needs_the_owners_signature(client, store_snapshot, alice, bob):
    await register(client, alice)
    await register(client, bob)
    await claim(client, alice.dm3_claim(ALIAS))
    before = await store_snapshot()
    for body in (bob.dm3_release(ALIAS), bob.timed_release(ALIAS)):
        response = await release(client, body)
        assert response.status == 400
        assert (await response.json())["error"] == "invalid_signature"
    assert await store_snapshot() == before


async def test_release_of_an_unclaimed_alias_is_404(client, store_snapshot, alice):
    await register(client, alice)
    before = await store_snapshot()
    response = await release(client, alice.dm3_release(ALIAS))
    assert response.status == 404
    assert await store_snapshot() == before


async def test_claim_without_a_profile_is_404(client, store_snapshot, alice):
    response = await claim(client, alice.dm3_claim(ALIAS))
    assert response.status == 404
    assert await store_snapshot() == {}


async def test_several_aliases_up_to_the_limit(client, store_snapshot, alice):
    await register(client, alice)
    names = [f"alice{i}.user.ensign.eth" for i in range(MAX_ALIASES)]
    for name in names:
        assert (await claim(client, alice.timed_claim(name))).status == 200
    body = await (await client.get(f"/profile/name/{alice.address}")).json()
    assert body == {"name": names[0], "names": names}
    before = await store_snapshot()
    response = await claim(client, alice.timed_claim("onemore.user.ensign.eth"))
    assert response.status == 409
    assert (await response.json())["error"] == "alias_limit"
    assert await store_snapshot() == before


async def test_second_alias_may_be_claimed_through_the_first(client, alice):
    await register(client, alice)
    await claim(client, alice.dm3_claim(ALIAS))
    body = {
        "signature": sign(alice.keys.signing.secret_key, "alias: second.user.ensign.eth"),
        "addressName": ALIAS,
        "dm3Name": "second.user.ensign.eth",
    }
    response = await claim(client, body)
    assert response.status == 200
    assert (await response.json())["address"] == alice.address


async def test_aliases_stay_with_the_address_when_the_profile_is_replaced(client, alice):
    await register(client, alice)
    await claim(client, alice.dm3_claim(ALIAS))
    new_signing = random_signing_key_pair()
    await register(client, alice, signing_key=new_signing.public_key)
    records = await (await client.get(f"/records/{ALIAS}")).json()
    assert alice.address == records["address"]
    assert new_signing.public_key in records["texts"]["network.dm3.profile"]
    # The old key no longer speaks for the address; the new one does.
    assert (await release(client, alice.timed_release(ALIAS))).status == 400
    response = await release(client, alice.timed_release(ALIAS, secret_key=new_signing.secret_key))
    assert response.status == 200


@pytest.mark.parametrize(
    "name,code",
    [
        ("alice.addr.ensign.eth", "unsupported_domain"),
        ("alice.other.eth", "unsupported_domain"),
        ("user.ensign.eth", "unsupported_domain"),
        ("a.b.user.ensign.eth", "invalid_name"),
        (".user.ensign.eth", "invalid_name"),
        ("a b.user.ensign.eth", "invalid_name"),
        ("a_b.user.ensign.eth", "invalid_name"),
        ("ab--c.user.ensign.eth", "invalid_name"),
        ("a\U0001f44d.user.ensign.eth", "invalid_name"),
    ],
)
async def test_claim_of_an_unsupported_or_invalid_name_is_400(client, store_snapshot, alice, name, code):
    await register(client, alice)
    before = await store_snapshot()
    response = await claim(client, alice.dm3_claim(name))
    assert response.status == 400
    assert (await response.json())["error"] == code
    assert await store_snapshot() == before


# --- malformed bodies ------------------------------------------------------------------------------

CLAIM_MUTATIONS = [
    ("missing signature", lambda b: b.pop("signature")),
    ("missing addressName", lambda b: b.pop("addressName")),
    ("missing dm3Name", lambda b: b.pop("dm3Name")),
    ("unknown field", lambda b: b.update(alias="x")),
    ("signature number", lambda b: b.update(signature=5)),
    ("signature empty", lambda b: b.update(signature="")),
    ("signature too long", lambda b: b.update(signature="A" * 5000)),
    ("dm3Name list", lambda b: b.update(dm3Name=["a"])),
    ("dm3Name null", lambda b: b.update(dm3Name=None)),
    ("addressName number", lambda b: b.update(addressName=1)),
    ("addressName unknown", lambda b: b.update(addressName="0x" + "0" * 40 + ".addr.ensign.eth")),
    ("addressName invalid", lambda b: b.update(addressName="\u0000")),
    ("timestamp string", lambda b: b.update(timestamp="123")),
    ("timestamp float", lambda b: b.update(timestamp=1.5)),
    ("timestamp bool", lambda b: b.update(timestamp=True)),
    ("timestamp null", lambda b: b.update(timestamp=None)),
    ("timestamp huge", lambda b: b.update(timestamp=10**30)),
]


@pytest.mark.parametrize("label,mutate", CLAIM_MUTATIONS, ids=[m[0] for m in CLAIM_MUTATIONS])
async def test_claim_bad_fields_are_4xx_and_change_nothing(client, store_snapshot, alice, label, mutate):
    await register(client, alice)
    body = json.loads(json.dumps(alice.dm3_claim(ALIAS)))
    mutate(body)
    before = await store_snapshot()
    response = await claim(client, body)
    assert 400 <= response.status < 500, label
    assert set(await response.json()) >= {"error", "message"}
    assert await store_snapshot() == before


RELEASE_MUTATIONS = [
    ("missing signature", lambda b: b.pop("signature")),
    ("missing dm3Name", lambda b: b.pop("dm3Name")),
    ("unknown field", lambda b: b.update(addressName="x", extra=1)),
    ("signature number", lambda b: b.update(signature=5)),
    ("dm3Name object", lambda b: b.update(dm3Name={})),
    ("dm3Name other domain", lambda b: b.update(dm3Name="alice.eth")),
    ("timestamp string", lambda b: b.update(timestamp="now")),
]


@pytest.mark.parametrize("label,mutate", RELEASE_MUTATIONS, ids=[m[0] for m in RELEASE_MUTATIONS])
async def test_release_bad_fields_are_4xx_and_change_nothing(client, store_snapshot, alice, label, mutate):
    await register(client, alice)
    await claim(client, alice.dm3_claim(ALIAS))
    body = json.loads(json.dumps(alice.dm3_release(ALIAS)))
    mutate(body)
    before = await store_snapshot()
    response = await release(client, body)
    assert 400 <= response.status < 500, label
    assert set(await response.json()) >= {"error", "message"}
    assert await store_snapshot() == before


@pytest.mark.parametrize("path", ["/profile/name", "/profile/deleteName"])
@pytest.mark.parametrize("raw", [b"", b"nope", b"[]", b"1", b'{"a":NaN}'])
async def test_alias_endpoints_refuse_non_object_json(client, store_snapshot, alice, path, raw):
    await register(client, alice)
    before = await store_snapshot()
    response = await client.post(path, data=raw)
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_json"
    assert await store_snapshot() == before


async def test_the_claim_window_is_read_from_the_injected_clock(aiohttp_client, settings, redis, alice):
    # A claim timestamped at the app's clock is fresh, whatever the wall clock says.
    long_ago_ms = 1_600_000_000_000
    client = await aiohttp_client(create_app(settings, redis=redis, clock=lambda: long_ago_ms / 1000))
    await register(client, alice)
    assert (await claim(client, alice.timed_claim(ALIAS, timestamp=long_ago_ms))).status == 200
    stale = await claim(client, alice.timed_claim("other.user.ensign.eth", timestamp=now_ms()))
    assert (stale.status, (await stale.json())["error"]) == (400, "stale_timestamp")
