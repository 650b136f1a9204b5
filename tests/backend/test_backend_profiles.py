"""Profile registration and reads through the production app on a real Redis."""

from __future__ import annotations

import json

import pytest
from tests.backend.backend_helpers import ADDR_DOMAIN, Wallet

from backend.keys import profile_key, superseded_key
from ensign.protocol.canonical import stringify
from ensign.protocol.encoding import sha256_hex
from ensign.protocol.keys import random_signing_key_pair
from ensign.protocol.models import SignedUserProfile
from ensign.protocol.profile import verify_profile


async def register(client, wallet: Wallet, signed: SignedUserProfile | None = None, **kw):
    return await client.post("/profile/address", json=wallet.register_body(signed, **kw))


async def test_register_profile_from_a_real_wallet(client, redis, redis_prefix, alice):
    signed = alice.profile("ds.ensign.eth")
    response = await register(client, alice, signed)
    assert response.status == 200
    assert await response.json() == {"name": alice.address_name, "address": alice.address, "status": "created"}

    stored = await redis.hgetall(profile_key(redis_prefix, alice.address))
    assert stored[b"profile"].decode() == stringify(signed.to_json())
    assert stored[b"hash"].decode() == sha256_hex(stringify(signed.profile.to_json()))

    response = await client.get(f"/profile/{alice.address}")
    assert response.status == 200
    assert await response.json() == signed.to_json()
    # Lower-case addresses are the same account.
    response = await client.get(f"/profile/{alice.address.lower()}")
    assert await response.json() == signed.to_json()


async def test_profile_signed_by_another_wallet_is_refused(client, store_snapshot, alice, bob):
    before = await store_snapshot()
    body = alice.register_body(bob.profile())  # bob's signature, alice's address
    response = await client.post("/profile/address", json=body)
    assert response.status == 400
    payload = await response.json()
    assert payload["error"] == "invalid_signature"
    assert alice.address in payload["message"]
    assert await store_snapshot() == before


async def test_tampered_profile_is_refused(client, store_snapshot, alice):
    body = alice.register_body()
    body["signedUserProfile"]["profile"]["deliveryServices"] = ["evil.eth"]
    before = await store_snapshot()
    response = await client.post("/profile/address", json=body)
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_signature"
    assert await store_snapshot() == before


async def test_newer_profile_replaces_the_old_one(client, redis, redis_prefix, alice):
    first = alice.profile("ds1.ensign.eth")
    second = alice.profile("ds2.ensign.eth")
    assert (await register(client, alice, first)).status == 200
    response = await register(client, alice, second)
    assert response.status == 200
    assert (await response.json())["status"] == "replaced"
    assert await (await client.get(f"/profile/{alice.address}")).json() == second.to_json()
    superseded = await redis.smembers(superseded_key(redis_prefix, alice.address))
    assert superseded == {sha256_hex(stringify(first.profile.to_json())).encode()}


async def test_replayed_superseded_profile_is_refused_and_changes_nothing(client, store_snapshot, alice):
    first = alice.profile("ds1.ensign.eth")
    second = alice.profile("ds2.ensign.eth")
    await register(client, alice, first)
    await register(client, alice, second)
    before = await store_snapshot()
    response = await register(client, alice, first)
    assert response.status == 409
    assert (await response.json())["error"] == "profile_superseded"
    assert await store_snapshot() == before
    assert await (await client.get(f"/profile/{alice.address}")).json() == second.to_json()


SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def _v_as_recovery_id(raw: bytes) -> bytes:
    return raw[:64] + bytes([raw[64] - 27])


def _high_s(raw: bytes) -> bytes:
    s = int.from_bytes(raw[32:64], "big")
    return raw[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - raw[64]])


@pytest.mark.parametrize("reencode", [_v_as_recovery_id, _high_s], ids=["v-0-1", "high-s"])
async def test_superseded_profile_with_a_re_encoded_signature_is_still_refused(client, store_snapshot, alice, reencode):
    # Both encodings recover the same signer: another signature text for the same superseded profile.
    first = alice.profile("ds1.ensign.eth")
    await register(client, alice, first)
    await register(client, alice, alice.profile("ds2.ensign.eth"))
    signature = "0x" + reencode(bytes.fromhex(first.signature[2:])).hex()
    assert signature != first.signature
    reencoded = SignedUserProfile.from_json({"profile": first.profile.to_json(), "signature": signature})
    assert verify_profile(reencoded, alice.address)
    before = await store_snapshot()
    response = await register(client, alice, reencoded)
    assert response.status == 409
    assert await store_snapshot() == before


async def test_same_profile_twice_is_unchanged(client, store_snapshot, alice):
    signed = alice.profile()
    await register(client, alice, signed)
    before = await store_snapshot()
    response = await register(client, alice, signed)
    assert response.status == 200
    assert (await response.json())["status"] == "unchanged"
    assert await store_snapshot() == before


async def test_key_rotation_then_rollback_to_old_keys_is_refused(client, alice):
    old = alice.profile()
    new = alice.profile(signing_key=random_signing_key_pair().public_key)
    await register(client, alice, old)
    assert (await (await register(client, alice, new)).json())["status"] == "replaced"
    assert (await register(client, alice, old)).status == 409


async def test_unsupported_subdomain_is_refused_naming_it(client, store_snapshot, alice):
    before = await store_snapshot()
    response = await register(client, alice, subdomain="addr.other.eth")
    assert response.status == 400
    body = await response.json()
    assert body["error"] == "unsupported_domain"
    assert "addr.other.eth" in body["message"]
    # A user domain is not an address domain.
    response = await register(client, alice, subdomain="user.ensign.eth")
    assert response.status == 400
    assert await store_snapshot() == before


async def test_subdomain_with_leading_dot_and_capitals_is_accepted(client, alice):
    response = await register(client, alice, subdomain=".Addr.Ensign.eth")
    assert response.status == 200
    assert (await response.json())["name"] == alice.address_name


async def test_lowercase_address_in_body_is_accepted_and_answered_checksummed(client, alice):
    body = alice.register_body()
    body["address"] = alice.address.lower()
    response = await client.post("/profile/address", json=body)
    assert response.status == 200
    assert (await response.json())["address"] == alice.address


async def test_profile_of_unknown_address_is_404(client, alice):
    response = await client.get(f"/profile/{alice.address}")
    assert response.status == 404
    assert (await response.json())["error"] == "not_found"


@pytest.mark.parametrize("path", ["/profile/0x1234", "/profile/nothex", "/profile/name/0xzz", "/profile/address"])
async def test_reads_with_a_bad_address_are_400(client, path):
    response = await client.get(path)
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_address"


async def test_wrong_checksum_address_is_400(client, alice):
    letters = [i for i, c in enumerate(alice.address) if i > 1 and c.isalpha()]
    if len(letters) < 2:
        pytest.skip("the address needs two letters to carry a mixed-case checksum")
    i = letters[0]
    flipped = alice.address[:i] + alice.address[i].swapcase() + alice.address[i + 1 :]
    if flipped[2:] in (flipped[2:].lower(), flipped[2:].upper()):
        pytest.skip("flipping one letter made the address single-case, which carries no checksum")
    response = await client.get(f"/profile/{flipped}")
    assert response.status == 400
    assert "checksum" in (await response.json())["message"]


async def test_profile_by_name_for_address_name_and_alias(client, alice):
    signed = alice.profile()
    await register(client, alice, signed)
    response = await client.get(f"/profile/by-name/{alice.address_name}")
    assert response.status == 200
    assert await response.json() == {
        "name": alice.address_name,
        "address": alice.address,
        "signedUserProfile": signed.to_json(),
    }
    assert (await client.post("/profile/name", json=alice.dm3_claim("alice.user.ensign.eth"))).status == 200
    response = await client.get("/profile/by-name/Alice.user.ensign.eth")
    assert response.status == 200
    body = await response.json()
    assert body["name"] == "alice.user.ensign.eth"
    assert body["address"] == alice.address
    assert (await client.get("/profile/by-name/nobody.user.ensign.eth")).status == 404


async def test_profile_by_name_refuses_invalid_names(client):
    response = await client.get("/profile/by-name/a%F0%9F%91%8D.eth")
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_name"


async def test_name_of_address_is_404_without_alias(client, alice):
    await register(client, alice)
    response = await client.get(f"/profile/name/{alice.address}")
    assert response.status == 404


# --- malformed input: every refusal is a 4xx JSON error and stores nothing -----------------------


MALFORMED = [
    ("not json", b"{nope"),
    ("array", b"[]"),
    ("string", b'"x"'),
    ("empty", b""),
]


@pytest.mark.parametrize("label,raw", MALFORMED, ids=[m[0] for m in MALFORMED])
async def test_register_malformed_json_is_400(client, store_snapshot, label, raw):
    response = await client.post("/profile/address", data=raw, headers={"Content-Type": "application/json"})
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_json"
    assert await store_snapshot() == {}


def _mutations():
    def drop(field):
        def apply(body):
            del body[field]

        return apply

    def put(field, value):
        def apply(body):
            body[field] = value

        return apply

    def profile_put(path, value):
        def apply(body):
            target = body["signedUserProfile"]
            for part in path[:-1]:
                target = target[part]
            target[path[-1]] = value

        return apply

    def profile_drop(path):
        def apply(body):
            target = body["signedUserProfile"]
            for part in path[:-1]:
                target = target[part]
            del target[path[-1]]

        return apply

    return [
        ("missing signedUserProfile", drop("signedUserProfile")),
        ("missing address", drop("address")),
        ("missing subdomain", drop("subdomain")),
        ("unknown field", put("extra", 1)),
        ("address number", put("address", 12)),
        ("address null", put("address", None)),
        ("address short", put("address", "0x1234")),
        ("address empty", put("address", "")),
        ("subdomain number", put("subdomain", 5)),
        ("subdomain empty", put("subdomain", "")),
        ("subdomain invalid name", put("subdomain", "a\u0000b")),
        ("profile string", put("signedUserProfile", "data:application/json,{}")),
        ("profile list", put("signedUserProfile", [])),
        ("signature missing", profile_drop(["signature"])),
        ("signature number", profile_put(["signature"], 1)),
        ("signature garbage", profile_put(["signature"], "0xnothex")),
        ("signature short", profile_put(["signature"], "0x1234")),
        ("profile missing keys", profile_drop(["profile", "publicSigningKey"])),
        ("profile extra field", profile_put(["profile", "extra"], "x")),
        ("encryption key not base64", profile_put(["profile", "publicEncryptionKey"], "!!!")),
        ("signing key wrong length", profile_put(["profile", "publicSigningKey"], "AAAA")),
        ("delivery services not list", profile_put(["profile", "deliveryServices"], "ds.eth")),
        ("delivery services numbers", profile_put(["profile", "deliveryServices"], [1])),
        ("profile float", profile_put(["profile", "deliveryServices"], [1.5])),
    ]


MUTATIONS = _mutations()


@pytest.mark.parametrize("label,mutate", MUTATIONS, ids=[m[0] for m in MUTATIONS])
async def test_register_bad_fields_are_4xx_and_store_nothing(client, store_snapshot, alice, label, mutate):
    body = json.loads(json.dumps(alice.register_body()))
    mutate(body)
    response = await client.post("/profile/address", json=body)
    assert 400 <= response.status < 500, label
    payload = await response.json()
    assert set(payload) >= {"error", "message"}, label
    assert await store_snapshot() == {}, label


async def test_register_body_over_the_size_limit_is_413(client, store_snapshot, alice):
    body = alice.register_body()
    body["signedUserProfile"]["profile"]["deliveryServices"] = ["x" * 1000] * 100
    response = await client.post("/profile/address", json=body)
    assert response.status == 413
    assert await store_snapshot() == {}


async def test_registration_under_a_second_addr_domain(aiohttp_client, settings, redis, alice):
    from dataclasses import replace

    from backend.app import create_app

    two = replace(settings, addr_domains=(ADDR_DOMAIN, "addr.other.eth"))
    client = await aiohttp_client(create_app(two, redis=redis))
    await register(client, alice)
    assert (await client.get(f"/records/{alice.address.lower()}.addr.other.eth")).status == 404
    response = await register(client, alice, subdomain="addr.other.eth")
    assert response.status == 200
    assert (await response.json())["status"] == "unchanged"
    assert (await client.get(f"/records/{alice.address.lower()}.addr.other.eth")).status == 200
    assert (await client.get(f"/records/{alice.address_name}")).status == 200
