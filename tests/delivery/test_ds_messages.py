"""Intake → queue → fetch/ack, every refusal, TTL expiry and paging (real Redis)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from tests.delivery.ds_helpers import (  # noqa: F401  (fixtures)
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

from delivery.app import create_app
from delivery.keys import queue_keys
from delivery.sweeper import run_sweep
from delivery.appkeys import queue_key
from ensign.protocol.canonical import canonical_size
from ensign.protocol.crypto import EncryptionKeyPair, verify
from ensign.protocol.encoding import sha256_hex
from ensign.protocol.envelope import open_envelope
from ensign.protocol.models import EncryptionEnvelop
from ensign.protocol.postmark import open_postmark, postmark_signature_payload, verify_postmark


def own_keys(user) -> EncryptionKeyPair:
    return user.keys.encryption


async def error_of(resp) -> tuple[int, int, str]:
    body = await resp.json()
    return resp.status, body["error"]["code"], body["error"]["data"]["error"]


@pytest.fixture
async def accounts(ds_client, users):
    """Alice and Bob signed up; Bob's session token."""
    await signup(ds_client, users[0])
    await signup(ds_client, users[1])
    return await login(ds_client, users[1])


@pytest.mark.parametrize("form", ["npm", "source"])
async def test_send_fetch_open_and_ack(ds_client, users, accounts, ds_settings, clock, redis, redis_prefix, form) -> None:
    alice, bob, token = users[0], users[1], accounts
    env = envelope(alice, bob, ds_settings, "hi bob", form=form)
    resp = await ds_client.post("/rpc", json={**rpc_submit(env), "id": 7})
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {"jsonrpc": "2.0", "id": 7, "result": "OK"}

    resp = await ds_client.get(f"/delivery/messages/incoming/{bob.name}/", headers=bearer(token))
    assert resp.status == 200
    assert "X-Next-Cursor" not in resp.headers
    [stored] = await resp.json()
    assert stored["message"] == env["message"]
    assert stored["metadata"]["deliveryInformation"] == {"to": bob.name, "from": alice.name}
    received = EncryptionEnvelop.from_json(stored)
    message = open_envelope(received, own_keys(bob), alice.keys.signing.public_key)
    assert message.message == "hi bob"
    postmark = open_postmark(stored["postmark"], own_keys(bob))
    assert postmark.incomming_timestamp == clock.ms
    assert verify_postmark(postmark, env["message"], ds_settings.keys.signing_public_key)
    assert verify(ds_settings.keys.signing_public_key,
                  postmark_signature_payload(postmark.message_hash, postmark.incomming_timestamp), postmark.signature)

    message_hash = env["metadata"]["encryptedMessageHash" if form == "npm" else "messageHash"]
    ack = {"acknowledgements": [{"contactAddress": alice.name, "messageHash": message_hash}]}
    resp = await ds_client.post(f"/delivery/messages/{bob.name}/syncAcknowledgements/", json=ack, headers=bearer(token))
    assert resp.status == 200
    assert await resp.json() == {"acknowledged": 1}
    resp = await ds_client.get(f"/delivery/messages/incoming/{bob.name}", headers=bearer(token))
    assert await resp.json() == []
    keys = queue_keys(redis_prefix, bob.address)
    assert await redis.exists(keys.queue, keys.expiry, keys.messages) == 0


async def test_resubmission_is_stored_once(ds_client, users, accounts, ds_settings, redis, redis_prefix) -> None:
    alice, bob = users[0], users[1]
    env = envelope(alice, bob, ds_settings)
    for _ in range(3):
        resp = await ds_client.post("/rpc", json=rpc_submit(env))
        assert resp.status == 200
    keys = queue_keys(redis_prefix, bob.address)
    assert await redis.zcard(keys.queue) == 1
    metrics = await (await ds_client.get("/metrics")).text()
    assert "ensign_ds_messages_total 1.0" in metrics
    assert "ensign_ds_duplicates_total 2.0" in metrics


async def test_messages_to_any_alias_reach_one_queue(ds_client, users, accounts, ds_settings, redis, redis_prefix) -> None:
    alice, bob, token = users[0], users[1], accounts
    await ds_client.post("/rpc", json=rpc_submit(envelope(alice, bob, ds_settings, "one")))
    await ds_client.post("/rpc", json=rpc_submit(envelope(alice, bob, ds_settings, "two", receiver_name="bob.user.ensign.eth")))
    resp = await ds_client.get("/delivery/messages/incoming/bob.user.ensign.eth", headers=bearer(token))
    texts = [open_envelope(EncryptionEnvelop.from_json(e), own_keys(bob), alice.keys.signing.public_key).message
             for e in await resp.json()]
    assert texts == ["one", "two"]


async def test_size_limit_is_exact(ds_client, users, accounts, ds_settings, redis, redis_prefix) -> None:
    alice, bob, token = users[0], users[1], accounts
    env = envelope(alice, bob, ds_settings)
    size = canonical_size(env)
    put = ds_client.put(f"/account/{bob.name}/settings", json={"maxMessageSize": size - 1}, headers=bearer(token))
    assert (await put).status == 200
    before = await dump(redis, redis_prefix)
    resp = await ds_client.post("/rpc", json=rpc_submit(env))
    assert await error_of(resp) == (413, -32011, "message_too_large")
    assert await dump(redis, redis_prefix) == before
    put = ds_client.put(f"/account/{bob.name}/settings", json={"maxMessageSize": size}, headers=bearer(token))
    assert (await put).status == 200
    resp = await ds_client.post("/rpc", json=rpc_submit(env))
    assert resp.status == 200


async def test_settings_changed_through_another_process_apply_to_the_next_submission(
    aiohttp_client, ds_client, users, accounts, ds_settings, directory, chain, clock, redis, redis_prefix
) -> None:
    # Each process reuses a receiver's account it read; the insert script catches a change made
    # elsewhere, and the submission is checked against the new settings.
    alice, bob, token = users[0], users[1], accounts
    other = await aiohttp_client(
        create_app(ds_settings, redis=redis, directory=directory, chain=chain, clock=clock, sweep_interval=None)
    )
    first = envelope(alice, bob, ds_settings, "first")
    assert (await ds_client.post("/rpc", json=rpc_submit(first))).status == 200  # bob's account read here
    env = envelope(alice, bob, ds_settings, "second")
    put = other.put(f"/account/{bob.name}/settings", json={"maxMessageSize": canonical_size(env) - 1}, headers=bearer(token))
    assert (await put).status == 200
    before = await dump(redis, redis_prefix)
    resp = await ds_client.post("/rpc", json=rpc_submit(env))
    assert await error_of(resp) == (413, -32011, "message_too_large")
    assert await dump(redis, redis_prefix) == before
    put = other.put(f"/account/{bob.name}/settings", json={"maxMessageSize": canonical_size(env)}, headers=bearer(token))
    assert (await put).status == 200
    assert (await ds_client.post("/rpc", json=rpc_submit(env))).status == 200


async def test_service_size_limit_applies_before_anything_else(
    aiohttp_client, redis, redis_prefix, directory, chain, clock, users, ds_settings
) -> None:
    alice, bob = users[0], users[1]
    env = envelope(alice, bob, ds_settings)
    size = canonical_size(env)
    for limit, status in ((size - 1, 413), (size, 404)):
        settings = replace(ds_settings, message_size_limit=limit)
        client = await aiohttp_client(create_app(settings, redis=redis, directory=directory, chain=chain, clock=clock, sweep_interval=None))
        resp = await client.post("/rpc", json=rpc_submit(env))
        # At the limit the envelope passes the size check and fails later: Bob has no account.
        assert resp.status == status, await resp.text()
    assert await keys_under(redis, redis_prefix) == []


async def test_unknown_receiver_is_refused(ds_client, users, accounts, ds_settings, redis, redis_prefix) -> None:
    alice, bob = users[0], users[1]
    before = await dump(redis, redis_prefix)
    env = envelope(alice, bob, ds_settings, receiver_name="nobody.user.ensign.eth")
    assert await error_of(await ds_client.post("/rpc", json=rpc_submit(env))) == (404, -32013, "receiver_unknown")
    carol = users[2]  # resolves, but has no account here
    env = envelope(alice, carol, ds_settings)
    assert await error_of(await ds_client.post("/rpc", json=rpc_submit(env))) == (404, -32014, "receiver_without_account")
    assert await dump(redis, redis_prefix) == before


async def test_spoofed_sender_is_refused(ds_client, users, accounts, ds_settings, redis, redis_prefix) -> None:
    alice, bob, carol = users[0], users[1], users[2]
    before = await dump(redis, redis_prefix)
    # Carol claims to be Alice, signing with her own key.
    env = envelope(alice, bob, ds_settings, signing_key=carol.keys.signing.secret_key)
    assert await error_of(await ds_client.post("/rpc", json=rpc_submit(env))) == (400, -32016, "sender_not_verified")
    # A tampered message under Alice's genuine metadata.
    env = envelope(alice, bob, ds_settings)
    env["message"] = envelope(alice, bob, ds_settings, "evil")["message"]
    assert await error_of(await ds_client.post("/rpc", json=rpc_submit(env))) == (400, -32016, "sender_not_verified")
    # A sender without a profile.
    env = envelope(alice, bob, ds_settings, sender_name="ghost.user.ensign.eth")
    assert await error_of(await ds_client.post("/rpc", json=rpc_submit(env))) == (400, -32015, "sender_unknown")
    assert await dump(redis, redis_prefix) == before
    metrics = await (await ds_client.get("/metrics")).text()
    assert 'ensign_ds_rejections_total{reason="sender_not_verified"} 2.0' in metrics


async def test_spam_rules_are_read_from_the_chain(ds_client, users, accounts, ds_settings, chain, redis, redis_prefix) -> None:
    alice, bob, token = users[0], users[1], accounts
    token_address = "0x" + "22" * 20
    rules = {"minNonce": 2, "minBalance": "1000", "minTokenBalance": {"address": token_address, "amount": "7"}}
    assert (await ds_client.put(f"/account/{bob.name}/settings", json={"spamFilterRules": rules}, headers=bearer(token))).status == 200
    env = envelope(alice, bob, ds_settings)
    before = await dump(redis, redis_prefix)
    for rule, grant in (
        ("minNonce", lambda: chain.nonces.__setitem__(alice.address, 2)),
        ("minBalance", lambda: chain.balances.__setitem__(alice.address, 1000)),
        ("minTokenBalance", lambda: chain.tokens.__setitem__((token_address, alice.address), 7)),
    ):
        resp = await ds_client.post("/rpc", json=rpc_submit(env))
        assert await error_of(resp) == (400, -32010, "spam")
        assert rule in (await resp.json())["error"]["message"]
        assert await dump(redis, redis_prefix) == before
        grant()
    assert (await ds_client.post("/rpc", json=rpc_submit(env))).status == 200


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ("not json", 400, -32700),
        ([1, 2], 400, -32600),
        ({"jsonrpc": "2.0", "method": "dm3_nope", "params": []}, 405, -32601),
        ({"jsonrpc": "2.0", "method": "dm3_submitMessage", "params": []}, 400, -32602),
        ({"jsonrpc": "2.0", "method": "dm3_submitMessage", "params": ["{bad json"]}, 400, -32602),
        ({"jsonrpc": "2.0", "method": "dm3_submitMessage", "params": ['{"message": "x"}']}, 400, -32602),
        ({"jsonrpc": "2.0", "method": "dm3_submitMessage", "params": [7]}, 400, -32602),
    ],
)
async def test_bad_rpc_input_is_4xx_json(ds_client, redis, redis_prefix, body, status, code) -> None:
    data = body if isinstance(body, str) else json.dumps(body)
    resp = await ds_client.post("/rpc", data=data)
    assert resp.status == status
    assert (await resp.json())["error"]["code"] == code
    assert await keys_under(redis, redis_prefix) == []


async def test_delivery_information_for_another_service_is_refused(ds_client, users, accounts, ds_settings) -> None:
    from tests.delivery.ds_helpers import make_settings

    other = make_settings("unused:")
    env = envelope(users[0], users[1], other)
    assert await error_of(await ds_client.post("/rpc", json=rpc_submit(env))) == (400, -32012, "delivery_information_unreadable")


async def test_public_properties_and_profile_extension(ds_client, users, accounts, ds_settings) -> None:
    resp = await ds_client.post("/rpc", json={"jsonrpc": "2.0", "method": "dm3_getDeliveryServiceProperties", "params": []})
    result = (await resp.json())["result"]
    assert isinstance(result, str)
    assert json.loads(result) == {"messageTTL": ds_settings.message_ttl, "sizeLimit": ds_settings.message_size_limit}
    assert ds_settings.jwt_secret not in result and ds_settings.keys.signing_private_key not in result
    resp = await ds_client.post("/rpc", json={"jsonrpc": "2.0", "method": "dm3_getProfileExtension", "params": [users[1].name]})
    assert json.loads((await resp.json())["result"])["notSupportedMessageTypes"] == []
    resp = await ds_client.post("/rpc", json={"jsonrpc": "2.0", "method": "dm3_getProfileExtension", "params": [users[2].name]})
    assert (await resp.json())["error"]["code"] == -32018


@pytest.mark.parametrize("request_id", [7, "req-7", None, 2**70, 1.5])
async def test_an_answer_carries_the_request_id_as_sent(ds_client, request_id) -> None:
    body = {"jsonrpc": "2.0", "id": request_id, "method": "dm3_getDeliveryServiceProperties", "params": []}
    resp = await ds_client.post("/rpc", json=body)
    assert resp.status == 200 and resp.content_type == "application/json"
    answer = json.loads(await resp.text())  # the stdlib keeps an integer past 64 bits exact
    assert answer["jsonrpc"] == "2.0" and answer["id"] == request_id and isinstance(answer["result"], str)


async def test_paging_oldest_first_with_cursor(ds_client, users, accounts, ds_settings, clock) -> None:
    alice, bob, token = users[0], users[1], accounts
    for i in range(5):
        clock.advance(1)
        assert (await ds_client.post("/rpc", json=rpc_submit(envelope(alice, bob, ds_settings, f"m{i}")))).status == 200
    seen, cursor, pages = [], None, 0
    while True:
        query = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        resp = await ds_client.get(f"/delivery/messages/incoming/{bob.name}", params=query, headers=bearer(token))
        assert resp.status == 200
        pages += 1
        seen += [open_envelope(EncryptionEnvelop.from_json(e), own_keys(bob), alice.keys.signing.public_key).message
                 for e in await resp.json()]
        cursor = resp.headers.get("X-Next-Cursor")
        if cursor is None:
            break
        assert "rel=\"next\"" in resp.headers["Link"]
    assert seen == [f"m{i}" for i in range(5)]
    assert pages == 3
    resp = await ds_client.get(f"/delivery/messages/incoming/{bob.name}", params={"limit": "0"}, headers=bearer(token))
    assert resp.status == 400


async def test_messages_expire_after_the_ttl(ds_client, users, accounts, ds_settings, clock, redis, redis_prefix) -> None:
    alice, bob, token = users[0], users[1], accounts
    assert (await ds_client.put(f"/account/{bob.name}/settings", json={"messageTTL": 600}, headers=bearer(token))).status == 200
    assert (await ds_client.post("/rpc", json=rpc_submit(envelope(alice, bob, ds_settings)))).status == 200
    keys = queue_keys(redis_prefix, bob.address)
    expires = await redis.zrange(keys.expiry, 0, -1, withscores=True)
    assert [score for _, score in expires] == [clock() + 600]
    clock.advance(599)
    token = await login(ds_client, bob)
    assert len(await (await ds_client.get(f"/delivery/messages/incoming/{bob.name}", headers=bearer(token))).json()) == 1
    clock.advance(1)
    assert await (await ds_client.get(f"/delivery/messages/incoming/{bob.name}", headers=bearer(token))).json() == []
    removed = await run_sweep(ds_client.app[queue_key], clock=clock)
    assert removed == 1
    assert await redis.exists(keys.queue, keys.expiry, keys.messages) == 0


async def test_malformed_ack_is_400_and_unknown_hash_is_ignored(ds_client, users, accounts, ds_settings, redis, redis_prefix) -> None:
    bob, token = users[1], accounts
    await ds_client.post("/rpc", json=rpc_submit(envelope(users[0], bob, ds_settings)))
    before = await dump(redis, redis_prefix)
    path = f"/delivery/messages/{bob.name}/syncAcknowledgements/"
    for bad in ({"acknowledgements": [{"messageHash": "x"}]}, {"acks": []}, {"acknowledgements": "x"}):
        resp = await ds_client.post(path, json=bad, headers=bearer(token))
        assert resp.status == 400
    resp = await ds_client.post(path, json={"acknowledgements": [{"contactAddress": "a", "messageHash": sha256_hex("x")}]},
                                headers=bearer(token))
    assert await resp.json() == {"acknowledged": 0}
    assert await dump(redis, redis_prefix) == before


async def test_a_submission_looks_each_name_up_once(ds_client, users, accounts, ds_settings, directory) -> None:
    # The directory port answers a profile with its address, so intake needs one lookup per name.
    asked: list[tuple[str, str]] = []
    address, user_profile = directory.address, directory.user_profile

    async def counted_address(name: str) -> str:
        asked.append(("address", name))
        return await address(name)

    async def counted_profile(name: str) -> Any:
        asked.append(("user_profile", name))
        return await user_profile(name)

    directory.address, directory.user_profile = counted_address, counted_profile
    alice, bob = users[0], users[1]
    resp = await ds_client.post("/rpc", json=rpc_submit(envelope(alice, bob, ds_settings)))
    assert resp.status == 200
    assert sorted(asked) == sorted([("user_profile", alice.name), ("user_profile", bob.name)])
