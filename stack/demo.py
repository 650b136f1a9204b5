"""``ensign dev --demo``: two fresh users exchange a message through the running stack.

Every step goes the way a dapp's would, through :mod:`ensign.client` and the stack's public
endpoints (chain JSON-RPC, backend, ENS through the gateway, delivery service), and is printed as
it happens. The users are new wallets each time; their aliases carry a random suffix so that a
second run against the same data directory does not collide with the first.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import TextIO

from eth_account import Account

from ensign.client import Client, ClientConfig, ReceivedMessage, Wallet

DEMO_TEXT = "Hello Bob! This message was encrypted end to end and postmarked by the delivery service."


async def run_demo(config: ClientConfig, user_domain: str, out: TextIO, *, timeout: float = 30.0) -> ReceivedMessage:
    """Create Alice and Bob, send Bob a message by his alias, receive it over socket.io, verify, ack."""

    def step(text: str) -> None:
        out.write(f"  {text}\n")
        out.flush()

    out.write("Demo: two users exchange a message\n")
    suffix = secrets.token_hex(2)
    alice = Client(Wallet.from_private_key("0x" + bytes(Account.create().key).hex()), config)
    bob = Client(Wallet.from_private_key("0x" + bytes(Account.create().key).hex()), config)
    async with alice, bob:
        for label, client in (("alice", alice), ("bob", bob)):
            keys = await client.keys()
            step(f"{label}: new wallet {client.address}; dm3 keys derived from its signature "
                 f"(signing key {keys.signing.public_key[:12]}…)")
            registration = await client.setup()
            step(f"{label}: profile signed by the wallet and published as {registration.name}; "
                 f"account opened at {config.delivery_services[0]}")
            alias = f"{label}-{suffix}.{user_domain}"
            await client.claim_alias(alias)
            step(f"{label}: alias {alias} claimed with the profile's signing key")

        bob_alias = f"bob-{suffix}.{user_domain}"
        async with bob.subscribe() as inbox:
            step("bob: logged in (signed JWT challenge) and listening over socket.io")
            sent = await alice.send(bob_alias, DEMO_TEXT)
            step(f"alice: looked up {bob_alias} in ENS, encrypted to Bob's key and submitted "
                 f"to {sent.delivery_service}")
            message = await asyncio.wait_for(anext(inbox), timeout=timeout)
        step(f"bob: received over socket.io from {message.sender}: {message.text!r}")
        step("bob: message signature checked against Alice's ENS profile; postmark checked against "
             "the delivery service's key")
        await bob.ack(message)
        step("bob: acknowledged; the delivery service has dropped it")
    out.write("Demo complete.\n")
    out.flush()
    return message
