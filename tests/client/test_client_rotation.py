"""Key rotation end to end (issue 14, point 1): one wallet-signed profile update moves the backend,
the gateway's answers and the delivery service's binding to the new keys; the old key's session
ends at once; messages queued before the rotation stay readable."""

from __future__ import annotations

import asyncio

import aiohttp

from delivery.push import socket_server_key
from ensign.protocol.keys import DEFAULT_NONCE
from tests.client.sdk_stack import DS_NAMES, SdkStack, new_private_key


async def test_rotation_moves_every_part_to_the_new_keys_and_old_messages_stay_readable(sdk_stack: SdkStack) -> None:
    bob_key = new_private_key()
    alice, bob = sdk_stack.client(), sdk_stack.client(bob_key)
    await alice.setup()
    await bob.setup()
    await alice.send(bob.name, "before the rotation")
    old_keys = await bob.keys()
    old_token = await bob.login()

    await bob.rotate_keys(nonce="ab" * 32)
    new_keys = await bob.keys()
    assert new_keys.signing.public_key != old_keys.signing.public_key
    assert (bob.nonce, bob.previous_nonces) == ("ab" * 32, [DEFAULT_NONCE])

    # ENS (backend → gateway → chain) answers with the new profile.
    fresh = sdk_stack.client()
    published = await (await fresh._directory()).user_profile(bob.name)
    assert published.signed_profile.profile.public_signing_key == new_keys.signing.public_key

    # The delivery service: the old key's session ends at once.
    url = sdk_stack.services[DS_NAMES[0]].server.make_url(f"/delivery/messages/incoming/{bob.name}")
    async with aiohttp.ClientSession() as http, http.get(url, headers={"Authorization": f"Bearer {old_token}"}) as resp:
        assert resp.status == 401
        assert (await resp.json())["error"] == "session_stale"

    # A sender that reads ENS now encrypts to the new keys; both messages open.
    await fresh.setup()
    await fresh.send(bob.name, "after the rotation")
    page = await bob.fetch()
    assert sorted(m.text for m in page.messages) == ["after the rotation", "before the rotation"]
    assert page.rejected == ()

    # Another process of bob's, given the nonces (never the secret keys), reads both as well.
    again = sdk_stack.client(bob_key, nonce=bob.nonce, previous_nonces=bob.previous_nonces)
    assert sorted(m.text for m in (await again.fetch()).messages) == ["after the rotation", "before the rotation"]
    # Without the old nonce, the message queued before the rotation does not open.
    forgetful = sdk_stack.client(bob_key, nonce=bob.nonce)
    page = await forgetful.fetch()
    assert [m.text for m in page.messages] == ["after the rotation"] and len(page.rejected) == 1


async def test_subscription_of_the_old_key_is_ended_and_comes_back_with_the_new_key(sdk_stack: SdkStack) -> None:
    alice, bob = sdk_stack.client(), sdk_stack.client()
    await alice.setup()
    await bob.setup()
    ds = sdk_stack.services[DS_NAMES[0]]
    async with bob.subscribe() as inbox:
        await inbox.wait_connected(10)
        assert inbox.connections == 1
        await bob.rotate_keys()
        # The service ended the old key's socket; the subscription logged in again with the new key.
        for _ in range(100):
            if inbox.connections == 2 and inbox.connected:
                break
            await asyncio.sleep(0.1)
        assert inbox.connections == 2
        sio = ds.server.app[socket_server_key]
        assert len(list(sio.manager.get_participants("/", bob.address))) == 1
        await alice.send(bob.name, "pushed after the rotation")
        message = await asyncio.wait_for(inbox.__anext__(), 10)
        assert message.text == "pushed after the rotation"
