"""Two wallets exchange a message through Ensign with the Python SDK.

Start the stack in another terminal with ``make dev``, then run
``.venv/bin/python examples/sdk_quickstart.py``.
"""

from __future__ import annotations

import asyncio

from eth_account import Account

from ensign.client import Client, ClientConfig, ReceivedMessage, Wallet


async def main(config: ClientConfig = ClientConfig()) -> ReceivedMessage:
    # Fresh wallets for the demo; a dapp passes the user's: Wallet(address, personal_sign_callback),
    # or for a contract wallet (EIP-1271) Wallet.contract(address, owner_wallet).
    alice = Client(Wallet.from_private_key(Account.create().key.hex()), config)
    bob = Client(Wallet.from_private_key(Account.create().key.hex()), config)
    async with alice, bob:
        # Derive the dm3 keys, publish the profile (ENS name 0x<address>.addr.ensign.eth)
        # and open an account at the delivery service ds.ensign.eth.
        await alice.setup()
        await bob.setup()

        async with bob.subscribe() as inbox:  # messages pushed over socket.io
            await alice.send(bob.name, "Hello Bob!")
            message = await asyncio.wait_for(anext(inbox), timeout=30)
        # Signature and postmark are verified before a message is handed out.
        print(f"{message.sender} wrote to {message.receiver}: {message.text}")

        page = await bob.fetch()  # polling sees it too, until it is acknowledged
        print(f"{len(page.messages)} message(s) waiting at {message.delivery_service}")
        await bob.ack(message)
        return message


if __name__ == "__main__":
    asyncio.run(main())
