"""socket.io push: dm3's handshake and events, every socket of the receiver, across processes."""

from __future__ import annotations

import asyncio
from typing import Any

import socketio
from tests.delivery.ds_helpers import (  # noqa: F401  (fixtures)
    bearer,
    chain,
    clock,
    directory,
    ds_client,
    ds_settings,
    envelope,
    login,
    rpc_submit,
    signup,
    users,
)

from delivery.app import create_app
from ensign.protocol.envelope import open_envelope
from ensign.protocol.models import EncryptionEnvelop


class Socket:
    """A socket.io client as dm3's widget uses it, recording the events it receives."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        for name in ("authorized", "unauthorized", "message"):
            self.client.on(name, self._recorder(name))

    def _recorder(self, name: str) -> Any:
        async def record(data: Any = None) -> None:
            await self.events.put((name, data))

        return record

    async def connect(self, url: str, name: str, token: str) -> None:
        await self.client.connect(url, auth={"account": {"ensName": name}, "token": token}, transports=["websocket"],
                                  wait_timeout=5)

    async def next_event(self, timeout: float = 5.0) -> tuple[str, Any]:
        return await asyncio.wait_for(self.events.get(), timeout)

    async def close(self) -> None:
        await self.client.disconnect()


async def test_push_reaches_every_socket_on_every_process(
    aiohttp_client, redis, ds_settings, directory, chain, clock, users
) -> None:
    alice, bob = users[0], users[1]
    first = await aiohttp_client(create_app(ds_settings, redis=redis, directory=directory, chain=chain, clock=clock, sweep_interval=None))
    second = await aiohttp_client(create_app(ds_settings, redis=redis, directory=directory, chain=chain, clock=clock, sweep_interval=None))
    await signup(first, alice)
    await signup(first, bob)
    token = await login(second, bob)
    sockets = [Socket(), Socket(), Socket()]
    try:
        # Two devices on the second process (one through an alias), one on the first.
        await sockets[0].connect(str(second.make_url("/")), bob.name, token)
        await sockets[1].connect(str(second.make_url("/")), "bob.user.ensign.eth", token)
        await sockets[2].connect(str(first.make_url("/")), bob.name, token)
        for s in sockets:
            assert (await s.next_event())[0] == "authorized"
        env = envelope(alice, bob, ds_settings, "pushed")
        resp = await first.post("/rpc", json=rpc_submit(env))
        assert resp.status == 200
        for s in sockets:
            name, data = await s.next_event()
            assert name == "message"
            assert data["postmark"]
            message = open_envelope(EncryptionEnvelop.from_json(data), bob.keys.encryption, alice.keys.signing.public_key)
            assert message.message == "pushed"
        # A duplicate submission is stored once and pushed once.
        assert (await first.post("/rpc", json=rpc_submit(env))).status == 200
        await asyncio.sleep(0.5)
        assert all(s.events.empty() for s in sockets)
        metrics = await (await second.get("/metrics")).text()
        assert "ensign_ds_pushes_total 2.0" in metrics
        assert "ensign_ds_sockets 2.0" in metrics
    finally:
        for s in sockets:
            await s.close()


async def test_socket_with_a_bad_token_is_told_unauthorized(ds_client, users, clock) -> None:
    alice, bob = users[0], users[1]
    await signup(ds_client, alice)
    await signup(ds_client, bob)
    alice_token = await login(ds_client, alice)
    for name, token in ((bob.name, alice_token), (alice.name, "not-a-token")):
        s = Socket()
        try:
            await s.connect(str(ds_client.make_url("/")), name, token)
            assert (await s.next_event())[0] == "unauthorized"
        finally:
            await s.close()


async def test_submit_message_over_the_socket(ds_client, users, ds_settings) -> None:
    alice, bob = users[0], users[1]
    await signup(ds_client, alice)
    await signup(ds_client, bob)
    alice_token = await login(ds_client, alice)
    bob_token = await login(ds_client, bob)
    sender, receiver = Socket(), Socket()
    try:
        await sender.connect(str(ds_client.make_url("/")), alice.name, alice_token)
        await receiver.connect(str(ds_client.make_url("/")), bob.name, bob_token)
        assert (await sender.next_event())[0] == "authorized"
        assert (await receiver.next_event())[0] == "authorized"
        env = envelope(alice, bob, ds_settings, "via socket")
        ack = await sender.client.call("submitMessage", {"envelop": env, "token": alice_token}, timeout=5)
        assert ack == {"response": "success"}
        name, data = await receiver.next_event()
        assert name == "message"
        forged = envelope(alice, bob, ds_settings, signing_key=users[2].keys.signing.secret_key)
        ack = await sender.client.call("submitMessage", {"envelop": forged, "token": alice_token}, timeout=5)
        assert "error" in ack
    finally:
        await sender.close()
        await receiver.close()
