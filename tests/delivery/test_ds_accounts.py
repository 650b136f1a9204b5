"""Accounts: signed creation and deletion, replay protection, settings, dm3 sign-up (real Redis)."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.delivery.ds_helpers import (  # noqa: F401  (fixtures)
    DS_URL,
    bearer,
    chain,
    clock,
    directory,
    ds_client,
    ds_settings,
    dump,
    envelope,
    keys_under,
    login,
    rpc_submit,
    signup,
    users,
)

from delivery.accounts import REPLAY_WINDOW
from delivery.keys import account_key, queue_keys, signed_message_key, tombstone_key
from delivery.appkeys import queue_key
from ensign.redis_client import lua_script


async def test_signed_creation_makes_an_account_with_settings(ds_client, users, clock, redis, redis_prefix) -> None:
    alice = users[0]
    body = alice.signed("createAccount", clock.ms, settings={"maxMessageSize": 5000, "messageTTL": 3600})
    resp = await ds_client.post(f"/account/{alice.name}", json=body)
    assert resp.status == 201, await resp.text()
    assert await resp.json() == {
        "account": alice.address,
        "createdAt": clock.ms,
        "boundAt": clock.ms,
        "origin": "signed",
        "settings": {"maxMessageSize": 5000, "messageTTL": 3600},
    }
    assert await keys_under(redis, redis_prefix) == sorted(
        [account_key(redis_prefix, alice.address), signed_message_key(redis_prefix, alice.address, body["signature"])]
    )
    # The single-use marker lives until the message leaves the replay window.
    ttl = await redis.ttl(signed_message_key(redis_prefix, alice.address, body["signature"]))
    assert REPLAY_WINDOW - 2 <= ttl <= REPLAY_WINDOW + 1


async def test_account_of_an_alias_is_the_address_account(ds_client, users, clock, redis, redis_prefix) -> None:
    alice = users[0]
    body = alice.signed("createAccount", clock.ms, name="alice.user.ensign.eth")
    assert (await ds_client.post("/account/alice.user.ensign.eth", json=body)).status == 201
    # The same account answers under the address name: a second creation is refused.
    again = alice.signed("createAccount", clock.ms + 1)
    resp = await ds_client.post(f"/account/{alice.name}", json=again)
    assert resp.status == 409
    assert (await resp.json())["error"] == "account_exists"
    assert account_key(redis_prefix, alice.address) in await keys_under(redis, redis_prefix)


async def test_creation_with_a_bad_signature_changes_nothing(ds_client, users, clock, redis, redis_prefix) -> None:
    alice, bob = users[0], users[1]
    body = alice.signed("createAccount", clock.ms, secret_key=bob.keys.signing.secret_key)
    resp = await ds_client.post(f"/account/{alice.name}", json=body)
    assert resp.status == 400
    assert (await resp.json())["error"] == "invalid_signature"
    assert await keys_under(redis, redis_prefix) == []


async def test_stale_or_misdirected_creation_is_refused(ds_client, users, clock, redis, redis_prefix) -> None:
    alice = users[0]
    cases = [
        (alice.signed("createAccount", clock.ms - REPLAY_WINDOW * 1000 - 1), 403, "stale_message"),
        (alice.signed("createAccount", clock.ms + REPLAY_WINDOW * 1000 + 1), 403, "stale_message"),
        (alice.signed("createAccount", clock.ms, ds_url="https://other.example"), 403, "wrong_delivery_service"),
        (alice.signed("createAccount", clock.ms, name="bob.user.ensign.eth"), 403, "wrong_account"),
        (alice.signed("deleteAccount", clock.ms), 400, "invalid_message"),
        ({"message": {"topic": "createAccount"}, "signature": "x"}, 400, "invalid_message"),
        (alice.signed("createAccount", clock.ms, settings={"maxMessageSize": 10**9}), 400, "invalid_settings"),
    ]
    for body, status, code in cases:
        resp = await ds_client.post(f"/account/{alice.name}", json=body)
        assert (resp.status, (await resp.json())["error"]) == (status, code), body
    assert await keys_under(redis, redis_prefix) == []


async def test_replayed_creation_message_is_refused(ds_client, users, clock, redis, redis_prefix) -> None:
    alice = users[0]
    create = alice.signed("createAccount", clock.ms)
    assert (await ds_client.post(f"/account/{alice.name}", json=create)).status == 201
    clock.advance(1)
    delete = alice.signed("deleteAccount", clock.ms)
    assert (await ds_client.post(f"/account/{alice.name}", json=create)).status == 409
    resp = await ds_client.delete(f"/account/{alice.name}", json=delete)
    assert resp.status == 200
    before = await dump(redis, redis_prefix)
    # Replaying the creation after the deletion must not bring the account back.
    resp = await ds_client.post(f"/account/{alice.name}", json=create)
    assert resp.status == 409
    assert (await resp.json())["error"] == "stale_message"
    assert await dump(redis, redis_prefix) == before


async def test_deletion_removes_account_queue_and_settings(ds_client, users, clock, ds_settings, redis, redis_prefix) -> None:
    alice, bob = users[0], users[1]
    await signup(ds_client, alice)
    await signup(ds_client, bob)
    token = await login(ds_client, bob)
    resp = await ds_client.put(f"/account/{bob.name}/settings", json={"messageTTL": 600}, headers=bearer(token))
    assert resp.status == 200
    resp = await ds_client.post("/rpc", json=rpc_submit(envelope(alice, bob, ds_settings)))
    assert resp.status == 200, await resp.text()
    bob_keys = queue_keys(redis_prefix, bob.address)
    assert await redis.exists(bob_keys.queue, bob_keys.expiry, bob_keys.messages) == 3

    clock.advance(1)
    delete = bob.signed("deleteAccount", clock.ms)
    resp = await ds_client.delete(f"/account/{bob.name}", json=delete)
    assert resp.status == 200
    assert await resp.json() == {"deleted": bob.address, "droppedMessages": 1}
    remaining = [k for k in await keys_under(redis, redis_prefix) if bob.address in k]
    assert remaining == sorted(
        [tombstone_key(redis_prefix, bob.address), signed_message_key(redis_prefix, bob.address, delete["signature"])]
    )
    assert json.loads(await redis.get(tombstone_key(redis_prefix, bob.address)))["deletedAt"] == clock.ms
    # The old session dies with the account.
    resp = await ds_client.get(f"/account/{bob.name}", headers=bearer(token))
    assert resp.status == 401
    # Nothing can be sent to the deleted account.
    resp = await ds_client.post("/rpc", json=rpc_submit(envelope(alice, bob, ds_settings, "again")))
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == -32014


async def test_replayed_deletion_message_is_refused(ds_client, users, clock, redis, redis_prefix) -> None:
    alice = users[0]
    assert (await ds_client.post(f"/account/{alice.name}", json=alice.signed("createAccount", clock.ms))).status == 201
    clock.advance(1)
    delete = alice.signed("deleteAccount", clock.ms)
    assert (await ds_client.delete(f"/account/{alice.name}", json=delete)).status == 200
    before = await dump(redis, redis_prefix)
    resp = await ds_client.delete(f"/account/{alice.name}", json=delete)
    assert resp.status == 404
    assert (await resp.json())["error"] == "no_account"
    assert await dump(redis, redis_prefix) == before
    # Re-created later: the old deletion message is older than the new account.
    clock.advance(1)
    assert (await ds_client.post(f"/account/{alice.name}", json=alice.signed("createAccount", clock.ms))).status == 201
    before = await dump(redis, redis_prefix)
    resp = await ds_client.delete(f"/account/{alice.name}", json=delete)
    assert resp.status == 409
    assert (await resp.json())["error"] == "stale_message"
    assert await dump(redis, redis_prefix) == before


async def test_deletion_with_a_bad_signature_changes_nothing(ds_client, users, clock, redis, redis_prefix) -> None:
    alice, bob = users[0], users[1]
    assert (await ds_client.post(f"/account/{alice.name}", json=alice.signed("createAccount", clock.ms))).status == 201
    clock.advance(1)
    before = await dump(redis, redis_prefix)
    forged = alice.signed("deleteAccount", clock.ms, secret_key=bob.keys.signing.secret_key)
    resp = await ds_client.delete(f"/account/{alice.name}", json=forged)
    assert resp.status == 400
    assert (await resp.json())["error"] == "invalid_signature"
    assert await dump(redis, redis_prefix) == before


async def test_replayed_public_profile_does_not_resurrect_a_deleted_account(
    ds_client, users, clock, redis, redis_prefix
) -> None:
    alice = users[0]
    await signup(ds_client, alice)
    clock.advance(1)
    assert (await ds_client.delete(f"/account/{alice.name}", json=alice.signed("deleteAccount", clock.ms))).status == 200
    before = await dump(redis, redis_prefix)
    resp = await ds_client.post(f"/profile/{alice.name}", json=alice.profile.to_json())
    assert resp.status == 403
    assert (await resp.json())["error"] == "account_deleted"
    assert await dump(redis, redis_prefix) == before
    # The owner comes back with a signed creation message.
    clock.advance(1)
    assert (await ds_client.post(f"/account/{alice.name}", json=alice.signed("createAccount", clock.ms))).status == 201
    assert not await redis.exists(tombstone_key(redis_prefix, alice.address))


async def test_profile_signup_requires_the_published_profile(ds_client, users, redis, redis_prefix) -> None:
    alice, bob = users[0], users[1]
    # Bob's (validly signed) profile posted for Alice's name: not the one ENS publishes for her.
    resp = await ds_client.post(f"/profile/{alice.name}", json=bob.profile.to_json())
    assert resp.status == 400
    assert (await resp.json())["error"] == "invalid_signature"
    resp = await ds_client.post(f"/profile/{alice.name}", json={"profile": {}, "signature": "0x"})
    assert resp.status == 400
    assert await keys_under(redis, redis_prefix) == []
    # GET /profile answers only for names with an account here.
    assert (await ds_client.get(f"/profile/{alice.name}")).status == 404
    await signup(ds_client, alice)
    resp = await ds_client.get("/profile/alice.user.ensign.eth")
    assert resp.status == 200
    assert await resp.json() == alice.profile.to_json()


async def test_owner_changes_settings(ds_client, users, clock, redis, redis_prefix) -> None:
    alice = users[0]
    await signup(ds_client, alice)
    token = await login(ds_client, alice)
    settings = {
        "maxMessageSize": 2048,
        "spamFilterRules": {"minNonce": 1, "minBalance": "0x10", "minTokenBalance": {"address": "0x" + "11" * 20, "amount": "5"}},
        "notifications": {"enabled": True, "channels": [{"type": "EMAIL", "recipientValue": "a@b.example"}]},
    }
    resp = await ds_client.put(f"/account/{alice.name}/settings", json=settings, headers=bearer(token))
    assert resp.status == 200
    stored = (await resp.json())["settings"]
    assert stored["spamFilterRules"]["minBalance"] == "16"
    assert stored["maxMessageSize"] == 2048
    before = await dump(redis, redis_prefix)
    for bad in ({"maxMessageSize": 10}, {"spamFilterRules": {"minNonce": -1}}, {"colour": "red"},
                {"notifications": {"channels": [{"type": "SMS", "recipientValue": "1"}]}}):
        resp = await ds_client.put(f"/account/{alice.name}/settings", json=bad, headers=bearer(token))
        assert resp.status == 400
        assert (await resp.json())["error"] == "invalid_settings"
    assert await dump(redis, redis_prefix) == before
    # A signed updateSettings message works too, once.
    clock.advance(1)
    update = alice.signed("updateSettings", clock.ms, settings={"messageTTL": 120})
    resp = await ds_client.post(f"/account/{alice.name}/settings", json=update)
    assert resp.status == 200
    assert (await resp.json())["settings"] == {"messageTTL": 120}
    resp = await ds_client.post(f"/account/{alice.name}/settings", json=update)
    assert resp.status == 409
    assert (await resp.json())["error"] == "replayed_message"


@pytest.mark.parametrize("order", ["delete_then_enqueue", "enqueue_then_delete"])
async def test_submission_racing_its_receivers_deletion_leaves_nothing_queued(
    ds_client, users, clock, ds_settings, redis, redis_prefix, order
) -> None:
    alice, bob = users[0], users[1]
    await signup(ds_client, alice)
    await signup(ds_client, bob)
    queue = ds_client.app[queue_key]
    enqueue = queue.enqueue
    deletions: list[dict[str, object]] = []

    async def delete_bob() -> None:
        clock.advance(1)
        resp = await ds_client.delete(f"/account/{bob.name}", json=bob.signed("deleteAccount", clock.ms))
        assert resp.status == 200, await resp.text()
        deletions.append(await resp.json())

    async def racing_enqueue(*args: object, **kwargs: object) -> bool:
        # A hook between intake's checks (bob's account was read and exists) and its enqueue.
        if order == "delete_then_enqueue":
            await delete_bob()
            return await enqueue(*args, **kwargs)
        stored = await enqueue(*args, **kwargs)
        await delete_bob()
        return stored

    queue.enqueue = racing_enqueue  # type: ignore[method-assign]
    pubsub = redis.pubsub()
    await pubsub.subscribe(queue.channel(bob.address))
    try:
        await pubsub.get_message(timeout=1)  # the subscribe confirmation
        resp = await ds_client.post("/rpc", json=rpc_submit(envelope(alice, bob, ds_settings)))
        announced = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.3)
    finally:
        await pubsub.aclose()

    bob_keys = queue_keys(redis_prefix, bob.address)
    assert await redis.exists(bob_keys.queue, bob_keys.expiry, bob_keys.messages, bob_keys.account) == 0
    assert await redis.exists(bob_keys.tombstone) == 1
    if order == "delete_then_enqueue":
        # The insert script found no account: refused, nothing stored, nothing dropped.
        assert resp.status == 404
        assert (await resp.json())["error"]["data"]["error"] == "receiver_without_account"
        assert deletions == [{"deleted": bob.address, "droppedMessages": 0}]
        assert announced is None  # never stored, so never pushed to a socket still open
    else:
        # Stored while the account existed, then deleted with the queue.
        assert deletions == [{"deleted": bob.address, "droppedMessages": 1}]


# -- the account scripts, called directly in racing orders ----------------------------------------


async def test_create_account_script_refuses_when_the_tombstone_changed_since_it_was_read(redis, redis_prefix) -> None:
    create = redis.register_script(lua_script("delivery.lua", "create_account"))
    keys = [account_key(redis_prefix, "0xA"), tombstone_key(redis_prefix, "0xA")]
    # The caller read "no tombstone"; a deletion wrote one before the create ran.
    await redis.set(keys[1], '{"deletedAt": 5}')

    assert await create(keys=keys, args=["", "created", "1", "origin", "signed"]) == -1
    assert not await redis.exists(keys[0])
    # Read again and judged: created, and the tombstone goes with it.
    assert await create(keys=keys, args=['{"deletedAt": 5}', "created", "6", "origin", "signed"]) == 1
    assert await redis.hgetall(keys[0]) == {b"created": b"6", b"origin": b"signed"}
    assert not await redis.exists(keys[1])
    # An existing account is never overwritten.
    assert await create(keys=keys, args=["", "created", "7", "origin", "profile"]) == 0
    assert await redis.hget(keys[0], "created") == b"6"


async def test_update_settings_script_never_recreates_a_deleted_account(redis, redis_prefix) -> None:
    update = redis.register_script(lua_script("delivery.lua", "update_settings"))
    key = account_key(redis_prefix, "0xA")

    assert await update(keys=[key], args=['{"messageTTL":60}']) == 0
    assert not await redis.exists(key)
    await redis.hset(key, mapping={"created": "1", "settings": "{}"})
    assert await update(keys=[key], args=['{"messageTTL":60}']) == 1
    assert await redis.hget(key, "settings") == b'{"messageTTL":60}'


async def test_concurrent_sign_ups_create_one_account(ds_client, users, redis, redis_prefix) -> None:
    alice = users[0]

    answers = await asyncio.gather(
        *(ds_client.post(f"/profile/{alice.name}", json=alice.profile.to_json()) for _ in range(6))
    )

    assert [r.status for r in answers] == [200] * 6
    assert [k for k in await keys_under(redis, redis_prefix) if "account:" in k] == [
        account_key(redis_prefix, alice.address)
    ]
