"""Contract wallets: our OwnedWallet contract (EIP-1271) and ensign.ens.wallets, which every service
uses to check a wallet's EIP-191 signature, on the embedded chain."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from eth_account import Account
from eth_account.messages import encode_defunct
from web3.exceptions import ContractLogicError

from ensign.ens.wallets import EIP1271_MAGIC_VALUE, VALID_SECONDS, WalletSignatures
from ensign.errors import ServiceUnavailable
from ensign.protocol.encoding import eip191_digest
from ensign.protocol.keys import personal_sign
from ensign.protocol.models import SignedUserProfile, UserProfile
from ensign.protocol.profile import profile_creation_message
from stack.devchain import DevChain

pytestmark = pytest.mark.asyncio(loop_scope="module")

OWNER = Account.from_key("0x" + "0a" * 32)
STRANGER = Account.from_key("0x" + "0b" * 32)
INVALID = bytes.fromhex("ffffffff")
TEXT = "a text the wallet signs"
SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def chain() -> AsyncIterator[DevChain]:
    async with DevChain(gateway_url=None) as dev_chain:
        yield dev_chain


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def wallet(chain: DevChain) -> Any:
    return await chain.deploy_wallet(OWNER.address)


def signature_bytes(key: Any, text: str) -> bytes:
    return bytes(key.sign_message(encode_defunct(text=text)).signature)


# -- the contract -----------------------------------------------------------------------------------


async def test_wallet_accepts_its_owners_signature_of_the_eip191_digest(wallet: Any) -> None:
    digest = eip191_digest(TEXT)
    answer = await wallet.functions.isValidSignature(digest, signature_bytes(OWNER, TEXT)).call()
    assert answer == EIP1271_MAGIC_VALUE
    # v as 0/1 (what some signers return) is the same signature.
    raw = signature_bytes(OWNER, TEXT)
    assert await wallet.functions.isValidSignature(digest, raw[:64] + bytes([raw[64] - 27])).call() == EIP1271_MAGIC_VALUE


async def test_wallet_refuses_other_keys_other_digests_and_malformed_signatures(wallet: Any) -> None:
    digest = eip191_digest(TEXT)
    raw = signature_bytes(OWNER, TEXT)
    check = wallet.functions.isValidSignature
    assert await check(digest, signature_bytes(STRANGER, TEXT)).call() == INVALID
    assert await check(eip191_digest(TEXT + "!"), raw).call() == INVALID
    assert await check(digest, raw[:64]).call() == INVALID
    assert await check(digest, raw + b"\x00").call() == INVALID
    assert await check(digest, raw[:64] + b"\x1d").call() == INVALID
    assert await check(digest, b"\x00" * 65).call() == INVALID
    # The malleable twin (s' = n - s, v flipped) recovers to the same key: refused (EIP-2).
    s = int.from_bytes(raw[32:64], "big")
    twin = raw[:32] + (SECP256K1_ORDER - s).to_bytes(32, "big") + bytes([55 - raw[64]])
    assert await check(digest, twin).call() == INVALID


async def test_only_the_owner_executes_calls_and_hands_the_wallet_over(chain: DevChain, wallet: Any) -> None:
    snapshot = chain.snapshot()
    try:
        owner_account, other = chain.accounts[1], chain.accounts[2]
        own = await chain.deploy_wallet(owner_account)
        # A call through the wallet: send 1 wei to `other` from the wallet's balance.
        await chain.w3.eth.send_transaction({"from": owner_account, "to": own.address, "value": 10})
        before = await chain.w3.eth.get_balance(other)
        await own.functions.execute(other, 1, b"").transact({"from": owner_account})
        assert await chain.w3.eth.get_balance(other) == before + 1
        with pytest.raises(ContractLogicError, match="only the owner"):
            await own.functions.execute(other, 1, b"").call({"from": other})
        with pytest.raises(ContractLogicError, match="only the owner"):
            await own.functions.setOwner(other).call({"from": other})
        await own.functions.setOwner(other).transact({"from": owner_account})
        assert await own.functions.owner().call() == other
    finally:
        chain.revert(snapshot)


# -- WalletSignatures -------------------------------------------------------------------------------


async def test_an_accounts_own_key_is_checked_without_a_chain() -> None:
    wallets = WalletSignatures()
    signature = personal_sign("0x" + "0a" * 32, TEXT)
    assert await wallets.verify(OWNER.address, TEXT, signature)
    assert await wallets.verify(OWNER.address.lower(), TEXT, signature)
    assert not await wallets.verify(STRANGER.address, TEXT, signature)
    assert not await wallets.verify(OWNER.address, TEXT, "0x1234")


async def test_a_contract_wallet_is_asked_through_the_chain(chain: DevChain, wallet: Any) -> None:
    signature = personal_sign("0x" + "0a" * 32, TEXT)
    assert not await WalletSignatures().verify(wallet.address, TEXT, signature)  # no chain: ECDSA only
    wallets = WalletSignatures(chain.w3)
    assert await wallets.verify(wallet.address, TEXT, signature)
    assert not await wallets.verify(wallet.address, TEXT + "!", signature)
    assert not await wallets.verify(wallet.address, TEXT, personal_sign("0x" + "0b" * 32, TEXT))
    # An account without code and a contract without the method both say "not signed".
    assert not await wallets.verify(STRANGER.address, TEXT, signature)
    assert not await wallets.verify(chain.registry.address, TEXT, signature)


async def test_a_profile_signed_by_the_owner_key_is_the_contract_wallets(chain: DevChain, wallet: Any) -> None:
    profile = UserProfile(public_encryption_key="A" * 43 + "=", public_signing_key="B" * 43 + "=", delivery_services=("ds.ensign.eth",))
    signed = SignedUserProfile(profile, personal_sign("0x" + "0a" * 32, profile_creation_message(wallet.address, profile)))
    wallets = WalletSignatures(chain.w3)
    assert await wallets.verify_profile(signed, wallet.address)
    assert not await wallets.verify_profile(signed, OWNER.address)  # it names the contract, not the key


class CountingEth:
    def __init__(self, eth: Any, delay: float = 0.0) -> None:
        self._eth, self.calls, self.delay = eth, 0, delay

    async def call(self, transaction: dict[str, Any]) -> Any:
        self.calls += 1
        await asyncio.sleep(self.delay)
        return await self._eth.call(transaction)


class FakeWeb3:
    def __init__(self, eth: CountingEth) -> None:
        self.eth = eth


async def test_an_accepted_signature_is_remembered_for_a_while_and_refusals_are_not(chain: DevChain, wallet: Any) -> None:
    now = [1000.0]
    eth = CountingEth(chain.w3.eth)
    wallets = WalletSignatures(FakeWeb3(eth), clock=lambda: now[0])
    good, bad = personal_sign("0x" + "0a" * 32, TEXT), personal_sign("0x" + "0b" * 32, TEXT)
    assert await wallets.verify(wallet.address, TEXT, good)
    assert await wallets.verify(wallet.address, TEXT, good)
    assert eth.calls == 1
    assert not await wallets.verify(wallet.address, TEXT, bad)
    assert not await wallets.verify(wallet.address, TEXT, bad)
    assert eth.calls == 3
    now[0] += VALID_SECONDS + 1
    assert await wallets.verify(wallet.address, TEXT, good)
    assert eth.calls == 4


async def test_a_chain_that_does_not_answer_in_time_is_unavailable_not_a_refusal(chain: DevChain, wallet: Any) -> None:
    wallets = WalletSignatures(FakeWeb3(CountingEth(chain.w3.eth, delay=1.0)), timeout=0.05)
    with pytest.raises(ServiceUnavailable, match="did not answer"):
        await wallets.verify(wallet.address, TEXT, personal_sign("0x" + "0a" * 32, TEXT))
    # The owner key's own address needs no chain at all.
    assert await wallets.verify(OWNER.address, TEXT, personal_sign("0x" + "0a" * 32, TEXT))
