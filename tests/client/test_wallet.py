"""Wallets: a local key or a personal_sign callback (sync or async) derive dm3's keys."""

from __future__ import annotations

import asyncio

import pytest

from ensign.client import Wallet, derive_keys, sign_profile
from ensign.errors import SignatureError
from ensign.protocol.keys import address_of_private_key, personal_sign, profile_keys_from_wallet
from ensign.protocol.models import UserProfile
from ensign.protocol.profile import verify_profile
from tests.client.sdk_stack import new_private_key

# The acceptance vector of specs/protocol.md §1.13.
VECTOR_KEY = "0xac58f2f021d6f148fd621b355edbd0ebadcf9682019015ef1219cf9c0c2ddc8b"


async def test_private_key_wallet_derives_the_spec_vector_keys() -> None:
    keys = await derive_keys(Wallet.from_private_key(VECTOR_KEY))
    assert keys.public_keys() == {
        "publicEncryptionKey": "Cz5WfEEhkmzP52L7OJzd4sf9xQUYc9nRAbnevjTbL28=",
        "publicSigningKey": "vwAsCu4TAL3KeeCfkKsi+ACTRjfeHtbKJh4yUs9fL5A=",
    }


async def test_eth_account_wallet_derives_the_same_keys_as_its_key() -> None:
    from eth_account import Account

    account = Account.create()
    wallet = Wallet.from_account(account)
    assert wallet.address == account.address
    expected = profile_keys_from_wallet("0x" + bytes(account.key).hex()).public_keys()
    assert (await derive_keys(wallet)).public_keys() == expected


async def test_sync_and_async_signing_callbacks_derive_the_same_keys_as_the_key() -> None:
    key = new_private_key()
    address = address_of_private_key(key)
    seen: list[str] = []

    def sync_sign(text: str) -> str:
        seen.append(text)
        return personal_sign(key, text)

    async def async_sign(text: str) -> str:
        await asyncio.sleep(0)  # a browser wallet answers later
        return personal_sign(key, text)

    expected = profile_keys_from_wallet(key).public_keys()
    for wallet in (Wallet(address.lower(), sync_sign), Wallet(address, async_sign)):
        assert wallet.address == address
        assert (await derive_keys(wallet)).public_keys() == expected
    assert seen and seen[0].startswith("dm3.chat wants you to sign in with your Ethereum account:\n" + address)


async def test_profile_signed_through_a_callback_verifies_for_the_address() -> None:
    key = new_private_key()
    wallet = Wallet(address_of_private_key(key), lambda text: personal_sign(key, text))
    keys = await derive_keys(wallet)
    profile = UserProfile(keys.encryption.public_key, keys.signing.public_key, ("ds.ensign.eth",))
    signed = await sign_profile(wallet, profile)
    assert verify_profile(signed, wallet.address)


async def test_callback_signing_with_another_account_is_refused() -> None:
    other = new_private_key()
    wallet = Wallet(address_of_private_key(new_private_key()), lambda text: personal_sign(other, text))
    with pytest.raises(SignatureError, match="does not recover to its key.s address"):
        await derive_keys(wallet)


async def test_callback_returning_no_signature_is_refused() -> None:
    wallet = Wallet(address_of_private_key(new_private_key()), lambda text: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(SignatureError, match="returned NoneType"):
        await derive_keys(wallet)


def test_wallet_repr_shows_the_address_only() -> None:
    key = new_private_key()
    wallet = Wallet.from_private_key(key)
    assert repr(wallet) == f"Wallet({wallet.address!r})"
    assert key[2:] not in repr(wallet)
