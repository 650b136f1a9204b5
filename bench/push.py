"""Push latency: from the scheduled ``dm3_submitMessage`` to the socket.io ``message`` event.

``push_sockets`` receivers connect with socket.io (websocket transport, dm3's handshake with a
session token) and stay connected; the bench then submits the pool's envelopes (to every
receiver, so about a quarter of them has a socket here) at a fixed rate, open loop, and times each
push from the moment its submission was scheduled until its envelope arrived on the receiver's
socket. Two rates: a light one, and half the measured maximum.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import socketio  # type: ignore[import-untyped]

from .httpload import open_connections, open_loop, percentile
from .services import ServiceProcess, login
from .suite import Suite

__all__ = ["run_push"]

LIGHT_RATE = 100.0
DRAIN_SECONDS = 5.0


async def run_push(suite: Suite, server: ServiceProcess, requests: list[bytes], max_rate: float) -> dict[str, Any]:
    d = suite.durations
    base = f"http://127.0.0.1:{server.port}"
    listeners = suite.users[: d.push_sockets]
    online = {suite.users.index(u) for u in listeners}
    arrived: dict[str, float] = {}
    clients: list[socketio.AsyncClient] = []

    async with aiohttp.ClientSession() as http:
        tokens = {u.name: await login(http, base, u.name, u.signing_secret_key) for u in listeners}
    try:
        for user in listeners:
            client = socketio.AsyncClient(reconnection=False)
            authorized = asyncio.get_running_loop().create_future()

            def on_authorized(future: asyncio.Future[None] = authorized) -> None:
                if not future.done():
                    future.set_result(None)

            def on_message(envelope: Any) -> None:
                metadata = envelope.get("metadata", {})
                key = metadata.get("encryptedMessageHash") or metadata.get("messageHash")
                arrived.setdefault(key, time.perf_counter())

            client.on("authorized", on_authorized)
            client.on("message", on_message)
            await client.connect(base, transports=["websocket"], socketio_path="socket.io",
                                 auth={"account": {"ensName": user.name}, "token": tokens[user.name]})
            await asyncio.wait_for(authorized, 10)
            clients.append(client)

        out: dict[str, Any] = {"sockets": len(clients)}
        for label, rate in (("light", LIGHT_RATE), ("half_max", max_rate / 2)):
            arrived.clear()
            scheduled: dict[str, float] = {}
            count = min(len(requests), max(1, int(rate * d.phase)))

            def on_sent(index: int, at: float) -> None:
                envelope = suite.envelopes[index % len(suite.envelopes)]
                if envelope.receiver in online:
                    scheduled[envelope.message_id] = at

            conns = await open_connections([("127.0.0.1", server.port)], d.connections)
            try:
                result = await open_loop(conns, requests.__getitem__, rate=rate, count=count, on_sent=on_sent)
            finally:
                for conn in conns:
                    conn.close()
            deadline = time.monotonic() + DRAIN_SECONDS
            while len(arrived.keys() & scheduled.keys()) < len(scheduled) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            latencies = [arrived[k] - at for k, at in scheduled.items() if k in arrived]
            out[label] = {
                "rate": round(rate, 1),
                "pushes": len(scheduled),
                "received": len(latencies),
                "p50_ms": round(percentile(latencies, 0.5) * 1e3, 2),
                "p99_ms": round(percentile(latencies, 0.99) * 1e3, 2),
                "submit_p50_ms": round(result.p(0.5), 2),
                "errors": result.errors,
            }
            await suite.clear_queues()
        return out
    finally:
        for client in clients:
            await client.disconnect()
