"""Receiving over socket.io: a :class:`Subscription` yields each verified message as it arrives.

One background task keeps one socket to the delivery service (``specs/delivery.md`` §6):

1. take a session token (logging in when needed) and connect to ``<service url>/socket.io`` with
   ``auth = {"account": {"ensName": <our name>}, "token": <token>}``, websocket transport;
2. on ``authorized``, fetch the queue once (``catch_up``): pushes are best effort, so what
   arrived while no socket was open comes this way; then wait for pushes (``message``);
3. on ``unauthorized`` (at the handshake, or later when the service ends the socket with its
   session: expiry, deletion, a key rotation) the token is dropped and the next attempt logs in again;
4. when the connection ends or cannot be made, wait and go to 1, the wait doubling from
   ``reconnect_delay`` up to ``reconnect_delay_max`` (reset by every authorised connection).

Errors that retrying cannot fix — the account or the service's ENS profile does not exist, a
request the service refuses for good — end the task and are raised by the iterator. A message is
yielded once per subscription even if both the push and the catch-up fetch bring it; it is not
removed from the service until :meth:`~ensign.client.Client.ack`. Envelopes that fail verification
are not yielded: they are kept in :attr:`Subscription.rejected`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import socketio  # type: ignore[import-untyped]

from ensign.errors import EnsignError, InvalidRequest, NotFound, ServiceUnavailable

from ._errors import ApiError, ClientConnectionError, ClientStateError
from ._models import ReceivedMessage, RejectedEnvelope
from ._receive import _id_of

if TYPE_CHECKING:
    from ._client import Client

log = logging.getLogger("ensign.client")

__all__ = ["Subscription"]

# Envelope ids remembered to yield each message once; older ones are forgotten first.
_SEEN_LIMIT = 10_000
_CLOSED = object()


class Subscription:
    """Verified messages pushed by one delivery service; use as an async context manager and
    iterate: ``async with client.subscribe() as messages: async for message in messages: …``.

    :attr:`connected` is true while an authorised socket is open; :meth:`wait_connected` waits
    for that. :attr:`connections` counts authorised connections made (reconnects included).
    """

    def __init__(self, client: Client, delivery_service: str, *, catch_up: bool = True) -> None:
        self._client = client
        self.delivery_service = delivery_service
        self._catch_up = catch_up
        self._incoming: asyncio.Queue[Any] = asyncio.Queue()  # raw envelopes, pushed or fetched
        self._ready: asyncio.Queue[Any] = asyncio.Queue()  # verified messages, a failure, or _CLOSED
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._authorized = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._verifier: asyncio.Task[None] | None = None
        self._socket: Any = None
        self._closed = False
        self._failure: BaseException | None = None
        self.rejected: list[RejectedEnvelope] = []
        self.connections = 0

    # -- lifetime -------------------------------------------------------------------------------

    async def __aenter__(self) -> Subscription:
        self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def start(self) -> None:
        """Start the background connection (``async with`` does this)."""
        if self._closed:
            raise ClientStateError("this subscription is closed; subscribe again")
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"ensign-subscription-{self.delivery_service}")
            self._verifier = asyncio.create_task(self._verify_all(), name=f"ensign-verify-{self.delivery_service}")

    async def close(self) -> None:
        """Disconnect and stop; iteration ends after the messages already received."""
        if self._closed:
            return
        self._closed = True
        for task in (self._task, self._verifier):
            if task is not None:
                await _cancel(task)
        # Bounded: a service that never answers the close handshake must not keep Ctrl-C waiting.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._client.config.timeout):
                await self._disconnect()
        self._ready.put_nowait(_CLOSED)
        self._client._subscription_closed(self)

    @property
    def connected(self) -> bool:
        """Whether an authorised socket is open right now."""
        return self._authorized.is_set()

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait for an authorised socket; raise the error that stopped the subscription, if one did."""
        if self._task is None:
            raise ClientStateError("the subscription is not started; use it with async with")
        authorized = asyncio.ensure_future(self._authorized.wait())
        try:
            done, _ = await asyncio.wait({authorized, self._task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            authorized.cancel()
        if self._failure is not None:
            raise self._failure
        if not done or not self._authorized.is_set():
            raise ClientConnectionError(f"no authorised socket to {self.delivery_service} within {timeout} s")

    # -- iteration ------------------------------------------------------------------------------

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> ReceivedMessage:
        item = await self._ready.get()
        if item is _CLOSED:
            self._ready.put_nowait(_CLOSED)  # for any other consumer waiting
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            self._ready.put_nowait(_CLOSED)
            raise item
        assert isinstance(item, ReceivedMessage)
        return item

    async def _verify_all(self) -> None:
        # Verification runs here, not in __anext__, so a consumer that gives up waiting (a
        # timeout around anext) never loses an envelope half-way through its checks.
        try:
            while True:
                received = await self._verify(await self._incoming.get())
                if received is not None:
                    self._ready.put_nowait(received)
        except Exception as exc:  # e.g. the service's ENS profile is gone: the subscription ends
            self._failure = exc
            self._ready.put_nowait(exc)

    async def _verify(self, raw: Any) -> ReceivedMessage | None:
        envelope_id = _id_of(raw)
        if envelope_id is not None and envelope_id in self._seen:
            return None
        try:
            profile = await self._client._delivery_service_profile(self.delivery_service)
            result = await (await self._client._receiver()).open(raw, self.delivery_service, profile)
        except (ServiceUnavailable, ClientConnectionError) as exc:
            # Still queued at the service: the next catch-up fetch brings it again.
            log.warning("could not verify a pushed message from %s now: %s", self.delivery_service, exc.message)
            return None
        if envelope_id is not None:
            self._seen[envelope_id] = None
            if len(self._seen) > _SEEN_LIMIT:
                self._seen.popitem(last=False)
        if isinstance(result, RejectedEnvelope):
            log.warning("rejected a message from %s: %s", self.delivery_service, result.error.message)
            self.rejected.append(result)
            return None
        return result

    # -- the connection -------------------------------------------------------------------------

    async def _run(self) -> None:
        config = self._client.config
        delay = config.reconnect_delay
        rejected_token: str | None = None
        try:
            while True:
                try:
                    authorized, rejected_token = await self._connect_once(rejected_token)
                except EnsignError as exc:
                    if _fatal(exc):
                        raise
                    log.info("socket to %s failed (%s); retrying in %.1f s", self.delivery_service, exc.message, delay)
                    authorized = False
                if authorized:
                    delay = config.reconnect_delay
                await asyncio.sleep(delay)
                if not authorized:
                    delay = min(delay * 2, config.reconnect_delay_max)
        except Exception as exc:  # the subscription's end: handed to whoever iterates
            self._failure = exc
            self._ready.put_nowait(exc)

    async def _connect_once(self, rejected_token: str | None) -> tuple[bool, str | None]:
        """One connection, until it ends: (whether it was authorised, a token the service refused)."""
        client = self._client
        profile = await client._delivery_service_profile(self.delivery_service)
        token = await client._sessions.token(self.delivery_service, rejected=rejected_token)
        verdict: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        ended = asyncio.Event()
        revoked = False  # told ``unauthorized`` after being authorised: the session ended
        # Reconnection is ours (fresh token each time); SIGINT stays the application's: by default
        # python-socketio installs a process-wide handler that cancels every task and stops the loop.
        sio = socketio.AsyncClient(reconnection=False, handle_sigint=False, logger=False, engineio_logger=False)

        async def on_authorized(*_: Any) -> None:
            if not verdict.done():
                verdict.set_result(True)

        async def on_unauthorized(*_: Any) -> None:
            nonlocal revoked
            if not verdict.done():
                verdict.set_result(False)
            else:
                revoked = True

        async def on_message(data: Any = None) -> None:
            self._incoming.put_nowait(data)

        async def on_disconnect(*_: Any) -> None:
            ended.set()

        sio.on("authorized", on_authorized)
        sio.on("unauthorized", on_unauthorized)
        sio.on("message", on_message)
        sio.on("disconnect", on_disconnect)
        base, path = _socket_address(profile.url)
        self._socket = sio
        try:
            try:
                await sio.connect(
                    base,
                    auth={"account": {"ensName": client.name}, "token": token},
                    transports=["websocket"],
                    socketio_path=path,
                    wait_timeout=client.config.timeout,
                )
            except socketio.exceptions.ConnectionError as exc:
                raise ClientConnectionError(f"socket.io at {base} cannot be reached ({exc})") from exc
            ending = asyncio.ensure_future(ended.wait())
            waiters: set[asyncio.Future[Any]] = {verdict, ending}
            try:
                await asyncio.wait(waiters, timeout=client.config.timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                ending.cancel()
            if not verdict.done() or not verdict.result():
                # Refused (or silent): the token is not trusted again; the next attempt logs in.
                return False, token if verdict.done() else None
            self.connections += 1
            self._authorized.set()
            if self._catch_up:
                await self._fetch_backlog()
            await ended.wait()
            # Ended by the service with its session (expired, account deleted or re-bound to
            # another key): that token is not used again.
            return True, token if revoked else None
        finally:
            self._authorized.clear()
            await self._disconnect()

    async def _fetch_backlog(self) -> None:
        cursor: str | None = None
        while True:
            envelopes, cursor = await self._client._fetch_raw(self.delivery_service, cursor=cursor, limit=100)
            for raw in envelopes:
                self._incoming.put_nowait(raw)
            if cursor is None:
                return

    async def _disconnect(self) -> None:
        sio, self._socket = self._socket, None
        if sio is not None:
            with contextlib.suppress(Exception):
                await sio.disconnect()


async def _cancel(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait until it has ended.

    Cancelled again each second while it runs: on Python 3.11 ``asyncio.wait_for`` swallows a
    cancellation that lands as the future it waits for completes (CPython gh-86296, fixed in 3.12),
    and python-socketio connects and reads through ``wait_for``; one swallowed cancel would keep the
    subscription's task, and whoever closes it (Ctrl-C in ``ensign inbox --follow``), waiting forever.
    """
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=1.0)
    if not task.cancelled():
        task.exception()  # retrieved: its failure was already handed to the iterator


def _fatal(exc: EnsignError) -> bool:
    """Errors that another attempt cannot fix."""
    if isinstance(exc, ClientStateError):
        return True
    if isinstance(exc, ApiError):
        return 400 <= exc.status < 500 and exc.status not in (401, 408, 429)
    return isinstance(exc, (NotFound, InvalidRequest))


def _socket_address(service_url: str) -> tuple[str, str]:
    """(``scheme://host:port``, engine.io path) for a service at ``service_url`` (which may have a path)."""
    parts = urlsplit(service_url)
    prefix = parts.path.strip("/")
    return f"{parts.scheme}://{parts.netloc}", f"{prefix}/socket.io" if prefix else "socket.io"
