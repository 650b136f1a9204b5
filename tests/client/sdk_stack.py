"""The stack the SDK tests run against, reached only the way a dapp reaches it.

The profiles stack of tests/stack.py (backend on real Redis → gateway → embedded chain) plus the
chain's JSON-RPC server and two delivery services with their own keys and URLs, each published
in ENS as the ``network.dm3.deliveryService`` record of its name, as ``make dev`` does for
``ds.ensign.eth``. All on 127.0.0.1 random ports. The SDK gets URLs only: it reads ENS through
JSON-RPC, the backend and the delivery services over HTTP and socket.io.

The delivery services share one clock the tests move (``sdk_stack.clock``).
"""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer
from eth_account import Account

from delivery.app import create_app as create_delivery
from delivery.ports import Web3Chain
from delivery.push import socket_server_key
from ensign.client import Client, ClientConfig, Wallet
from ensign.config import DeliverySettings
from stack.devchain_rpc import DevChainRpcServer
from ensign.protocol.models import DeliveryServiceProfile
from ensign.protocol.profile import DELIVERY_SERVICE_RECORD_NAME, profile_json_data_uri
from tests.delivery.ds_helpers import Clock, make_settings
from tests.stack import Stack

DS_NAMES = ("ds.ensign.eth", "ds2.ensign.eth")


def free_port() -> int:
    # The delivery service signs and checks account messages against its own URL, so the port is
    # chosen before the app is built (the race with another binder is harmless in tests).
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def new_private_key() -> str:
    return "0x" + bytes(Account.create().key).hex()


@dataclass
class DeliveryService:
    name: str
    settings: DeliverySettings
    server: TestServer
    running: bool = True

    @property
    def signing_public_key(self) -> str:
        return self.settings.keys.signing_public_key

    async def stop(self) -> None:
        if self.running:
            self.running = False
            await self.server.close()

    async def drop_sockets(self, address: str) -> int:
        """Disconnect, from the server side, every socket of the account ``address``."""
        sio = self.server.app[socket_server_key]
        sids = [sid for sid, _ in sio.manager.get_participants("/", address)]
        for sid in sids:
            await sio.disconnect(sid)
        return len(sids)


@dataclass
class SdkStack:
    stack: Stack
    rpc: DevChainRpcServer
    clock: Clock
    services: dict[str, DeliveryService] = field(default_factory=dict)
    clients: list[Client] = field(default_factory=list)

    @property
    def backend_url(self) -> str:
        return str(self.stack.backend.make_url("/")).rstrip("/")

    def config(self, **overrides: Any) -> ClientConfig:
        values: dict[str, Any] = dict(
            rpc_url=self.rpc.url,
            backend_url=self.backend_url,
            delivery_services=(DS_NAMES[0],),
            timeout=5.0,
            reconnect_delay=0.1,
            reconnect_delay_max=0.5,
        )
        values.update(overrides)
        return ClientConfig(**values)

    def client(self, private_key: str | None = None, **kwargs: Any) -> Client:
        """A client for a fresh wallet (or ``private_key``); closed after the test."""
        config = kwargs.pop("config", None) or self.config()
        client = Client(Wallet.from_private_key(private_key or new_private_key()), config, **kwargs)
        self.clients.append(client)
        return client


@pytest.fixture
async def sdk_stack(stack: Stack, redis: aioredis.Redis, redis_prefix: str) -> AsyncIterator[SdkStack]:
    rpc = await DevChainRpcServer(stack.chain, port=0).start()
    result = SdkStack(stack=stack, rpc=rpc, clock=Clock(time.time()))
    try:
        for index, name in enumerate(DS_NAMES):
            port = free_port()
            # Under the test's prefix (deleted after it), apart from the backend's keys.
            settings = replace(
                make_settings(f"{redis_prefix}ds{index}:"), url=f"http://127.0.0.1:{port}", port=port, name=name
            )
            app = create_delivery(
                settings,
                redis=redis,
                directory=stack.lookup,
                chain=Web3Chain(stack.chain.w3),
                clock=result.clock,
                sweep_interval=None,
            )
            server = TestServer(app, host="127.0.0.1", port=port)
            await server.start_server()
            result.services[name] = DeliveryService(name, settings, server)
            profile = DeliveryServiceProfile(
                public_encryption_key=settings.keys.encryption_public_key,
                public_signing_key=settings.keys.signing_public_key,
                url=settings.url,
            )
            await stack.chain.set_text(name, DELIVERY_SERVICE_RECORD_NAME, profile_json_data_uri(profile))
        yield result
    finally:
        for client in result.clients:
            await client.aclose()
        for service in result.services.values():
            await service.stop()
        await rpc.close()
