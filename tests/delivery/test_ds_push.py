"""socket.io push: dm3's handshake and events, every socket of the receiver, across processes."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import redis.asyncio as aioredis
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
from delivery.appkeys import queue_key
from delivery.push import PushListener, push_listener_key
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


async def test_a_process_hears_only_the_accounts_with_sockets_on_it(
    aiohttp_client, redis, ds_settings, directory, chain, clock, users
) -> None:
    alice, bob = users[0], users[1]
    app = create_app(ds_settings, redis=redis, directory=directory, chain=chain, clock=clock, sweep_interval=None)
    client = await aiohttp_client(app)
    listener, queue = app[push_listener_key], app[queue_key]
    await asyncio.wait_for(listener.subscribed.wait(), 5)
    await signup(client, alice)
    await signup(client, bob)
    token = await login(client, bob)
    channel = queue.channel(bob.address)

    async def subscribers() -> int:
        return dict(await redis.pubsub_numsub(channel))[channel.encode()]

    # No socket of bob's anywhere: his messages wake no process.
    assert await subscribers() == 0
    assert (await client.post("/rpc", json=rpc_submit(envelope(alice, bob, ds_settings, "queued")))).status == 200
    sockets = [Socket(), Socket()]
    try:
        for s in sockets:  # two devices, one subscription
            await s.connect(str(client.make_url("/")), bob.name, token)
            assert (await s.next_event())[0] == "authorized"
        assert listener.watched == {bob.address} and await subscribers() == 1
        # Heard from the moment the first socket was told it is authorized.
        assert (await client.post("/rpc", json=rpc_submit(envelope(alice, bob, ds_settings, "pushed")))).status == 200
        for s in sockets:
            assert await text_of(s, bob, alice) == "pushed"

        await sockets[0].close()
        await asyncio.sleep(0.3)
        assert listener.watched == {bob.address} and await subscribers() == 1  # one device left
        await sockets[1].close()
        for _ in range(50):
            if not listener.watched and await subscribers() == 0:
                break
            await asyncio.sleep(0.1)
        assert listener.watched == frozenset() and await subscribers() == 0
    finally:
        for s in sockets:
            await s.close()


async def test_socket_with_a_bad_token_is_told_unauthorized(ds_client, users, clock) -> None:
    alice, bob = users[0], users[1]
    await signup(ds_client, alice)
    await signup(ds_client, bob)
    alice_token = await login(ds_client, alice)
    # The handshake runs the REST routes' session check, and is told why it failed.
    cases = (
        (bob.name, alice_token, "the session token belongs to another account"),
        (alice.name, "not-a-token", "session token is not a valid token of this service"),
    )
    for name, token, reason in cases:
        s = Socket()
        try:
            await s.connect(str(ds_client.make_url("/")), name, token)
            assert await s.next_event() == ("unauthorized", {"error": reason})
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


# -- losing the Redis subscription ---------------------------------------------------------------


async def listener_connections(redis, listener: PushListener) -> list[str]:
    """Ids of the Redis connections named as ``listener``'s (CLIENT SETNAME), from CLIENT LIST."""
    return [c["id"] for c in await redis.client_list() if c.get("name") == listener.client_name]


async def test_listener_reconnects_after_its_connection_is_killed_and_pushes_what_it_missed(
    aiohttp_client, redis, ds_settings, directory, chain, clock, users, caplog
) -> None:
    alice, bob = users[0], users[1]
    app = create_app(ds_settings, redis=redis, directory=directory, chain=chain, clock=clock, sweep_interval=None)
    listener = app[push_listener_key]
    # The first attempt waits 2–4 s: long enough that the message below surely falls in the gap.
    listener.backoff_initial = 4.0
    client = await aiohttp_client(app)
    await signup(client, alice)
    await signup(client, bob)
    socket, late = Socket(), Socket()
    caplog.set_level(logging.INFO, logger="delivery.push")
    try:
        await socket.connect(str(client.make_url("/")), bob.name, await login(client, bob))
        assert (await socket.next_event())[0] == "authorized"
        await asyncio.wait_for(listener.subscribed.wait(), 5)
        assert (await client.post("/rpc", json=rpc_submit(envelope(alice, bob, ds_settings, "before")))).status == 200
        assert await text_of(socket, bob, alice) == "before"

        # Only this listener's own connection, found by the name it set.
        [old_id] = await listener_connections(redis, listener)
        assert await redis.client_kill_filter(_id=old_id) == 1
        # Redis has closed the subscription: this message's announcement reaches no one.
        assert (await client.post("/rpc", json=rpc_submit(envelope(alice, bob, ds_settings, "during")))).status == 200
        # A socket that joins while the subscription is down is heard once it is made again.
        for _ in range(50):
            if not listener.subscribed.is_set():
                break
            await asyncio.sleep(0.05)
        assert not listener.subscribed.is_set()
        await late.connect(str(client.make_url("/")), alice.name, await login(client, alice))
        assert (await late.next_event())[0] == "authorized"

        assert await text_of(socket, bob, alice, timeout=10) == "during"  # pushed by the catch-up
        assert listener.resubscriptions == 1 and listener.subscribed.is_set()
        assert listener.watched == {alice.address, bob.address}
        assert (await client.post("/rpc", json=rpc_submit(envelope(bob, alice, ds_settings, "to the late one")))).status == 200
        assert await text_of(late, alice, bob) == "to the late one"
        [new_id] = await listener_connections(redis, listener)
        assert new_id != old_id
        assert "push listener lost its Redis subscription (ConnectionError, attempt 1)" in caplog.text
        assert "re-subscribed after 1 attempt(s)" in caplog.text
        assert "pushed 1 message(s) received meanwhile" in caplog.text

        # The new subscription pushes as before; nothing was pushed twice.
        assert (await client.post("/rpc", json=rpc_submit(envelope(alice, bob, ds_settings, "after")))).status == 200
        assert await text_of(socket, bob, alice) == "after"
        await asyncio.sleep(0.3)
        assert socket.events.empty()
    finally:
        await socket.close()
        await late.close()


async def test_listener_backs_off_while_redis_is_unreachable_and_stops_at_once(
    redis_prefix, ds_settings, directory, chain, clock, unused_tcp_port, caplog
) -> None:
    dead = aioredis.from_url(f"redis://127.0.0.1:{unused_tcp_port}/0")
    app = create_app(ds_settings, redis=dead, directory=directory, chain=chain, clock=clock, sweep_interval=None)
    listener = app[push_listener_key]
    listener.backoff_initial, listener.backoff_max = 0.05, 0.2
    caplog.set_level(logging.WARNING, logger="delivery.push")
    listener.start()
    try:
        await asyncio.sleep(1.0)
    finally:
        started = time.monotonic()
        await listener.stop()
        stopped_in = time.monotonic() - started
        await dead.aclose()

    attempts = [r for r in caplog.records if "cannot make its Redis subscription" in r.getMessage()]
    delays = [float(r.getMessage().rsplit("retrying in ", 1)[1].split(" ")[0]) for r in attempts]
    assert 4 <= len(attempts) <= 20  # backing off, not spinning
    assert [f"attempt {n})" in r.getMessage() for n, r in enumerate(attempts, 1)] == [True] * len(attempts)
    assert all(0.0 <= d <= 0.2 for d in delays) and max(delays[3:]) > 0.05  # grew towards the cap
    assert not listener.subscribed.is_set()
    assert stopped_in < 0.5  # a stop ends the wait between attempts


def test_reconnect_delay_doubles_up_to_the_cap_with_jitter(ds_settings, redis, directory, chain, clock) -> None:
    listener = PushListener(create_app(ds_settings, redis=redis, directory=directory, chain=chain, clock=clock),
                            backoff_initial=0.5, backoff_max=30.0)

    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (6, 16.0), (7, 30.0), (100, 30.0)]:
        delays = [listener.reconnect_delay(attempt) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1  # jittered


async def text_of(socket: Socket, receiver, sender, timeout: float = 5.0) -> str:
    """The next event must be a pushed message; returns its decrypted text."""
    name, data = await socket.next_event(timeout)
    assert name == "message", (name, data)
    return open_envelope(EncryptionEnvelop.from_json(data), receiver.keys.encryption, sender.keys.signing.public_key).message
