"""Devices end to end (issue 14, point 4): a wallet-signed device list, each device logging in with
its own key and acknowledging on its own cursor; pushes reach every device; a removed device's
session is refused at once and its socket ends."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from delivery.push import socket_server_key
from ensign.client import ApiError, DeviceKey
from tests.client.sdk_stack import DS_NAMES, SdkStack, new_private_key


async def test_two_devices_ack_independently_and_a_removed_device_is_refused_at_once(sdk_stack: SdkStack) -> None:
    bob_key = new_private_key()
    alice, bob = sdk_stack.client(), sdk_stack.client(bob_key)
    await alice.setup()
    await bob.setup()
    laptop_key, phone_key = DeviceKey.generate("laptop"), DeviceKey.generate("phone")
    listed = await bob.set_devices(
        {"laptop": laptop_key.public_signing_key, "phone": phone_key.public_signing_key}
    )
    assert [d.id for d in listed.devices] == ["laptop", "phone"]
    laptop = sdk_stack.client(bob_key, device=laptop_key)
    phone = sdk_stack.client(bob_key, device=phone_key)

    first = await alice.send(bob.name, "one")
    second = await alice.send(bob.name, "two")

    # The laptop acknowledges the first message: gone for it, still there for the phone.
    page = await laptop.fetch()
    assert [m.text for m in page.messages] == ["one", "two"]
    assert await laptop.ack(page.messages[0]) == 1
    assert [m.id for m in (await laptop.fetch()).messages] == [second.id]
    assert [m.id for m in (await phone.fetch()).messages] == [first.id, second.id]

    # The phone acknowledges both; the laptop still has the second, which then leaves for good.
    assert await phone.ack(*(await phone.fetch()).messages) == 2
    assert [m.id for m in (await laptop.fetch()).messages] == [second.id]
    assert (await phone.fetch()).messages == ()
    assert await laptop.ack(second.id) == 1
    assert (await laptop.fetch()).messages == ()

    # The wallet removes the phone: the session it holds is refused at once, and it cannot log in.
    phone_token = await phone.login()
    await alice.send(bob.name, "three")
    left = await bob.set_devices({"laptop": laptop_key.public_signing_key})
    # The phone was the only device missing nothing; the laptop still misses "three".
    assert left.released_messages == 0
    url = sdk_stack.services[DS_NAMES[0]].server.make_url(f"/delivery/messages/incoming/{bob.name}")
    async with aiohttp.ClientSession() as http, http.get(url, headers={"Authorization": f"Bearer {phone_token}"}) as resp:
        assert resp.status == 401
        assert (await resp.json())["error"] == "session_stale"
    with pytest.raises(ApiError) as refused:
        await phone.fetch()
    assert refused.value.code == "device_not_listed"
    assert [m.text for m in (await laptop.fetch()).messages] == ["three"]


async def test_removing_a_device_releases_what_only_it_was_missing(sdk_stack: SdkStack) -> None:
    bob_key = new_private_key()
    alice, bob = sdk_stack.client(), sdk_stack.client(bob_key)
    await alice.setup()
    await bob.setup()
    laptop_key, phone_key = DeviceKey.generate("laptop"), DeviceKey.generate("phone")
    # add_device starts the list with the profile key, so the wallet's own client keeps logging in.
    await bob.add_device("laptop", laptop_key.public_signing_key)
    listed = await bob.add_device("phone", phone_key.public_signing_key)
    assert [d.id for d in listed.devices] == ["profile", "laptop", "phone"]
    assert (await bob.devices()).device == "profile"
    laptop = sdk_stack.client(bob_key, device=laptop_key)

    await alice.send(bob.name, "hello")
    await bob.ack(*(await bob.fetch()).messages)
    await laptop.ack(*(await laptop.fetch()).messages)
    # Only the phone misses it now; removing the phone lets it leave.
    removed = await bob.remove_device("phone")
    assert [d.id for d in removed.devices] == ["profile", "laptop"]
    assert removed.released_messages == 1
    assert (await laptop.fetch()).messages == () and (await bob.fetch()).messages == ()


async def test_pushes_reach_every_device_and_a_removed_devices_socket_ends(sdk_stack: SdkStack) -> None:
    bob_key = new_private_key()
    alice, bob = sdk_stack.client(), sdk_stack.client(bob_key)
    await alice.setup()
    await bob.setup()
    laptop_key, phone_key = DeviceKey.generate("laptop"), DeviceKey.generate("phone")
    await bob.set_devices({"laptop": laptop_key.public_signing_key, "phone": phone_key.public_signing_key})
    laptop = sdk_stack.client(bob_key, device=laptop_key)
    phone = sdk_stack.client(bob_key, device=phone_key)
    sio = sdk_stack.services[DS_NAMES[0]].server.app[socket_server_key]

    async with laptop.subscribe(catch_up=False) as on_laptop, phone.subscribe(catch_up=False) as on_phone:
        await on_laptop.wait_connected(10)
        await on_phone.wait_connected(10)
        await alice.send(bob.name, "to every device")
        for inbox in (on_laptop, on_phone):
            assert (await asyncio.wait_for(inbox.__anext__(), 10)).text == "to every device"

        await bob.set_devices({"laptop": laptop_key.public_signing_key})
        for _ in range(100):
            if len(list(sio.manager.get_participants("/", bob.address))) == 1:
                break
            await asyncio.sleep(0.05)
        # The phone's socket was ended by the service; the laptop's stays.
        assert len(list(sio.manager.get_participants("/", bob.address))) == 1
        assert on_laptop.connected


async def test_key_rotation_moves_the_profile_device_to_the_new_key(sdk_stack: SdkStack) -> None:
    bob_key = new_private_key()
    alice, bob = sdk_stack.client(), sdk_stack.client(bob_key)
    await alice.setup()
    await bob.setup()
    laptop_key = DeviceKey.generate("laptop")
    await bob.add_device("laptop", laptop_key.public_signing_key)
    laptop = sdk_stack.client(bob_key, device=laptop_key)
    await alice.send(bob.name, "before")

    await bob.rotate_keys(nonce="cd" * 32)
    listed = await bob.devices()
    assert listed.device == "profile"
    assert dict((d.id, d.public_signing_key) for d in listed.devices) == {
        "profile": (await bob.keys()).signing.public_key, "laptop": laptop_key.public_signing_key,
    }
    # The laptop logs in again (its session ended with the re-binding) on its own key.
    assert [m.text for m in (await laptop.fetch()).messages] == ["before"]
