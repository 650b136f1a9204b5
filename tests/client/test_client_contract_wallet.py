"""A contract wallet (EIP-1271, our OwnedWallet) as a dm3 user, end to end through the SDK: it
publishes a profile (the backend, the gateway and ENS lookups accept it), opens an account at the
delivery service, logs in, lists a device (a wallet-signed message) and exchanges messages with an
ordinary account both ways."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

import aiohttp

from ensign.client import ApiError, Client, Wallet
from ensign.protocol.keys import random_signing_key_pair
from tests.client.sdk_stack import DS_NAMES, SdkStack, new_private_key


async def contract_client(sdk_stack: SdkStack, owner_key: str) -> Client:
    owner = Wallet.from_private_key(owner_key)
    deployed = await sdk_stack.stack.chain.deploy_wallet(owner.address)
    client = Client(Wallet.contract(deployed.address, owner), sdk_stack.config())
    sdk_stack.clients.append(client)
    return client


async def test_a_contract_wallet_publishes_opens_an_account_and_exchanges_messages(sdk_stack: SdkStack) -> None:
    owner_key = new_private_key()
    safe, alice = await contract_client(sdk_stack, owner_key), sdk_stack.client()
    assert safe.address != safe.wallet.key_address

    # The profile names the contract and is signed by its owner key; the backend asks the contract.
    registration = await safe.setup()
    assert (registration.address, registration.status) == (safe.address, "created")
    await alice.setup()

    # ENS answers for the contract's address name, and the lookup accepts the signature.
    resolved = await sdk_stack.stack.lookup.user_profile(safe.name)
    assert resolved.address == safe.address
    assert resolved.signed_profile.profile.public_signing_key == (await safe.keys()).signing.public_key

    # The account exists and its session works (login with the profile key ENS publishes).
    account = await safe.account()
    assert (account.address, account.delivery_service) == (safe.address, DS_NAMES[0])

    # A device list is a wallet-signed message: the contract's signature is accepted.
    device = random_signing_key_pair()
    listed = await safe.add_device("phone", device.public_key)
    assert {d.id for d in listed.devices} == {"profile", "phone"}

    # Messages both ways.
    async with safe.subscribe() as inbox:
        await inbox.wait_connected(10)
        sent = await alice.send(safe.name, "hello, contract wallet")
        pushed = await asyncio.wait_for(inbox.__anext__(), 10)
    assert (pushed.id, pushed.text, pushed.sender) == (sent.id, "hello, contract wallet", alice.name)
    reply = await safe.send(alice.name, "hello from a contract wallet")
    [received] = (await alice.fetch()).messages
    assert (received.id, received.text, received.sender) == (reply.id, "hello from a contract wallet", safe.name)


async def test_a_contract_wallet_signs_up_the_dm3_way_and_a_stranger_cannot_sign_for_it(sdk_stack: SdkStack) -> None:
    owner_key = new_private_key()
    safe = await contract_client(sdk_stack, owner_key)
    await safe.publish_profile()
    published = (await sdk_stack.stack.lookup.user_profile(safe.name)).signed_profile
    ds = sdk_stack.services[DS_NAMES[0]]
    url = ds.server.make_url(f"/profile/{quote(safe.name, safe='')}")
    async with aiohttp.ClientSession() as http:
        # dm3's sign-up: POST the profile ENS publishes; the service asks the contract.
        async with http.post(url, json=published.to_json()) as response:
            assert response.status == 200, await response.text()
            assert isinstance(await response.json(), str)  # a challenge

    # Another key signing in the contract's name is refused by the backend.
    stranger = Client(Wallet.contract(safe.address, Wallet.from_private_key(new_private_key())), sdk_stack.config())
    sdk_stack.clients.append(stranger)
    try:
        await stranger.publish_profile()
    except ApiError as exc:
        assert (exc.status, exc.code) == (400, "invalid_signature")
    else:
        raise AssertionError("a profile signed by a key the contract does not accept was registered")


async def test_a_contract_wallet_rotates_its_keys_with_a_signed_binding(sdk_stack: SdkStack) -> None:
    safe, alice = await contract_client(sdk_stack, new_private_key()), sdk_stack.client()
    await safe.setup()
    await alice.setup()
    before = await alice.send(safe.name, "to the old keys")
    old_key = (await safe.keys()).signing.public_key

    # New keys: profile through the backend, account re-bound by a binding the contract signs.
    await safe.rotate_keys()
    assert (await safe.keys()).signing.public_key != old_key
    account = await safe.account()
    assert account.address == safe.address
    after = await alice.send(safe.name, "to the new keys")
    assert [(m.id, m.text) for m in (await safe.fetch()).messages] == [
        (before.id, "to the old keys"), (after.id, "to the new keys"),
    ]
