"""Revoked signing keys (issue 14, point 2), end to end: whoever kept a superseded profile and its
keys publishes it under a name of their own pointing at the wallet's address, which worked before;
once the wallet revokes the key, the delivery service refuses what it receives from then on and
receivers reject what was received after the revocation, while what came before stays readable."""

from __future__ import annotations

import base64
import secrets

import aiohttp
import pytest

from ensign.client import ApiError, DeliveryError
from ensign.protocol.profile import PROFILE_RECORD_NAME, profile_json_data_uri
from ensign.protocol.revocation import RevokedKey, sign_revocations
from tests.client.sdk_stack import SdkStack, new_private_key
from tests.client.test_cli_client import run_cli
from tests.wallets import ADDR_DOMAIN

THIEF_NAME = "alice-old.evil.eth"


def _random_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


async def test_a_revoked_key_is_refused_for_what_comes_after_its_revocation(sdk_stack: SdkStack) -> None:
    alice_key, old_nonce = new_private_key(), secrets.token_hex(32)
    alice = sdk_stack.client(alice_key, nonce=old_nonce)
    bob = sdk_stack.client()
    await alice.setup()
    await bob.setup()
    old_profile = await alice.signed_profile()
    old_key = old_profile.profile.public_signing_key

    # The thief holds the old keys (here: derived from the old nonce) and publishes the old
    # profile, validly signed by the wallet, under a name of their own pointing at alice's address.
    chain = sdk_stack.stack.chain
    await chain.set_addr(THIEF_NAME, alice.address)
    await chain.set_text(THIEF_NAME, PROFILE_RECORD_NAME, profile_json_data_uri(old_profile))
    thief = sdk_stack.client(alice_key, name=THIEF_NAME, nonce=old_nonce)

    await thief.send(bob.name, "sent before the key was revoked")
    before_revocation = sdk_stack.clock.ms
    sdk_stack.clock.advance(60)
    await thief.send(bob.name, "sent after the key leaked, before the wallet noticed")

    # Alice rotates and revokes the old key as of 30 s after the first message.
    await alice.rotate_keys()
    revocations = await alice.revoke_keys(old_key, revoked_at=before_revocation + 30_000)
    assert [entry.public_signing_key for entry in revocations.revoked] == [old_key]
    # The delivery service reads ENS afresh after its cache's lifetime; here at once.
    sdk_stack.stack.lookup.forget(THIEF_NAME)
    sdk_stack.stack.lookup.forget(f"{alice.address.lower()}.{ADDR_DOMAIN}")
    # The gateway publishes the list on the address name (and every other name of the address).
    record = await sdk_stack.stack.lookup.text(f"{alice.address.lower()}.{ADDR_DOMAIN}", "eth.ensign.revokedKeys")
    assert old_key in record
    with pytest.raises(DeliveryError) as refused:
        await thief.send(bob.name, "sent after the revocation")
    assert refused.value.code == "sender_not_verified"
    assert "revoked" in str(refused.value.attempts[-1].error)

    # Bob reads what the service took: the message received before the revocation time is
    # verified; the one received after it is rejected, although the service stored it.
    page = await bob.fetch()
    assert [message.text for message in page.messages] == ["sent before the key was revoked"]
    assert [rejected.error.code for rejected in page.rejected] == ["key_revoked"]

    # Alice's new key works as before.
    await alice.send(bob.name, "from the new key")
    assert "from the new key" in [message.text for message in (await bob.fetch()).messages]


async def test_rotate_keys_with_revoke_revokes_the_published_key_and_the_list_only_grows(
    sdk_stack: SdkStack,
) -> None:
    alice_key = new_private_key()
    alice = sdk_stack.client(alice_key, nonce=secrets.token_hex(32))
    await alice.setup()
    first_key = (await alice.keys()).signing.public_key

    # Recovery from the wallet alone: the lost key is the one the backend publishes.
    recovered = sdk_stack.client(alice_key)
    await recovered.rotate_keys(revoke=True)
    listed = await recovered.revocations()
    assert listed is not None
    assert first_key in listed.revoked_keys()
    assert (await recovered.keys()).signing.public_key not in listed.revoked_keys()

    # An older list (public once published) cannot be replayed to take a revocation back.
    older = sign_revocations(alice_key, [RevokedKey(_random_key(), 1)])
    url = f"{sdk_stack.backend_url}/revocations/{alice.address}"
    async with aiohttp.ClientSession() as http, http.post(url, json=older.to_json()) as response:
        assert (response.status, (await response.json())["error"]) == (409, "revocation_dropped")
    # Nor can anyone but the wallet post a list for the address.
    forged = sign_revocations(new_private_key(), [*listed.revoked, RevokedKey(_random_key(), 2)])
    body = {**forged.to_json(), "address": alice.address}
    async with aiohttp.ClientSession() as http, http.post(url, json=body) as response:
        assert (response.status, (await response.json())["error"]) == (400, "invalid_signature")
    with pytest.raises(ApiError):
        await sdk_stack.client().revoke_keys(first_key)  # an address without a profile: 404


async def test_ensign_recover_revoke_on_the_command_line(sdk_stack: SdkStack) -> None:
    alice_key = new_private_key()
    alice = sdk_stack.client(alice_key, nonce=secrets.token_hex(32))
    await alice.setup()
    lost_key = (await alice.keys()).signing.public_key

    status, out, err = await run_cli(sdk_stack, "recover", "--revoke", stdin=alice_key + "\n")
    assert status == 0, err
    listed = await sdk_stack.client(alice_key).revocations()
    assert listed is not None and list(listed.revoked_keys()) == [lost_key]


async def test_a_revoked_key_cannot_open_or_log_in_to_the_account_through_another_name(sdk_stack: SdkStack) -> None:
    carol_key, old_nonce = new_private_key(), secrets.token_hex(32)
    carol = sdk_stack.client(carol_key, nonce=old_nonce)
    await carol.publish_profile()  # no account at the delivery service yet
    old_profile = await carol.signed_profile()
    # New keys published (no account anywhere yet), the old signing key revoked.
    carol = sdk_stack.client(carol_key, nonce=secrets.token_hex(32))
    await carol.publish_profile()
    await carol.revoke_keys(old_profile.profile.public_signing_key, revoked_at=sdk_stack.clock.ms)

    # Whoever kept the old keys publishes the old profile under a name of their own and tries to
    # open carol's account (accounts belong to the address) before she does: refused.
    await sdk_stack.stack.chain.set_addr("carol-old.evil.eth", carol.address)
    await sdk_stack.stack.chain.set_text("carol-old.evil.eth", PROFILE_RECORD_NAME, profile_json_data_uri(old_profile))
    thief = sdk_stack.client(carol_key, name="carol-old.evil.eth", nonce=old_nonce)
    with pytest.raises(ApiError) as refused:
        await thief.create_account()
    assert (refused.value.status, refused.value.code) == (404, "no_profile")
    assert "revoked" in str(refused.value)

    # Carol opens it with her new keys and logs in; the old key cannot log in through that name.
    await carol.create_account()
    await carol.login()
    with pytest.raises(ApiError) as login:
        await thief.login()
    assert (login.value.status, login.value.code) == (401, "no_profile")
