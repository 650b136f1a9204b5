"""Recovery with the wallet alone (issue 14, point 3): a user who lost every profile key — here the
nonce they were derived from, which nothing else can give back — gets a working account again, and
whoever kept the lost keys is locked out. Through the SDK and through ``ensign recover``."""

from __future__ import annotations

import json
import secrets

import aiohttp
import pytest

from ensign.client import ApiError
from tests.client.sdk_stack import DS_NAMES, SdkStack, new_private_key
from tests.client.test_cli_client import run_cli


async def _inbox_status(sdk_stack: SdkStack, name: str, token: str) -> tuple[int, str]:
    url = sdk_stack.services[DS_NAMES[0]].server.make_url(f"/delivery/messages/incoming/{name}")
    async with aiohttp.ClientSession() as http, http.get(url, headers={"Authorization": f"Bearer {token}"}) as resp:
        return resp.status, (await resp.json()).get("error", "")


async def test_the_wallet_alone_recovers_an_account_whose_keys_were_lost(sdk_stack: SdkStack) -> None:
    bob_key = new_private_key()
    lost_nonce = secrets.token_hex(32)
    alice, bob = sdk_stack.client(), sdk_stack.client(bob_key, nonce=lost_nonce)
    await alice.setup()
    await bob.setup()
    await alice.send(bob.name, "to the keys that will be lost")
    lost_token = await bob.login()  # what a thief of the old device keeps

    # Every key is gone: a new client knows the wallet and nothing else.
    recovered = sdk_stack.client(bob_key)
    await recovered.rotate_keys()
    assert recovered.nonce != lost_nonce

    # The lost key's session is refused at once, and the lost key cannot log in again (its
    # signature no longer matches the name's profile).
    assert await _inbox_status(sdk_stack, bob.name, lost_token) == (401, "session_stale")
    bob._sessions.forget(DS_NAMES[0])
    with pytest.raises(ApiError) as refused:
        await bob.login()
    assert (refused.value.status, refused.value.code) == (401, "invalid_signature")

    # Senders reading ENS now encrypt to the new keys; the new keys read what comes next.
    sender = sdk_stack.client()
    await sender.setup()
    await sender.send(bob.name, "after the recovery")
    page = await recovered.fetch()
    assert [m.text for m in page.messages] == ["after the recovery"]
    # The message to the lost keys is handed out as rejected, and acknowledging drops it.
    assert len(page.rejected) == 1
    await recovered.ack(*page.messages, *page.rejected)
    empty = await recovered.fetch()
    assert empty.messages == () and empty.rejected == ()


async def test_ensign_recover_on_the_command_line(sdk_stack: SdkStack) -> None:
    bob_key = new_private_key()
    bob = sdk_stack.client(bob_key, nonce=secrets.token_hex(32))
    await bob.setup()

    status, out, err = await run_cli(sdk_stack, "recover", stdin=bob_key + "\n")
    assert status == 0, err
    printed = json.loads(out)
    assert printed["name"] == bob.name and printed["deliveryServices"] == [DS_NAMES[0]]
    new_nonce = printed["nonce"]

    # With the printed nonce, the usual commands work with the new keys.
    alice = sdk_stack.client()
    await alice.setup()
    await alice.send(bob.name, "hello again")
    status, out, err = await run_cli(sdk_stack, "inbox", "--ack", "--nonce", new_nonce, stdin=bob_key + "\n")
    assert status == 0, err
    assert [json.loads(line)["text"] for line in out.splitlines()] == ["hello again"]
