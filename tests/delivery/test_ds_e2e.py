"""The whole flow for two users through the real stack: backend (real Redis) → gateway → embedded
chain → ``NameLookup`` → the delivery service, with spam rules read from the chain.

The stack fixture is the profiles end-to-end test's (tests/test_profiles_e2e.py), used as is.
"""

from __future__ import annotations

import asyncio
import time

from tests.delivery.ds_helpers import Clock, User, bearer, keys_under, make_settings, rpc_submit
from tests.delivery.ds_helpers import envelope as build
from tests.stack import Stack
from tests.delivery.test_ds_push import Socket

from delivery.app import create_app
from delivery.keys import account_key, queue_keys, tombstone_key
from delivery.ports import Web3Chain
from delivery.appkeys import queue_key
from delivery.sweeper import run_sweep
from ensign.protocol.crypto import sign
from ensign.protocol.envelope import open_envelope
from ensign.protocol.models import EncryptionEnvelop
from ensign.protocol.postmark import open_postmark, verify_postmark


async def test_two_users_account_login_send_push_fetch_ack_expire_delete(
    stack: Stack, aiohttp_client, redis, redis_prefix
) -> None:
    alice, bob = User.create(), User.create()
    for user in (alice, bob):
        assert (await stack.register(user, user.profile)).status == 200
    await stack.claim(bob, "bob.user.ensign.eth")

    clock = Clock(time.time())
    # The backend shares the prefix: the DS's own keys go under a sub-prefix so they can be listed.
    prefix = redis_prefix + "ds:"
    settings = make_settings(prefix)
    chain = Web3Chain(stack.chain.w3)
    client = await aiohttp_client(
        create_app(settings, redis=redis, directory=stack.lookup, chain=chain, clock=clock, sweep_interval=None)
    )
    assert await (await client.get("/health")).json() == {"status": "ok", "redis": "ok", "chain": "ok"}

    # Accounts: Alice with a signed creation message, Bob the dm3 way (his public profile).
    resp = await client.post(f"/account/{alice.name}", json=alice.signed("createAccount", clock.ms))
    assert resp.status == 201, await resp.text()
    resp = await client.post(f"/profile/{bob.name}", json=bob.profile.to_json())
    assert resp.status == 200, await resp.text()

    # Bob logs in through his alias and listens on a socket.
    challenge = await (await client.get("/auth/bob.user.ensign.eth")).json()
    resp = await client.post("/auth/bob.user.ensign.eth",
                             json={"challenge": challenge, "signature": sign(bob.keys.signing.secret_key, challenge)})
    assert resp.status == 200, await resp.text()
    token = await resp.json()
    socket = Socket()
    await socket.connect(str(client.make_url("/")), bob.name, token)
    try:
        assert (await socket.next_event())[0] == "authorized"

        # Bob only takes mail from funded senders; Alice has no ether yet.
        rules = {"spamFilterRules": {"minBalance": "1000"}}
        assert (await client.put(f"/account/{bob.name}/settings", json=rules, headers=bearer(token))).status == 200
        env = build(alice, bob, settings, "hello through ENS", receiver_name="bob.user.ensign.eth")
        resp = await client.post("/rpc", json=rpc_submit(env))
        assert resp.status == 400
        assert (await resp.json())["error"]["code"] == -32010
        w3 = stack.chain.w3
        await w3.eth.send_transaction({"from": stack.chain.accounts[0], "to": alice.address, "value": 10**15})
        resp = await client.post("/rpc", json=rpc_submit(env))
        assert resp.status == 200, await resp.text()

        name, pushed = await socket.next_event()
        assert name == "message"
        assert open_envelope(EncryptionEnvelop.from_json(pushed), bob.keys.encryption,
                             alice.keys.signing.public_key).message == "hello through ENS"

        resp = await client.get(f"/delivery/messages/incoming/{bob.name}", headers=bearer(token))
        [fetched] = await resp.json()
        assert fetched == pushed
        postmark = open_postmark(fetched["postmark"], bob.keys.encryption)
        assert verify_postmark(postmark, env["message"], settings.keys.signing_public_key)
        ack = {"acknowledgements": [{"contactAddress": alice.name, "messageHash": env["metadata"]["encryptedMessageHash"]}]}
        resp = await client.post(f"/delivery/messages/{bob.name}/syncAcknowledgements/", json=ack, headers=bearer(token))
        assert await resp.json() == {"acknowledged": 1}
        assert await (await client.get(f"/delivery/messages/incoming/{bob.name}", headers=bearer(token))).json() == []

        # TTL: a message Bob does not fetch in time is gone.
        assert (await client.put(f"/account/{bob.name}/settings", json={"messageTTL": 60}, headers=bearer(token))).status == 200
        resp = await client.post("/rpc", json=rpc_submit(build(alice, bob, settings, "too late")))
        assert resp.status == 200
        assert (await socket.next_event())[0] == "message"
        clock.advance(60)
        assert await (await client.get(f"/delivery/messages/incoming/{bob.name}", headers=bearer(token))).json() == []
        assert await run_sweep(client.app[queue_key], clock=clock) == 1
        keys = queue_keys(prefix, bob.address)
        assert await redis.exists(keys.queue, keys.expiry, keys.messages) == 0
    finally:
        await socket.close()

    # Deletion: Bob's account and settings go; Alice's stay.
    clock.advance(1)
    resp = await client.delete("/account/bob.user.ensign.eth",
                               json=bob.signed("deleteAccount", clock.ms, name="bob.user.ensign.eth"))
    assert resp.status == 200, await resp.text()
    left = await keys_under(redis, prefix)
    assert account_key(prefix, bob.address) not in left
    assert tombstone_key(prefix, bob.address) in left
    assert account_key(prefix, alice.address) in left
    resp = await client.post("/rpc", json=rpc_submit(build(alice, bob, settings, "after deletion")))
    assert (await resp.json())["error"]["code"] == -32014
    await asyncio.sleep(0)
