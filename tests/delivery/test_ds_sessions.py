"""Sessions: dm3 sign-up, the JWT challenge, single use, binding, expiry (real Redis)."""

from __future__ import annotations

import jwt
import pytest
from tests.delivery.ds_helpers import (  # noqa: F401  (fixtures)
    bearer,
    chain,
    clock,
    directory,
    ds_client,
    ds_settings,
    dump,
    keys_under,
    login,
    signup,
    users,
)

from delivery.keys import account_key, challenge_key
from ensign.sessions import SESSION_TTL
from ensign.protocol.crypto import sign


async def test_signup_answers_a_challenge_not_a_session(ds_client, users, redis, redis_prefix) -> None:
    alice = users[0]
    challenge = await signup(ds_client, alice)
    claims = jwt.decode(challenge, options={"verify_signature": False})
    assert claims["kind"] == "challenge"
    # Used as a bearer token it is refused: posting a public profile never yields a session.
    resp = await ds_client.get(f"/account/{alice.name}", headers=bearer(challenge))
    assert resp.status == 401
    assert (await resp.json())["error"] == "session_invalid"
    assert await keys_under(redis, redis_prefix) == [account_key(redis_prefix, alice.address)]


async def test_signed_challenge_gives_a_one_hour_session(ds_client, users, clock) -> None:
    alice = users[0]
    await signup(ds_client, alice)
    token = await login(ds_client, alice)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["account"] == alice.name
    assert claims["addr"] == alice.address
    assert claims["exp"] - claims["iat"] == SESSION_TTL == 3600
    resp = await ds_client.get(f"/account/{alice.name}", headers=bearer(token))
    assert resp.status == 200
    assert (await resp.json())["account"] == alice.address


async def test_replayed_challenge_is_refused(ds_client, users, redis, redis_prefix) -> None:
    alice = users[0]
    await signup(ds_client, alice)
    challenge = await (await ds_client.get(f"/auth/{alice.name}")).json()
    body = {"challenge": challenge, "signature": sign(alice.keys.signing.secret_key, challenge)}
    first = await ds_client.post(f"/auth/{alice.name}", json=body)
    assert first.status == 200
    before = await dump(redis, redis_prefix)
    second = await ds_client.post(f"/auth/{alice.name}", json=body)
    assert second.status == 401
    assert (await second.json())["error"] == "challenge_replayed"
    assert await dump(redis, redis_prefix) == before
    claims = jwt.decode(challenge, options={"verify_signature": False})
    ttl = await redis.ttl(challenge_key(redis_prefix, claims["challenge"]))
    assert 0 < ttl <= 900


async def test_bad_challenge_signature_is_refused_and_burns_nothing(ds_client, users, redis, redis_prefix) -> None:
    alice, bob = users[0], users[1]
    await signup(ds_client, alice)
    challenge = await (await ds_client.get(f"/auth/{alice.name}")).json()
    before = await dump(redis, redis_prefix)
    forged = {"challenge": challenge, "signature": sign(bob.keys.signing.secret_key, challenge)}
    resp = await ds_client.post(f"/auth/{alice.name}", json=forged)
    assert resp.status == 401
    body = await resp.json()
    assert body["error"] == "invalid_signature"
    assert "signing key" in body["message"]
    assert await dump(redis, redis_prefix) == before
    # The owner can still redeem the challenge.
    good = {"challenge": challenge, "signature": sign(alice.keys.signing.secret_key, challenge)}
    assert (await ds_client.post(f"/auth/{alice.name}", json=good)).status == 200


async def test_challenge_is_bound_to_the_account_in_the_path(ds_client, users, redis, redis_prefix) -> None:
    alice, bob = users[0], users[1]
    await signup(ds_client, alice)
    await signup(ds_client, bob)
    challenge = await (await ds_client.get(f"/auth/{alice.name}")).json()
    before = await dump(redis, redis_prefix)
    # Bob signs Alice's challenge with his own key and presents it for his account.
    body = {"challenge": challenge, "signature": sign(bob.keys.signing.secret_key, challenge)}
    resp = await ds_client.post(f"/auth/{bob.name}", json=body)
    assert resp.status == 401
    assert (await resp.json())["error"] == "challenge_wrong_account"
    assert await dump(redis, redis_prefix) == before


async def test_expired_challenge_and_expired_token_are_refused(ds_client, users, clock) -> None:
    alice = users[0]
    await signup(ds_client, alice)
    challenge = await (await ds_client.get(f"/auth/{alice.name}")).json()
    token = await login(ds_client, alice)
    clock.advance(900)
    body = {"challenge": challenge, "signature": sign(alice.keys.signing.secret_key, challenge)}
    resp = await ds_client.post(f"/auth/{alice.name}", json=body)
    assert resp.status == 401
    assert (await resp.json())["error"] == "challenge_expired"
    clock.advance(SESSION_TTL - 900 - 1)
    assert (await ds_client.get(f"/account/{alice.name}", headers=bearer(token))).status == 200
    clock.advance(1)
    resp = await ds_client.get(f"/account/{alice.name}", headers=bearer(token))
    assert resp.status == 401
    assert await resp.json() == {"error": "session_expired", "message": "session token has expired"}


async def test_token_of_another_account_is_refused(ds_client, users) -> None:
    alice, bob = users[0], users[1]
    await signup(ds_client, alice)
    await signup(ds_client, bob)
    alice_token = await login(ds_client, alice)
    for path in (f"/account/{bob.name}", f"/delivery/messages/incoming/{bob.name}"):
        resp = await ds_client.get(path, headers=bearer(alice_token))
        assert resp.status == 401
        assert (await resp.json())["error"] == "session_wrong_account"


async def test_token_works_on_every_alias_of_the_account(ds_client, users) -> None:
    alice = users[0]
    await signup(ds_client, alice)
    token = await login(ds_client, alice, "alice.user.ensign.eth")
    resp = await ds_client.get(f"/account/{alice.name}", headers=bearer(token))
    assert resp.status == 200
    resp = await ds_client.get("/account/ALICE.user.ensign.eth", headers=bearer(token))
    assert resp.status == 200


async def test_missing_or_foreign_token_is_refused(ds_client, users, ds_settings) -> None:
    alice = users[0]
    await signup(ds_client, alice)
    resp = await ds_client.get(f"/account/{alice.name}")
    assert resp.status == 401
    assert (await resp.json())["error"] == "session_missing"
    forged = jwt.encode({"account": alice.name}, "another-secret-of-at-least-32-bytes!", algorithm="HS256")
    resp = await ds_client.get(f"/account/{alice.name}", headers=bearer(forged))
    assert resp.status == 401
    assert (await resp.json())["error"] == "session_invalid"


async def test_challenge_needs_an_account(ds_client, users, redis, redis_prefix) -> None:
    resp = await ds_client.get(f"/auth/{users[2].name}")
    assert resp.status == 404
    assert (await resp.json())["error"] == "no_account"
    resp = await ds_client.get("/auth/nobody.user.ensign.eth")
    assert resp.status == 404
    assert (await resp.json())["error"] == "name_unresolved"
    assert await keys_under(redis, redis_prefix) == []


@pytest.mark.parametrize(
    "body",
    [{"challenge": "x"}, {"challenge": "x", "signature": "y", "extra": 1}, {"challenge": 1, "signature": "y"}],
)
async def test_malformed_auth_body_is_400(ds_client, users, body) -> None:
    await signup(ds_client, users[0])
    resp = await ds_client.post(f"/auth/{users[0].name}", json=body)
    assert resp.status == 400
    assert (await resp.json())["error"] == "invalid_schema"
