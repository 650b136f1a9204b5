"""Realtime push over socket.io (dm3 reference §5.8), across every process of the service.

Handshake: the client connects to ``/socket.io`` with ``auth = {"account": {"ensName": <name>},
"token": <session JWT>}``. The token is checked as on the REST routes (same account, account still
exists); the socket then joins the room named after the account's address and gets the event
``authorized``. Otherwise it gets ``unauthorized`` and is disconnected. Every socket of an account
sits in the same room, whichever alias it logged in with, so every device gets every push (dm3
pushes only to the last socket).

Across processes: the queue's insert script publishes each new message id on the account's
channel. Every process PSUBSCRIBEs to all account channels and, for an account with sockets
connected to *this* process, reads the stored envelope and emits ``message`` (the stored envelope
with its postmark, as dm3) to the room. Processes without sockets for the account skip it, so a
push costs one Redis read per process that holds a socket of the receiver.

Client → server: ``submitMessage`` with ``{"envelop": <envelope object>, "token": …}`` runs the same
intake as ``dm3_submitMessage``; its ack is ``{"response": "success"}`` or ``{"error": <message>}``
(the token is ignored, as dm3: submission needs no session).

Push is best effort; delivery is guaranteed by fetch + ack (a pushed message stays queued until
acknowledged).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis
import socketio  # type: ignore[import-untyped]
from aiohttp import web
from redis.exceptions import RedisError

from ensign.errors import EnsignError
from ensign.protocol.encoding import normalize_name

from .metrics import DeliveryMetrics
from .ports import address_or_none
from .state import accounts_key, clock_key, directory_key, intake_key, metrics_key, queue_key, redis_key, sessions_key

log = logging.getLogger(__name__)

socket_server_key = web.AppKey("socket_server_key", socketio.AsyncServer)
NAMESPACE = "/"
RESUBSCRIBE_DELAY = 1.0
LISTEN_POLL = 1.0  # seconds a read from the subscription waits  # seconds before re-subscribing after Redis dropped the connection


def attach_socket_server(app: web.Application, *, cors_origins: str | list[str] = "*") -> socketio.AsyncServer:
    """Create the socket.io server for ``app``, register its events, and start the Redis listener
    in a cleanup context."""
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        cors_allowed_origins=cors_origins,
        # Accept first, then decide: dm3 clients expect an ``unauthorized`` event, not a refused connect.
        always_connect=True,
        logger=False,
        engineio_logger=False,
    )
    sio.attach(app)
    app[socket_server_key] = sio

    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> bool:
        address = await _authorize(app, auth)
        if address is None:
            await sio.emit("unauthorized", to=sid)
            return False
        await sio.save_session(sid, {"account": address})
        await sio.enter_room(sid, address)
        app[metrics_key].sockets.inc()
        await sio.emit("authorized", to=sid)
        return True

    async def disconnect(sid: str, *args: Any) -> None:
        with contextlib.suppress(KeyError):
            session = await sio.get_session(sid)
            if session.get("account"):
                app[metrics_key].sockets.dec()

    async def submit_message(sid: str, data: Any = None) -> dict[str, str]:
        envelope = data.get("envelop") if isinstance(data, dict) else None
        try:
            await app[intake_key].submit(envelope)
        except EnsignError as exc:
            return {"error": exc.message}
        except Exception:
            log.exception("socket submitMessage failed")
            return {"error": "internal server error"}
        return {"response": "success"}

    sio.on("connect", connect)
    sio.on("disconnect", disconnect)
    sio.on("submitMessage", submit_message)
    app.cleanup_ctx.append(_listener_ctx)
    return sio


async def _authorize(app: web.Application, auth: Any) -> str | None:
    """The account address for a socket's handshake ``auth``, or ``None`` when it does not check."""
    try:
        name = normalize_name(auth["account"]["ensName"])
        token = auth["token"]
        session = app[sessions_key].check_session(token)
        address = await address_or_none(app[directory_key], name)
        if address is None or address != session.address:
            return None
        account = await app[accounts_key].get(address)
        if account is None or account.created != session.generation:
            return None
        return address
    except (KeyError, TypeError, EnsignError):
        return None


async def _listener_ctx(app: web.Application) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(_listen(app, stop), name="delivery-push-listener")
    yield
    # A stop flag, checked after every poll, rather than only cancel(): redis-py can swallow the
    # cancellation of a pending read. Cancel as the fallback.
    stop.set()
    try:
        await asyncio.wait_for(asyncio.shield(task), LISTEN_POLL + 2)
    except (asyncio.TimeoutError, asyncio.CancelledError):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _listen(app: web.Application, stop: asyncio.Event) -> None:
    """PSUBSCRIBE to every account's channel and push; re-subscribe when Redis drops us."""
    redis: aioredis.Redis = app[redis_key]
    queue = app[queue_key]
    sio = app[socket_server_key]
    while not stop.is_set():
        pubsub = redis.pubsub()
        try:
            await pubsub.psubscribe(queue.notify_pattern)
            while not stop.is_set():
                # get_message with a timeout, not listen(): it gives cancellation a clean path.
                item = await pubsub.get_message(ignore_subscribe_messages=True, timeout=LISTEN_POLL)
                if item is None or item.get("type") != "pmessage":
                    continue
                try:
                    account = queue.account_from_channel(item["channel"])
                except ValueError:
                    continue
                data = item["data"]
                message_id = data.decode() if isinstance(data, bytes) else str(data)
                await push_message(sio, redis, app, account, message_id)
        except asyncio.CancelledError:
            raise
        except (RedisError, OSError) as exc:
            if stop.is_set():
                return
            log.warning("push listener lost Redis, re-subscribing: %s", type(exc).__name__)
            await asyncio.sleep(RESUBSCRIBE_DELAY)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]


def _local_sockets(sio: socketio.AsyncServer, room: str) -> int:
    return sum(1 for _ in sio.manager.get_participants(NAMESPACE, room))


async def push_message(
    sio: socketio.AsyncServer, redis: aioredis.Redis, app: web.Application, account: str, message_id: str
) -> int:
    """Emit the stored envelope ``message_id`` to this process's sockets of ``account``.

    Returns how many sockets it was emitted to (0 when none are connected here or the message was
    acknowledged, swept or expired meanwhile).
    """
    count = _local_sockets(sio, account)
    if count == 0:
        return 0
    stored = await app[queue_key].get(account, message_id, now=app[clock_key]())
    if stored is None:
        return 0
    await sio.emit("message", json.loads(stored.envelope), room=account, namespace=NAMESPACE)
    metrics: DeliveryMetrics = app[metrics_key]
    metrics.pushes.inc(count)
    return count


__all__ = ["attach_socket_server", "push_message", "socket_server_key"]
