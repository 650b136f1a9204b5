"""The receiver's spam filters (as dm3 defines them), read from the chain.

Rules are the account's ``spamFilterRules`` (validated in :mod:`delivery.accounts`); a rule applies
when present and all rules must pass. Unlike dm3, the sender is the *verified* sender: intake runs
the filters only after the envelope's signature was checked against the sender's profile, and
reads the chain for the address the sender's name resolves to.

* ``minNonce``        — the sender's transaction count ≥ the value
* ``minBalance``      — the sender's balance in wei ≥ the value
* ``minTokenBalance`` — ``balanceOf(sender)`` of the ERC-20 at ``address`` ≥ ``amount``; a failing
  call counts as balance 0 (as dm3)
"""

from __future__ import annotations

import logging
from typing import Any


from .errors import SpamRejected
from .ports import Chain

log = logging.getLogger(__name__)


async def check_spam_rules(chain: Chain, rules: dict[str, Any], sender_address: str) -> None:
    """Raise :class:`SpamRejected` naming the first rule ``sender_address`` fails."""
    if not rules:
        return
    if "minNonce" in rules:
        nonce = await chain.transaction_count(sender_address)
        if nonce < int(rules["minNonce"]):
            raise SpamRejected(
                "the sender does not meet the receiver's spam rule minNonce", details={"rule": "minNonce"}
            )
    if "minBalance" in rules:
        balance = await chain.balance(sender_address)
        if balance < int(rules["minBalance"]):
            raise SpamRejected(
                "the sender does not meet the receiver's spam rule minBalance", details={"rule": "minBalance"}
            )
    if "minTokenBalance" in rules:
        token = rules["minTokenBalance"]
        try:
            held = await chain.token_balance(token["address"], sender_address)
        except Exception as exc:  # noqa: BLE001 - any failing call means "no balance", as dm3
            log.info("token balance call failed, counted as 0: %s", type(exc).__name__)
            held = 0
        if held < int(token["amount"]):
            raise SpamRejected(
                "the sender does not meet the receiver's spam rule minTokenBalance",
                details={"rule": "minTokenBalance"},
            )
