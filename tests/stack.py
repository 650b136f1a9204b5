"""The profiles stack for end-to-end tests: backend (real Redis) → gateway → embedded chain.

``stack`` runs the production apps on 127.0.0.1 random ports: the profile backend on a real
Redis under the test's own key prefix, the gateway reading it over HTTP, and the embedded chain
with our OffchainResolver pointing at the gateway, plus a ``NameLookup`` on that chain. The
profile tests and the delivery service's end-to-end tests share it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer
from eth_account import Account

from backend.app import create_app as create_backend
from ensign.config import BackendSettings, ChainSettings, GatewaySettings, RedisSettings
from stack.devchain import DevChain
from ensign.protocol.crypto import sign
from ensign.protocol.models import SignedUserProfile
from resolver.gateway import create_app as create_gateway
from ensign.ens.lookup import NameLookup, open_lookup
from ensign.ens.wallets import WalletSignatures
from tests.wallets import ADDR_DOMAIN, USER_DOMAIN, Wallet

from ensign.protocol.records import PROFILE_RECORD_NAME as PROFILE_KEY


@dataclass
class Stack:
    backend: TestServer
    gateway: TestServer
    chain: DevChain
    lookup: NameLookup
    http: aiohttp.ClientSession
    signer: Any

    async def register(self, user: Wallet, signed: SignedUserProfile | None = None) -> aiohttp.ClientResponse:
        body = {"signedUserProfile": (signed or user.profile()).to_json(), "address": user.address, "subdomain": ADDR_DOMAIN}
        async with self.http.post(self.backend.make_url("/profile/address"), json=body) as response:
            await response.read()
            return response

    async def claim(self, user: Wallet, alias: str) -> None:
        body = {
            "signature": sign(user.keys.signing.secret_key, "alias: " + alias),
            "addressName": user.address_name,
            "dm3Name": alias,
        }
        async with self.http.post(self.backend.make_url("/profile/name"), json=body) as response:
            assert response.status == 200, await response.text()

    async def gateway_answer(self, call_data: bytes, gateway: TestServer | None = None) -> bytes:
        """The gateway's ``data`` for ``call_data`` sent by the offchain resolver."""
        resolver = self.chain.offchain_resolver.address.lower()
        url = (gateway or self.gateway).make_url(f"/{resolver}/0x{call_data.hex()}.json")
        async with self.http.get(url) as response:
            assert response.status == 200, await response.text()
            return bytes.fromhex((await response.json())["data"][2:])


@pytest.fixture
async def stack(redis: aioredis.Redis, redis_prefix: str) -> AsyncIterator[Stack]:
    backend_settings = BackendSettings(
        addr_domains=(ADDR_DOMAIN,), user_domains=(USER_DOMAIN,), redis=RedisSettings(prefix=redis_prefix)
    )
    # The backend reads contract wallets (EIP-1271) on the chain, which starts after it.
    wallets = WalletSignatures()
    backend = TestServer(create_backend(backend_settings, redis=redis, wallets=wallets), host="127.0.0.1")
    await backend.start_server()
    signer = Account.create()
    # No reuse of signed answers: the tests change records and look them up again at once.
    gateway_settings = GatewaySettings(signer_key=signer.key.hex(), backend_url=str(backend.make_url("/")), answer_reuse=0)
    gateway = TestServer(create_gateway(gateway_settings, batch_gateway=True), host="127.0.0.1")
    await gateway.start_server()
    chain = await DevChain(
        gateway_url=f"http://127.0.0.1:{gateway.port}/{{sender}}/{{data}}.json",
        signers=[signer.address],
        offchain_names=[ADDR_DOMAIN, USER_DOMAIN],
    ).start()
    wallets.w3 = chain.w3
    lookup = await open_lookup(ChainSettings(), w3=chain.w3, revocation_domains=(ADDR_DOMAIN,))
    http = aiohttp.ClientSession()
    try:
        yield Stack(backend, gateway, chain, lookup, http, signer)
    finally:
        await http.close()
        await lookup.close()
        await chain.close()
        await gateway.close()
        await backend.close()
