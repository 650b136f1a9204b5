"""Accounts bound to their key (issue 10, point 3): a superseded profile published under another
name that points at the address gets nothing; re-creation after deletion needs the owner; a
re-binding (wallet-signed) ends the old key's sessions and sockets on every process, as do a
deletion and a token's expiry."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.delivery.ds_helpers import (  # noqa: F401  (fixtures)
    Clock,
    MemoryDirectory,
    User,
    bearer,
    chain,
    clock,
    directory,
    ds_client,
    ds_settings,
    dump,
    login,
    signup,
    users,
)
from tests.delivery.test_ds_push import Socket

from delivery.admin import Admin
from delivery.app import create_app
from delivery.keys import account_key
from ensign.sessions import SESSION_TTL
from ensign.config import AdminSettings, RedisSettings
from ensign.protocol.crypto import sign

MALLORY = "mallory.eth"  # a name the attacker owns and points at the victim's address


def impostor(directory: MemoryDirectory, victim: User) -> User:
    """The victim's superseded profile, whose keys the attacker has, published under the
    attacker's name (``addr`` = the victim's address; the profile is validly wallet-signed)."""
    old = victim.with_new_keys()
    directory.names[MALLORY] = old
    return old


async def attempt_login(client: Any, user: User, name: str) -> Any:
    resp = await client.get(f"/auth/{name}")
    assert resp.status == 200, await resp.text()
    challenge = await resp.json()
    return await client.post(f"/auth/{name}", json={"challenge": challenge, "signature": sign(user.keys.signing.secret_key, challenge)})


async def test_superseded_profile_under_another_name_takes_nothing(
    ds_client, users, directory, clock, redis, redis_prefix
) -> None:
    victim = users[0]
    await signup(ds_client, victim)
    old = impostor(directory, victim)
    before = await dump(redis, redis_prefix)
    # Log in through the attacker's name with the superseded key: refused, no session.
    resp = await attempt_login(ds_client, old, MALLORY)
    assert resp.status == 403
    assert (await resp.json())["error"] == "key_not_bound"
    # Delete, change settings, sign up: all refused with the old key.
    clock.advance(1)
    for method, path, body in (
        ("DELETE", f"/account/{MALLORY}", old.signed("deleteAccount", clock.ms, name=MALLORY)),
        ("POST", f"/account/{MALLORY}/settings", old.signed("updateSettings", clock.ms, name=MALLORY, settings={})),
        ("POST", f"/profile/{MALLORY}", old.profile.to_json()),
    ):
        resp = await ds_client.request(method, path, json=body)
        assert resp.status == 403, (path, await resp.text())
        assert (await resp.json())["error"] == "key_not_bound"
    assert await dump(redis, redis_prefix) == before
    # The owner's key still works, through either name's owner (its own).
    token = await login(ds_client, victim)
    assert (await ds_client.get(f"/account/{victim.name}", headers=bearer(token))).status == 200


async def test_deleted_account_is_not_recreated_from_public_data(
    ds_client, users, directory, clock, redis, redis_prefix
) -> None:
    victim = users[0]
    await signup(ds_client, victim)
    old = impostor(directory, victim)
    clock.advance(1)
    resp = await ds_client.delete(f"/account/{victim.name}", json=victim.signed("deleteAccount", clock.ms))
    assert resp.status == 200
    before = await dump(redis, redis_prefix)
    clock.advance(1)
    # Public data (the superseded profile, under the attacker's name or the victim's), and a
    # createAccount signed with a key the account was not bound to at its deletion: refused.
    resp = await ds_client.post(f"/profile/{MALLORY}", json=old.profile.to_json())
    assert (resp.status, (await resp.json())["error"]) == (403, "account_deleted")
    resp = await ds_client.post(f"/profile/{victim.name}", json=victim.profile.to_json())
    assert (resp.status, (await resp.json())["error"]) == (403, "account_deleted")
    resp = await ds_client.post(f"/account/{MALLORY}", json=old.signed("createAccount", clock.ms, name=MALLORY))
    assert (resp.status, (await resp.json())["error"]) == (403, "account_deleted")
    assert await dump(redis, redis_prefix) == before
    # The owner signs anew: with the wallet, bound to the profile its name publishes.
    resp = await ds_client.post(f"/account/{victim.name}/binding", json=victim.binding(clock.ms))
    assert resp.status == 201, await resp.text()
    account = await resp.json()
    assert (account["origin"], account["boundAt"]) == ("wallet", clock.ms)
    await login(ds_client, victim)


async def test_owner_recreates_with_the_key_bound_at_deletion(ds_client, users, clock) -> None:
    victim = users[0]
    await signup(ds_client, victim)
    clock.advance(1)
    assert (await ds_client.delete(f"/account/{victim.name}", json=victim.signed("deleteAccount", clock.ms))).status == 200
    clock.advance(1)
    resp = await ds_client.post(f"/account/{victim.name}", json=victim.signed("createAccount", clock.ms))
    assert resp.status == 201, await resp.text()


async def test_rebinding_ends_the_old_keys_sessions(ds_client, users, directory, clock, redis, redis_prefix) -> None:
    alice = users[0]
    await signup(ds_client, alice)
    old_token = await login(ds_client, alice)
    # Alice publishes a new profile (new keys) for her names; the account is still bound to the old key.
    new = alice.with_new_keys()
    directory.add(new, "alice.user.ensign.eth")
    resp = await attempt_login(ds_client, new, new.name)
    assert (resp.status, (await resp.json())["error"]) == (403, "key_not_bound")
    clock.advance(1)
    resp = await ds_client.post(f"/account/{new.name}/binding", json=new.binding(clock.ms))
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["boundAt"] == clock.ms
    assert (await redis.hget(account_key(redis_prefix, alice.address), "key")).decode() == new.keys.signing.public_key
    # The old session is dead at once, though it has not expired.
    resp = await ds_client.get(f"/delivery/messages/incoming/{alice.name}", headers=bearer(old_token))
    assert (resp.status, (await resp.json())["error"]) == (401, "session_stale")
    # The new key logs in; the old one no longer does, through any name.
    token = await login(ds_client, new)
    assert (await ds_client.get(f"/account/{new.name}", headers=bearer(token))).status == 200
    directory.names[MALLORY] = alice
    resp = await attempt_login(ds_client, alice, MALLORY)
    assert (resp.status, (await resp.json())["error"]) == (403, "key_not_bound")


async def test_binding_message_rules(ds_client, users, directory, clock, redis, redis_prefix) -> None:
    alice, bob = users[0], users[1]
    await signup(ds_client, alice)
    new = alice.with_new_keys()
    directory.add(new, "alice.user.ensign.eth")
    before = await dump(redis, redis_prefix)
    cases = [
        (new.binding(clock.ms, wallet_key=bob.private_key), 400, "invalid_signature"),  # not the address's wallet
        (new.binding(clock.ms, signing_key=bob.keys.signing.public_key), 400, "profile_not_published"),
        (new.binding(clock.ms - 301_000), 403, "stale_message"),  # outside the window
        (new.binding(clock.ms, ds_url="http://other.invalid"), 403, "wrong_delivery_service"),
        (new.binding(clock.ms, name="alice.user.ensign.eth"), 403, "wrong_account"),
        ({"message": {"topic": "bindProfile"}, "signature": "0x"}, 400, "invalid_message"),
    ]
    for body, status, code in cases:
        resp = await ds_client.post(f"/account/{new.name}/binding", json=body)
        assert (resp.status, (await resp.json())["error"]) == (status, code), body
    # Not newer than the current binding (the account was bound at its creation, clock.ms).
    resp = await ds_client.post(f"/account/{new.name}/binding", json=new.binding(clock.ms))
    assert (resp.status, (await resp.json())["error"]) == (409, "stale_message")
    assert await dump(redis, redis_prefix) == before
    clock.advance(1)
    body = new.binding(clock.ms)
    assert (await ds_client.post(f"/account/{new.name}/binding", json=body)).status == 200
    # A replay is refused: it is not newer than the binding it made (and its signature is spent).
    resp = await ds_client.post(f"/account/{new.name}/binding", json=body)
    assert (resp.status, (await resp.json())["error"]) == (409, "stale_message")


# -- sockets end with their session, on every process ---------------------------------------------


async def two_apps(aiohttp_client: Any, redis: Any, ds_settings: Any, directory: Any, chain: Any, clock: Clock) -> list[Any]:
    return [
        await aiohttp_client(create_app(ds_settings, redis=redis, directory=directory, chain=chain, clock=clock,
                                        sweep_interval=None))
        for _ in range(2)
    ]


async def connected_socket(client: Any, user: User, token: str) -> Socket:
    socket = Socket()
    await socket.connect(str(client.make_url("/")), user.name, token)
    assert (await socket.next_event())[0] == "authorized"
    return socket


async def assert_ended(socket: Socket, reason: str) -> None:
    """The socket is told why (``unauthorized``) and the server disconnects it."""
    assert await socket.next_event() == ("unauthorized", {"error": reason})
    for _ in range(50):
        if not socket.client.connected:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the server did not disconnect the socket")


async def test_deletion_ends_the_accounts_sockets_on_every_process(
    aiohttp_client, redis, ds_settings, directory, chain, clock, users
) -> None:
    alice = users[0]
    first, second = await two_apps(aiohttp_client, redis, ds_settings, directory, chain, clock)
    await signup(first, alice)
    token = await login(first, alice)
    socket = await connected_socket(second, alice, token)
    try:
        clock.advance(1)
        assert (await first.delete(f"/account/{alice.name}", json=alice.signed("deleteAccount", clock.ms))).status == 200
        await assert_ended(socket, "the account of this session token no longer exists")
        metrics = await (await second.get("/metrics")).text()
        assert "ensign_ds_sockets 0.0" in metrics
    finally:
        await socket.close()


async def test_rebinding_ends_the_old_keys_sockets_on_every_process(
    aiohttp_client, redis, ds_settings, directory, chain, clock, users
) -> None:
    alice, bob = users[0], users[1]
    first, second = await two_apps(aiohttp_client, redis, ds_settings, directory, chain, clock)
    await signup(first, alice)
    await signup(first, bob)
    old_socket = await connected_socket(second, alice, await login(first, alice))
    bystander = await connected_socket(second, bob, await login(first, bob))
    new = alice.with_new_keys()
    directory.add(new, "alice.user.ensign.eth")
    try:
        clock.advance(1)
        assert (await first.post(f"/account/{new.name}/binding", json=new.binding(clock.ms))).status == 200
        await assert_ended(old_socket, "the account of this session token was bound to another key since")
        # A socket of the new key connects and stays; another account's socket was not touched.
        new_socket = await connected_socket(second, new, await login(first, new))
        await new_socket.close()
        assert bystander.client.connected and bystander.events.empty()
    finally:
        await old_socket.close()
        await bystander.close()


async def test_expired_token_ends_its_socket(aiohttp_client, redis, ds_settings, directory, chain, clock, users) -> None:
    alice = users[0]
    first, second = await two_apps(aiohttp_client, redis, ds_settings, directory, chain, clock)
    await signup(first, alice)
    token = await login(first, alice)
    # Connect a second before the token expires, then let the clock pass its expiry.
    clock.advance(SESSION_TTL - 1)
    socket = await connected_socket(second, alice, token)
    try:
        clock.advance(2)
        await assert_ended(socket, "session token has expired")
    finally:
        await socket.close()


async def test_operator_deletion_ends_the_accounts_sockets_and_the_owner_comes_back(
    aiohttp_client, redis, redis_prefix, ds_settings, directory, chain, clock, users
) -> None:
    alice = users[0]
    first, second = await two_apps(aiohttp_client, redis, ds_settings, directory, chain, clock)
    await signup(first, alice)
    socket = await connected_socket(second, alice, await login(first, alice))
    admin = Admin(redis, AdminSettings(redis=RedisSettings(prefix=redis_prefix), operator="carol"), clock=clock)
    try:
        await admin.delete(alice.address)
        await assert_ended(socket, "the account of this session token no longer exists")
    finally:
        await socket.close()
    # The public profile does not re-create it; the owner's key bound at the deletion does.
    resp = await first.post(f"/profile/{alice.name}", json=alice.profile.to_json())
    assert (resp.status, (await resp.json())["error"]) == (403, "account_deleted")
    clock.advance(1)
    assert (await first.post(f"/account/{alice.name}", json=alice.signed("createAccount", clock.ms))).status == 201
