"""The fault suite's short runs (CI): faults injected while real messages flow; nothing is lost.

The long run is the same code, longer: ``python -m tests.faults`` (README "Faults and durability").
Each test starts its own Redis and delivery processes on free loopback ports and stops them.
Redis runs with ``appendfsync always``, the setting under which a Redis crash loses nothing (README
"Durability settings"); with ``everysec`` an OK'd write can still be unwritten while an fsync runs,
which a kill then loses, as documented, and a run that asserts "nothing lost" fails at random.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import socketio  # type: ignore[import-untyped]

from bench.fixtures import make_users
from bench.services import signup
from tests.faults.run import Deployment, RunResult, Traffic, format_table, run


def _check(result: RunResult, title: str) -> None:
    print(format_table(result, title))
    assert not result.lost, result.diagnosis
    assert not result.duplicated
    assert not result.server_errors
    assert not result.refused
    assert result.without_retry_after == 0
    assert result.hangs == 0
    assert result.ok, "nothing was answered OK: the run proved nothing"


async def test_redis_killed_delivery_killed_links_cut_chain_down_lose_nothing() -> None:
    result = await run(faults=16, minutes=0.5, users=6, rate=8, senders=4, pause=0.5, seed=11, appendfsync="always")

    _check(result, "short fault run, one Redis")
    assert result.faults["redis SIGKILL + restart on AOF"] > 0


async def test_cluster_primary_killed_replica_promoted_with_wait_loses_nothing() -> None:
    result = await run(faults=1, minutes=0.5, users=6, rate=8, senders=4, pause=0.5, seed=12, cluster=True,
                       wait_replicas=1, appendfsync="always")

    _check(result, "short fault run, Redis Cluster 3+3, REDIS_WAIT_REPLICAS=1")
    assert result.faults["cluster primary SIGKILL, replica promoted"] == 1


@pytest.fixture
async def deployment(tmp_path: Path) -> AsyncIterator[Deployment]:
    users = await asyncio.to_thread(make_users, 3, 1)
    d = Deployment(tmp_path, users)
    try:
        await d.start()
        async with aiohttp.ClientSession() as http:
            for user in users:
                await signup(http, d.base, user.name, user.profile)
        yield d
    finally:
        await d.stop()


async def test_sigterm_drains_submissions_in_flight_and_sends_sockets_elsewhere(deployment: Deployment) -> None:
    d = deployment
    result = RunResult()
    traffic = Traffic(d, result, rate=1, senders=1, seed=3)
    receiver = d.users[0]
    victim = d.services[0]
    victim_base = f"http://127.0.0.1:{victim.port}"
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as http:
        await traffic._login(http, 0)
        token = traffic.tokens[0]
        auth = {"account": {"ensName": receiver.name}, "token": token}
        # A socket on the process that will be stopped.
        events: list[tuple[str, object]] = []
        sock = socketio.AsyncClient(reconnection=False)
        sock.on("authorized", lambda *a: events.append(("authorized", None)))
        sock.on("disconnect", lambda reason=None: events.append(("disconnect", reason)))
        await sock.connect(victim_base, socketio_path="/socket.io", transports=["websocket"], auth=auth)
        await _until(lambda: ("authorized", None) in events)

        # Submissions held in the victim by a slow chain (the lookup cache has expired by then).
        await asyncio.sleep(2.5)
        d.chain_proxy.delay = 0.5  # type: ignore[union-attr]
        envelopes = [traffic._envelope() for _ in range(4)]

        async def submit(body: bytes) -> tuple[int, bytes]:
            async with http.post(f"{victim_base}/rpc", data=body, headers={"Content-Type": "application/json"},
                                 timeout=aiohttp.ClientTimeout(total=30)) as response:
                return response.status, await response.read()

        in_flight = [asyncio.ensure_future(submit(body)) for _, _, body in envelopes]
        await asyncio.sleep(0.3)
        assert not any(task.done() for task in in_flight), "the chain stub did not hold the submissions"
        victim.signal(signal.SIGTERM)
        answers = await asyncio.gather(*in_flight)
        d.chain_proxy.delay = 0.0  # type: ignore[union-attr]
        # The socket was told to go (an engine.io close, which clients answer by reconnecting)
        # at once, while the submissions were still being finished, not when the process ended.
        assert ("disconnect", sock.reason.SERVER_DISCONNECT) in events

        # Every submission in flight at SIGTERM was finished and answered OK, not dropped.
        assert [status for status, _ in answers] == [200] * len(envelopes)
        assert all(json.loads(body)["result"] == "OK" for _, body in answers)
        assert victim.process is not None
        assert await asyncio.to_thread(victim.process.wait, 30) == 0
        await sock.disconnect()

        # … through the front port, to the process still serving, and gets pushes there.
        pushed: asyncio.Queue[dict[str, object]] = asyncio.Queue()
        again = socketio.AsyncClient(reconnection=False)
        again.on("message", lambda data: pushed.put_nowait(data))
        authorized = asyncio.Event()
        again.on("authorized", lambda *a: authorized.set())
        await again.connect(d.base, socketio_path="/socket.io", transports=["websocket"], auth=auth)
        await asyncio.wait_for(authorized.wait(), 30)
        message_id, to, body = traffic._envelope()
        while to != 0:
            message_id, to, body = traffic._envelope()
        async with http.post(f"{d.base}/rpc", data=body, headers={"Content-Type": "application/json"}) as response:
            assert response.status == 200
        push = await asyncio.wait_for(pushed.get(), 30)
        assert push["metadata"]["encryptedMessageHash"] == message_id  # type: ignore[index]
        await again.disconnect()

        # Nothing in flight was lost: the receiver fetches every submission answered OK, once.
        for message_id, to, _ in envelopes:
            result.saw_ok(message_id, to)
        result.saw_ok(message_id, 0)
        traffic.sending = False
        receivers = [asyncio.ensure_future(traffic.receive_loop(http, i)) for i in range(len(d.users))]
        await _until(lambda: not result.lost)
        traffic.receiving = False
        await asyncio.gather(*receivers)
    assert not result.duplicated and not result.server_errors


async def _until(condition: object, timeout: float = 30.0) -> None:
    async def wait() -> None:
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.05)

    await asyncio.wait_for(wait(), timeout)
