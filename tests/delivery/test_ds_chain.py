"""Chain reads of the spam filters (``Web3Chain``) against the embedded chain."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from eth_account import Account

from delivery.ports import Web3Chain
from delivery.errors import SpamRejected
from delivery.spam import check_spam_rules
from stack.devchain import DevChain


@pytest.fixture
async def devchain() -> AsyncIterator[DevChain]:
    chain = await DevChain(accounts=3).start()
    try:
        yield chain
    finally:
        await chain.close()


async def test_web3_chain_reads_nonce_balance_and_block(devchain: DevChain) -> None:
    chain = Web3Chain(devchain.w3)
    fresh = Account.create().address
    first_block = await chain.block_number()
    sender = devchain.accounts[1]
    nonce = await chain.transaction_count(sender)
    assert await chain.transaction_count(fresh) == 0
    assert await chain.balance(fresh) == 0
    await devchain.w3.eth.send_transaction({"from": sender, "to": fresh, "value": 12345})
    assert await chain.balance(fresh) == 12345
    assert await chain.transaction_count(sender) == nonce + 1
    assert await chain.block_number() > first_block


async def test_spam_rules_on_the_chain(devchain: DevChain) -> None:
    chain = Web3Chain(devchain.w3)
    fresh = Account.create().address
    sender = devchain.accounts[1]
    await devchain.w3.eth.send_transaction({"from": sender, "to": fresh, "value": 1})
    await check_spam_rules(chain, {"minNonce": 1}, sender)
    with pytest.raises(SpamRejected, match="minNonce"):
        await check_spam_rules(chain, {"minNonce": 1}, fresh)
    with pytest.raises(SpamRejected, match="minBalance"):
        await check_spam_rules(chain, {"minBalance": "2"}, fresh)
    await check_spam_rules(chain, {"minBalance": "1"}, fresh)
    # A "token" without balanceOf (the ENS registry) counts as balance 0, as in dm3.
    token = {"address": devchain.registry.address, "amount": "1"}
    with pytest.raises(SpamRejected, match="minTokenBalance"):
        await check_spam_rules(chain, {"minTokenBalance": token}, devchain.deployer)
    await check_spam_rules(chain, {"minTokenBalance": {**token, "amount": "0"}}, devchain.deployer)
