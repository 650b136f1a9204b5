"""Realtime push over socket.io (dm3's socket.io events), across every process of the service.

Handshake: the client connects to ``/socket.io`` with ``auth = {"account": {"ensName": <name>},
"token": <session JWT>}``. The token is checked by the REST routes' own check
(:func:`delivery.web_auth.authorize`: same account, account still exists); the socket then joins
the room named after the account's address and gets the event ``authorized``. Otherwise it gets
``unauthorized`` with ``{"error": <why>}`` (:func:`ensign.answers.socket_refusal`) and is
disconnected.

A socket lives no longer than its session: when its token expires (a timer on the app's clock),
when the account is deleted, or when the account is bound to another key (:mod:`delivery.accounts`,
"Binding"), it gets ``unauthorized`` with the reason (``session_expired`` / ``session_stale``) and is
disconnected, on every process at once: the deletion and binding scripts publish on the account's
sessions channel, which every process's :class:`PushListener` subscribes to beside the
notifications, and each re-checks its own sockets of that account. Every socket of an account
sits in the same room, whichever alias it logged in with, so every device gets every push (dm3
pushes only to the last socket).

Across processes: the queue's insert script publishes each new message id on the account's
channel. A process SUBSCRIBEs to the channel of an account while it holds a socket of it (the
first socket's handshake subscribes, and answers ``authorized`` once Redis has confirmed, so a
message stored after the client's fetch on connect is pushed; the last socket's close
unsubscribes), reads the stored envelope and emits ``message`` (the stored envelope with its
postmark, as dm3) to the room. A message to an account with no socket anywhere reaches no process
at all: with N processes, a message costs the processes nothing but the one read per process that
holds a socket of the receiver, where a subscription to every account's channel woke all N for
every message (the bench measured that wake-up at about 5 % of a submission's CPU with one
process).

Caps: a handshake takes a token of the client address's ``address`` bucket and a socket slot of
the account and of the client address (:class:`delivery.limits.SocketSlots`); over a cap the
client gets ``unauthorized`` with ``{"error": <why>}`` and is disconnected. A closed socket frees
its slots; this process renews its sockets' leases while they stay open.

Client → server: ``submitMessage`` with ``{"envelop": <envelope object>, "token": …}`` runs the same
intake as ``dm3_submitMessage``; its ack is ``{"response": "success"}`` or ``{"error": <message>}``
(the token is ignored, as dm3: submission needs no session).

Losing the subscription: pub/sub keeps nothing for a subscriber that is away, so a message
published while this process's subscription is down (Redis restarted or failed over, the
connection dropped, or Redis closed it for exceeding ``client-output-buffer-limit pubsub`` under
load) would reach its connected sockets only at their next fetch — and dm3 clients fetch on
connect, not while connected. So :class:`PushListener`:

* owns its pub/sub connection (named with ``CLIENT SETNAME`` — :attr:`PushListener.client_name` —
  so an operator can find it in ``CLIENT LIST``) and notices every drop itself: redis-py's silent
  reconnect is turned off for it;
* re-subscribes with exponential backoff (:data:`BACKOFF_INITIAL` doubling to
  :data:`BACKOFF_MAX`, with jitter), logging each failed attempt and the recovery;
* catches up once re-subscribed (Redis has confirmed the subscriptions, those of every account
  with sockets here and the sessions pattern, so nothing falls between):
  for every account with sockets on this process it pushes the messages received since the last
  moment the old subscription was known alive (minus :data:`CATCH_UP_SKEW` for clocks of other
  processes), at most :data:`CATCH_UP_LIMIT` per account; the rest wait for the client's fetch.
  Messages this process already pushed are remembered (the last :data:`RECENT_PUSHES`, by id and
  receive time) and not pushed twice.

Stopping: on SIGTERM the process closes every socket's engine.io connection (a close packet) right
after its listening socket closed, so clients reconnect to another process at once while the
requests in flight finish (:mod:`stack.serve`).

Push is best effort; delivery is guaranteed by fetch + ack (a pushed message stays queued until
acknowledged). A socket can still get a message twice (pushed, and fetched on connect), so
clients de-duplicate by message hash, as for any at-least-once delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis
import socketio  # type: ignore[import-untyped]
from aiohttp import web
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from ensign.answers import as_error, socket_refusal
from ensign.errors import EncodingError
from ensign.protocol.safe_json import parse_json
from ensign.redis_client import RedisClient

from .appkeys import (
    accounts_key,
    at_rest_key,
    clock_key,
    intake_key,
    metrics_key,
    queue_key,
    redis_key,
    settings_key,
)
from .errors import SessionExpired, SessionMissing
from .keys import account_from_sessions_channel, sessions_pattern
from .limits import SOCKET_LEASE_SECONDS, SocketSlots, client_address
from .metrics import DeliveryMetrics
from .notify_worker import presence_joined, presence_left
from .queue import StoredMessage
from ensign.sessions import Session
from .web_auth import authorize, check_current
from .web_limits import limiter_key

log = logging.getLogger(__name__)

socket_server_key = web.AppKey("socket_server_key", socketio.AsyncServer)
# Made with the app's Redis client by delivery.app (which may open that client only at start-up).
socket_slots_key = web.AppKey("socket_slots_key", SocketSlots)
NAMESPACE = "/"
LISTEN_POLL = 1.0  # seconds one read from the subscription waits (the stop flag is checked between)
BACKOFF_INITIAL = 0.5  # seconds before the first re-subscription attempt
BACKOFF_MAX = 30.0  # seconds: the longest wait between attempts
CATCH_UP_SKEW = 2.0  # seconds: how far other processes' clocks may lag this one's
CATCH_UP_LIMIT = 100  # messages per account pushed after a re-subscription (one fetch page)
RECENT_PUSHES = 10_000  # pushed messages remembered so a catch-up does not push them again
SUBSCRIBE_BATCH = 1_000  # channels per SUBSCRIBE when a lost subscription is made again
EXPIRY_RECHECK = 300.0  # seconds: longest wait of a socket's expiry timer before it reads the clock again
# Seconds a handshake waits for Redis to confirm the account's subscription. Past it (Redis slow
# or the subscription lost) the socket is authorized anyway: a lost subscription is made again
# with every account of this process, and the catch-up pushes what was missed.
WATCH_CONFIRM_TIMEOUT = 5.0


class _FrameJson:
    """The JSON module socket.io and Engine.IO parse frames with: :func:`parse_json`'s limits.

    A CONNECT frame of a few hundred KB of ``[[[[`` crashed the process through the standard
    parser (see :mod:`ensign.protocol.safe_json`). python-socketio drops a frame whose ``loads``
    raises ``ValueError``, so refusals are raised as that.
    """

    @staticmethod
    def dumps(value: Any, **kwargs: Any) -> str:
        return json.dumps(value, **kwargs)

    @staticmethod
    def loads(text: str | bytes, **kwargs: Any) -> Any:
        try:
            return parse_json(text, what="the socket.io frame")
        except EncodingError as exc:
            raise ValueError(exc.message) from None


def attach_socket_server(app: web.Application, *, cors_origins: str | list[str] = "*") -> socketio.AsyncServer:
    """Create the socket.io server for ``app``, register its events, and add the Redis listener
    (``app[push_listener_key]``, a :class:`PushListener`) that a cleanup context starts and stops."""
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        cors_allowed_origins=cors_origins,
        # Accept first, then decide: dm3 clients expect an ``unauthorized`` event, not a refused connect.
        always_connect=True,
        logger=False,
        engineio_logger=False,
        json=_FrameJson,
    )
    sio.attach(app)
    app[socket_server_key] = sio
    expiries: dict[str, asyncio.Task[None]] = {}

    async def expire(sid: str, session: Session) -> None:
        # The app's clock decides (tests move it); re-read after each wait, so a clock moved
        # meanwhile is seen at the next wake-up.
        while (left := session.expires_at - app[clock_key]()) > 0:
            await asyncio.sleep(min(left, EXPIRY_RECHECK))
        expiries.pop(sid, None)
        await end_socket(sio, sid, SessionExpired("session token has expired"))

    limits = app[settings_key].limits

    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> bool:
        try:
            request: web.Request = environ["aiohttp.request"]
            peer = client_address(request, limits.trusted_proxies)
            await app[limiter_key].take("address", limits.address, peer)
            session, account = await authorize(app, *_credentials(auth))
            await app[socket_slots_key].acquire(sid, account=account.address, address=peer)
        except Exception as exc:
            await sio.emit("unauthorized", socket_refusal(as_error(exc, "socket handshake")), to=sid)
            return False
        address = account.address
        await sio.save_session(sid, {"account": address, "session": session})
        await sio.enter_room(sid, address)
        await app[push_listener_key].watch(address)
        await presence_joined(app, address)  # seen online by every process (notify_worker)
        app[metrics_key].sockets.inc()
        expiries[sid] = asyncio.create_task(expire(sid, session), name=f"socket-expiry-{sid}")
        await sio.emit("authorized", to=sid)
        return True

    async def disconnect(sid: str, *args: Any) -> None:
        task = expiries.pop(sid, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        with contextlib.suppress(RedisError, OSError):
            await app[socket_slots_key].release(sid)
        with contextlib.suppress(KeyError):
            session = await sio.get_session(sid)
            if session.get("account"):
                app[metrics_key].sockets.dec()
                await app[push_listener_key].unwatch(session["account"])
                await presence_left(app, session["account"])

    async def cancel_expiries(app: web.Application) -> None:
        for task in list(expiries.values()):
            task.cancel()
        expiries.clear()

    async def submit_message(sid: str, data: Any = None) -> dict[str, str]:
        envelope = data.get("envelop") if isinstance(data, dict) else None
        try:
            await app[intake_key].submit(envelope)
        except Exception as exc:
            return socket_refusal(as_error(exc, "socket submitMessage"))
        return {"response": "success"}

    async def close_sockets(app: web.Application) -> None:
        # Graceful stop (on_shutdown runs after the listening socket closed, before requests in
        # flight are awaited): close every engine.io connection with a close packet. socket.io
        # clients take that as a lost transport and reconnect, through the load balancer, to a
        # process that is still serving; their websocket handlers end here instead of holding
        # the stop for the whole shutdown timeout.
        if sio.eio.sockets:
            log.info("closing %d sockets so their clients reconnect elsewhere", len(sio.eio.sockets))
            await sio.eio.disconnect()

    sio.on("connect", connect)
    sio.on("disconnect", disconnect)
    sio.on("submitMessage", submit_message)
    app.on_shutdown.append(close_sockets)
    app[push_listener_key] = PushListener(app)
    app.cleanup_ctx.append(_listener_ctx)
    app.on_cleanup.append(cancel_expiries)
    app.cleanup_ctx.append(_lease_ctx)
    return sio


async def end_socket(sio: socketio.AsyncServer, sid: str, reason: Exception) -> None:
    """Tell socket ``sid`` why it ends (``unauthorized``, ``{"error": …}``) and disconnect it."""
    with contextlib.suppress(Exception):
        await sio.emit("unauthorized", socket_refusal(as_error(reason, "socket session")), to=sid)
    await sio.disconnect(sid)


async def end_stale_sockets(app: web.Application, account: str) -> int:
    """Re-check this process's sockets of ``account`` against the stored account (one read) and
    end those whose session no longer matches it (deleted, re-created, bound to another key).
    Returns how many were ended."""
    sio: socketio.AsyncServer = app[socket_server_key]
    sids = [sid for sid, _ in sio.manager.get_participants(NAMESPACE, account)]
    if not sids:
        return 0
    stored = await app[accounts_key].get(account)
    ended = 0
    for sid in sids:
        try:
            session = (await sio.get_session(sid)).get("session")
        except KeyError:
            continue  # disconnected meanwhile
        if not isinstance(session, Session):
            continue
        try:
            check_current(stored, session)
        except Exception as exc:
            await end_socket(sio, sid, exc)
            ended += 1
    return ended


def _credentials(auth: Any) -> tuple[str, str]:
    """(name, token) from a handshake's ``auth = {"account": {"ensName": …}, "token": …}``."""
    account = auth.get("account") if isinstance(auth, dict) else None
    name = account.get("ensName") if isinstance(account, dict) else None
    token = auth.get("token") if isinstance(auth, dict) else None
    if not isinstance(name, str) or not isinstance(token, str):
        raise SessionMissing('the handshake needs auth = {"account": {"ensName": <name>}, "token": <session token>}')
    return name, token


class PushListener:
    """This process's subscriptions to the channels of the accounts with sockets here (and to
    every account's sessions channel), pushing to its local sockets.

    Started and stopped by the app's cleanup context (:func:`attach_socket_server`); reconnects
    and catches up by itself (module docstring).

    :param app: the delivery app (its Redis client, queue, socket server, clock and metrics).
    :param backoff_initial: seconds before the first re-subscription attempt (default
        :data:`BACKOFF_INITIAL`); each failed attempt doubles it, up to ``backoff_max``.
    :param backoff_max: the longest wait between attempts (default :data:`BACKOFF_MAX`).
    """

    def __init__(
        self, app: web.Application, *, backoff_initial: float = BACKOFF_INITIAL, backoff_max: float = BACKOFF_MAX
    ) -> None:
        self._app = app
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        #: ``CLIENT SETNAME`` of the pub/sub connection: unique per listener, so it can be found
        #: in ``CLIENT LIST`` (and only this one killed in a test).
        self.client_name = f"ensign-push:{os.getpid()}:{secrets.token_hex(4)}"
        #: Set while Redis has confirmed the subscription; cleared when it is lost.
        self.subscribed = asyncio.Event()
        #: How many times the subscription was lost and made again.
        self.resubscriptions = 0
        self._recent: OrderedDict[tuple[str, str, float], None] = OrderedDict()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        #: Sockets here per account watched (:meth:`watch`): the accounts whose channels to hear.
        self._watched: dict[str, int] = {}
        #: The live subscription, while there is one; :meth:`watch` subscribes through it.
        self._pubsub: aioredis.client.PubSub | None = None
        #: Per channel, the handshakes waiting for Redis to confirm its SUBSCRIBE (in sending order).
        self._confirming: dict[str, deque[asyncio.Future[None]]] = {}

    @property
    def watched(self) -> frozenset[str]:
        """The accounts whose new messages this process hears (those with sockets here)."""
        return frozenset(self._watched)

    async def watch(self, account: str) -> None:
        """Hear ``account``'s new messages from now on (a socket of it has joined here); returns
        once Redis has confirmed the subscription (at most :data:`WATCH_CONFIRM_TIMEOUT`)."""
        count = self._watched.get(account, 0)
        self._watched[account] = count + 1
        pubsub = self._pubsub
        if pubsub is None:
            return  # being (re)subscribed: that takes every watched account, then catches up
        channel = self._app[queue_key].channel(account)
        if count:
            waiting = self._confirming.get(channel)
            if waiting:  # the account's first socket is still waiting: so does this one
                await self._await_confirmation(waiting[-1])
            return
        confirmed = asyncio.get_running_loop().create_future()
        self._confirming.setdefault(channel, deque()).append(confirmed)
        try:
            await pubsub.subscribe(channel)
        except (RedisError, OSError):
            # The subscription is lost: the listener notices, subscribes every watched account again
            # and catches up.
            self._settle(channel)
            return
        await self._await_confirmation(confirmed)

    async def unwatch(self, account: str) -> None:
        """A socket of ``account`` has left: stop hearing its messages once its last socket here has."""
        count = self._watched.get(account, 0) - 1
        if count > 0:
            self._watched[account] = count
            return
        self._watched.pop(account, None)
        pubsub = self._pubsub
        if pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.unsubscribe(self._app[queue_key].channel(account))

    @staticmethod
    async def _await_confirmation(confirmed: asyncio.Future[None]) -> None:
        # asyncio.wait, not wait_for: a timeout leaves the future to the listener (the reply may
        # still come, and another socket may be waiting on it too).
        await asyncio.wait({confirmed}, timeout=WATCH_CONFIRM_TIMEOUT)

    def _settle(self, channel: str | None = None) -> None:
        """Release the handshakes waiting on ``channel``'s confirmation (all channels: ``None``)."""
        for name in [channel] if channel is not None else list(self._confirming):
            for waiting in self._confirming.pop(name, ()):
                if not waiting.done():
                    waiting.set_result(None)

    def start(self) -> None:
        """Start listening in a background task."""
        self._stop.clear()
        self._task = asyncio.create_task(self._run(), name="delivery-push-listener")

    async def stop(self) -> None:
        """Stop listening and close the connection; returns once the task has ended."""
        task, self._task = self._task, None
        if task is None:
            return
        # Cancel, so a pending read ends now, and set the stop flag too: were a read to swallow the
        # cancellation, the flag still ends the loop after that read (at most LISTEN_POLL).
        self._stop.set()
        task.cancel()
        await asyncio.wait({task}, timeout=LISTEN_POLL + 2)
        if task.done() and not task.cancelled():
            task.exception()  # retrieved, so asyncio does not log it as never retrieved

    def reconnect_delay(self, attempt: int) -> float:
        """Seconds to wait before re-subscription ``attempt`` (1, 2, …): doubling, capped, jittered."""
        ceiling = min(self.backoff_max, self.backoff_initial * 2 ** min(attempt - 1, 30))
        # Jitter keeps the processes of a deployment from reconnecting to a recovering Redis at once.
        return random.uniform(ceiling / 2, ceiling)

    async def _run(self) -> None:
        queue = self._app[queue_key]
        clock = self._app[clock_key]
        failures = 0  # failed attempts since the subscription was last confirmed
        lost_at = 0.0  # monotonic time the subscription was lost
        alive_at: float | None = None  # clock time of the last read proving the subscription alive
        while not self._stop.is_set():
            client = _own_connection(self._app[redis_key], self.client_name)
            pubsub = client.pubsub()
            try:
                await pubsub.psubscribe(self._sessions_pattern)  # connects
                # The accounts watched so far are subscribed here; from here on (no await between)
                # a new socket's account is subscribed by its handshake, through this connection.
                channels = [queue.channel(account) for account in self._watched]
                self._pubsub = pubsub
                for start in range(0, len(channels), SUBSCRIBE_BATCH):
                    await pubsub.subscribe(*channels[start : start + SUBSCRIBE_BATCH])
                await self._confirmed(pubsub, expected={self._sessions_pattern, *channels})
                confirmed_at = clock()
                self.subscribed.set()
                if alive_at is None:
                    log.info("push listener subscribed", extra={"client_name": self.client_name})
                else:
                    self.resubscriptions += 1
                    # Deletions and re-bindings announced meanwhile were missed too.
                    for account in _local_accounts(self._app[socket_server_key]):
                        await end_stale_sockets(self._app, account)
                    caught_up = await self._catch_up(alive_at - CATCH_UP_SKEW)
                    log.info(
                        "push listener re-subscribed after %d attempt(s) and %.1f s; pushed %d message(s) "
                        "received meanwhile", failures, time.monotonic() - lost_at, caught_up,
                        extra={"client_name": self.client_name},
                    )
                failures, alive_at = 0, confirmed_at
                while not self._stop.is_set():
                    # get_message with a timeout, not listen(): it gives cancellation a clean path.
                    item = await pubsub.get_message(timeout=LISTEN_POLL)
                    alive_at = clock()
                    if item is not None:
                        await self._dispatch(item)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._stop.is_set():
                    return
                if not isinstance(exc, (RedisError, OSError)):
                    log.exception("push listener failed; starting over")
                if self.subscribed.is_set():
                    lost_at = time.monotonic()
                failures += 1
                delay = self.reconnect_delay(failures)
                log.warning(
                    "push listener %s its Redis subscription (%s, attempt %d); retrying in %.1f s",
                    "lost" if failures == 1 and alive_at is not None else "cannot make",
                    type(exc).__name__, failures, delay,
                    extra={"client_name": self.client_name},
                )
            finally:
                self.subscribed.clear()
                self._pubsub = None
                self._settle()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                with contextlib.suppress(Exception):
                    await client.aclose()
            # Wait with the old connection closed; a stop ends the wait at once.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)

    async def _on_notification(self, channel: bytes | str, data: bytes | str) -> None:
        try:
            account = self._app[queue_key].account_from_channel(channel)
        except ValueError:
            return
        message_id = data.decode() if isinstance(data, bytes) else str(data)
        try:
            await self.push(account, message_id)
        except (RedisError, OSError):
            raise
        except Exception:
            # One message that cannot be pushed must not end the pushes of all others.
            log.exception("push failed", extra={"account_ref": self._app[at_rest_key].log_ref(account), "message_id": message_id})

    async def _dispatch(self, item: dict[str, Any]) -> None:
        kind = item.get("type")
        if kind == "message":
            await self._on_notification(item["channel"], item["data"])
        elif kind == "pmessage" and _text(item.get("pattern")) == self._sessions_pattern:
            await self._on_sessions_event(item["channel"])
        elif kind == "subscribe":
            channel = _text(item.get("channel")) or ""
            waiting = self._confirming.get(channel)
            if waiting:
                confirmed = waiting.popleft()
                if not waiting:
                    del self._confirming[channel]
                if not confirmed.done():
                    confirmed.set_result(None)

    @property
    def _sessions_pattern(self) -> str:
        return sessions_pattern(self._app[settings_key].redis.prefix)

    async def _on_sessions_event(self, channel: bytes | str) -> None:
        try:
            account = account_from_sessions_channel(self._app[settings_key].redis.prefix, channel)
        except ValueError:
            return
        try:
            await end_stale_sockets(self._app, account)
        except (RedisError, OSError):
            raise
        except Exception:
            log.exception("re-checking sockets failed", extra={"account_ref": self._app[at_rest_key].log_ref(account)})

    async def _confirmed(self, pubsub: aioredis.client.PubSub, *, expected: set[str]) -> None:
        # Until Redis answers a SUBSCRIBE, a PUBLISH may still miss us; the catch-up must come
        # after all of them, or a message could fall between the two. Each is confirmed on its own.
        expected = set(expected)
        deadline = time.monotonic() + LISTEN_POLL + 5
        while time.monotonic() < deadline:
            item = await pubsub.get_message(timeout=LISTEN_POLL)
            if item is None:
                continue
            if item.get("type") in ("subscribe", "psubscribe"):
                expected.discard(_text(item.get("channel")) or "")
                if not expected:
                    await self._dispatch(item)
                    return
            await self._dispatch(item)  # what is confirmed is live while the rest is
        raise RedisError("no answer to SUBSCRIBE")

    async def push(self, account: str, message_id: str) -> int:
        """Emit the stored envelope ``message_id`` to this process's sockets of ``account``.

        Returns how many sockets it was emitted to (0 when none are connected here, the message
        was acknowledged, swept or expired meanwhile, or this listener already pushed it).
        """
        if _local_sockets(self._app[socket_server_key], account) == 0:
            return 0
        stored = await self._app[queue_key].get(account, message_id, now=self._app[clock_key]())
        return 0 if stored is None else await self._emit(account, stored)

    async def _catch_up(self, since: float) -> int:
        """Push what each local account received since ``since``: the messages published while
        the subscription was down. Returns how many messages were pushed."""
        queue = self._app[queue_key]
        cursor = queue.cursor_at(max(0.0, since))
        pushed = 0
        for account in _local_accounts(self._app[socket_server_key]):
            page = await queue.fetch(account, now=self._app[clock_key](), cursor=cursor, limit=CATCH_UP_LIMIT)
            for stored in page.items:
                pushed += 1 if await self._emit(account, stored) else 0
        return pushed

    async def _emit(self, account: str, stored: StoredMessage) -> int:
        # The receive time tells a resubmission after an ack (a new delivery) from the same one.
        seen = (account, stored.id, stored.received_at)
        if seen in self._recent:
            return 0
        self._recent[seen] = None
        if len(self._recent) > RECENT_PUSHES:
            self._recent.popitem(last=False)
        count = _local_sockets(self._app[socket_server_key], account)
        if count == 0:
            return 0
        await self._app[socket_server_key].emit("message", json.loads(stored.envelope), room=account, namespace=NAMESPACE)
        metrics: DeliveryMetrics = self._app[metrics_key]
        metrics.pushes.inc(count)
        return count


push_listener_key = web.AppKey("push_listener_key", PushListener)


async def _listener_ctx(app: web.Application) -> AsyncIterator[None]:
    listener = app[push_listener_key]
    listener.start()
    yield
    await listener.stop()


async def _lease_ctx(app: web.Application) -> AsyncIterator[None]:
    async def renew_forever() -> None:
        while True:
            await asyncio.sleep(SOCKET_LEASE_SECONDS / 3)
            try:
                await app[socket_slots_key].renew()
            except (RedisError, OSError) as exc:
                log.warning("socket leases not renewed, next round retries: %s", exc)

    task = asyncio.create_task(renew_forever(), name="delivery-socket-leases")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _own_connection(redis: RedisClient, name: str) -> aioredis.Redis:
    """A client with the app client's connection settings, named ``name``, that never retries.

    redis-py would otherwise reconnect a dropped pub/sub connection inside ``get_message`` and
    re-subscribe silently, so the listener could neither log the gap nor catch up after it.
    """
    connection_class: type[AbstractConnection]
    settings: dict[str, Any]
    if isinstance(redis, aioredis.RedisCluster):
        # PUBLISH reaches the subscribers on every node, so any node serves; a random one per
        # attempt spreads the processes and steps around a node that has failed.
        node = redis.get_random_node()
        connection_class, settings = node.connection_class, node.connection_kwargs
    else:
        connection_class, settings = redis.connection_pool.connection_class, redis.connection_pool.connection_kwargs
    own = {**settings, "client_name": name, "retry": Retry(NoBackoff(), 0)}
    return aioredis.Redis.from_pool(aioredis.ConnectionPool(connection_class=connection_class, **own))


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _local_sockets(sio: socketio.AsyncServer, room: str) -> int:
    return sum(1 for _ in sio.manager.get_participants(NAMESPACE, room))


def _local_accounts(sio: socketio.AsyncServer) -> list[str]:
    """The accounts with sockets on this process: the rooms other than the default room (``None``)
    and each socket's own room (named by its sid, holding only itself)."""
    rooms: dict[Any, dict[str, str]] = sio.manager.rooms.get(NAMESPACE, {})
    return [room for room, members in rooms.items() if room is not None and members and room not in members]


__all__ = [
    "PushListener",
    "attach_socket_server",
    "end_socket",
    "end_stale_sockets",
    "push_listener_key",
    "socket_server_key",
    "socket_slots_key",
]
