"""Sending notifications: who is offline, the job queue, and the background worker.

When intake stores a new message for an account whose ``notify`` flag is set (the account hash
says it has notifications on and an enabled, verified channel: :mod:`delivery.notifications`),
it calls :meth:`Notifier.message_stored`, which adds a job in a background task and returns at
once: the submission's answer never waits for it, and a failure there is logged, never raised
into intake. Everything else happens in the worker, a background task of every process:

1. claim due jobs (``notify_jobs.lua``: atomically, leased for :data:`LEASE` seconds, so two
   processes never take the same job and a job of a process that died comes back);
2. skip the account when it is gone, suspended, has notifications off, or is **online**;
3. per enabled and verified channel, at most one notification per ``NOTIFY_INTERVAL`` seconds
   (``SET NX EX``): a burst of messages to an offline receiver sends one email, not a hundred;
4. send; a failure that may pass is retried as its own job (``new:<address>:<TYPE>``) after
   ``retry_delay · 2^attempt`` seconds (at most an hour), up to ``NOTIFY_MAX_ATTEMPTS`` attempts;
   a permanent failure (address refused, subscription gone) is dropped and logged.

Jobs coalesce: while a new-message job for an account is pending, further messages add nothing.

Online, across processes
========================

A receiver is online when a socket of theirs is connected to *any* process. Each process writes
its presence per account into ``{prefix}online:{<tag>}``, a ZSET whose members are process ids and
whose scores are the time (app clock) until which the entry holds: written when an account's
first socket connects here, refreshed every :data:`PRESENCE_REFRESH` seconds for each account with
sockets here, removed when its last socket here disconnects. An entry lives :data:`PRESENCE_TTL`
seconds past its last refresh, so a process that dies without cleaning up makes its receivers look
online for at most that long (they then miss notifications, never get extra ones). The check is
one ``ZCOUNT`` of entries still valid.

Redis keys: ``online:``, ``notified:``, ``notify-due:``, ``notify-job:``, named and described in
:mod:`delivery.keys`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
from collections import Counter as Tally
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import Counter
from redis.exceptions import RedisError

from ensign.background import Background
from ensign.config import NotificationSettings
from ensign.redis_client import RedisClient, lua_script

from .accounts import Accounts
from .errors import ChannelNotSupported, InvalidRecipient, NotificationUnavailable
from .keys import notified_key, notify_job_keys, online_key
from .metrics import DeliveryMetrics
from .notifications import NotificationStore
from .notify_senders import NEW_MESSAGE_TITLE, EmailSender, PushSender, SendFailed, new_message_text
from .ports import Clock

__all__ = [
    "BATCH",
    "LEASE",
    "PRESENCE_REFRESH",
    "PRESENCE_TTL",
    "NotificationJobs",
    "Notifier",
    "Presence",
    "notifier_ctx",
    "notifier_key",
    "presence_joined",
    "presence_left",
]

log = logging.getLogger(__name__)

PRESENCE_TTL = 90.0  # seconds an online entry holds past its last refresh
PRESENCE_REFRESH = 30.0  # seconds between refreshes
LEASE = 120  # seconds a claimed job is held before it is due again
BATCH = 16  # jobs claimed and sent concurrently per round
POLL = 1.0  # seconds between rounds when no job is due
MAX_RETRY_DELAY = 3600.0


# -- Presence ----------------------------------------------------------------------------------


class Presence:
    """This process's part of the cross-process online table (module docstring).

    Redis failures here are logged and swallowed: a socket must never fail because presence
    could not be written (the receiver then merely gets a notification they did not need).
    """

    def __init__(self, redis: RedisClient, *, prefix: str, clock: Clock) -> None:
        self._redis = redis
        self._prefix = prefix
        self._clock = clock
        self.process_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._local: Tally[str] = Tally()

    async def joined(self, address: str) -> None:
        self._local[address] += 1
        if self._local[address] == 1:
            await self._mark([address])

    async def left(self, address: str) -> None:
        self._local[address] -= 1
        if self._local[address] <= 0:
            del self._local[address]
            with contextlib.suppress(RedisError, OSError):
                await self._redis.zrem(online_key(self._prefix, address), self.process_id)

    async def refresh(self) -> None:
        if self._local:
            await self._mark(list(self._local))

    async def _mark(self, addresses: list[str]) -> None:
        until = self._clock() + PRESENCE_TTL
        try:
            for address in addresses:
                key = online_key(self._prefix, address)
                pipe = self._redis.pipeline(transaction=False)
                pipe.zadd(key, {self.process_id: until})
                pipe.expire(key, int(PRESENCE_TTL * 2))
                await pipe.execute()
        except (RedisError, OSError):
            log.warning("presence: could not write to Redis", exc_info=True)

    async def online(self, address: str) -> bool:
        """Whether any process holds a valid entry for ``address``."""
        return bool(await self._redis.zcount(online_key(self._prefix, address), f"({self._clock()!r}", "+inf"))


# -- Jobs --------------------------------------------------------------------------------------


class NotificationJobs:
    """The Redis job queue (``notify_jobs.lua``)."""

    def __init__(self, redis: RedisClient, *, prefix: str) -> None:
        self._keys = notify_job_keys(prefix)
        self._script = redis.register_script(lua_script("delivery.lua", "notify_jobs"))

    async def add(self, job_id: str, payload: dict[str, Any], due: float) -> bool:
        return bool(await self._script(keys=self._keys, args=["add", job_id, json.dumps(payload), repr(due)]))

    async def retry(self, job_id: str, payload: dict[str, Any], due: float) -> None:
        await self._script(keys=self._keys, args=["retry", job_id, json.dumps(payload), repr(due)])

    async def done(self, job_id: str) -> None:
        await self._script(keys=self._keys, args=["done", job_id])

    async def claim(self, now: float, *, lease: int = LEASE, limit: int = BATCH) -> list[tuple[str, dict[str, Any]]]:
        reply: list[Any] = await self._script(keys=self._keys, args=["claim", repr(now), lease, limit])
        jobs = []
        for i in range(0, len(reply), 2):
            job_id = reply[i].decode() if isinstance(reply[i], bytes) else reply[i]
            jobs.append((job_id, json.loads(reply[i + 1])))
        return jobs


# -- The notifier ------------------------------------------------------------------------------


class Notifier:
    """Schedules, sends and retries notifications; sends one-time-password emails for the routes.

    :param settings: ``SMTP_*``, ``VAPID_*`` and the limits.
    :param service_name: this delivery service's ENS name, the only thing a notification names.
    """

    def __init__(
        self,
        redis: RedisClient,
        *,
        prefix: str,
        settings: NotificationSettings,
        service_name: str,
        accounts: Accounts,
        store: NotificationStore,
        metrics: DeliveryMetrics,
        clock: Clock,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._s = settings
        self._service_name = service_name
        self._accounts = accounts
        self.store = store
        self._clock = clock
        self.presence = Presence(redis, prefix=prefix, clock=clock)
        self.jobs = NotificationJobs(redis, prefix=prefix)
        self.email = EmailSender(settings) if settings.email_enabled else None
        self.push = PushSender(settings) if settings.push_enabled else None
        self.sent = Counter(
            "ensign_ds_notifications", "Notifications by channel and outcome (sent, failed, retried)",
            ["channel", "outcome"], registry=metrics.registry,
        )
        self._pending = Background()  # message_stored's jobs still being queued
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def supports(self, kind: str) -> bool:
        return (self.email if kind == "EMAIL" else self.push) is not None

    # -- from intake ---------------------------------------------------------------------------

    def message_stored(self, address: str) -> None:
        """Queue a new-message notification for ``address`` in the background; returns at once."""
        self._pending.start(self._schedule(address))

    async def _schedule(self, address: str) -> None:
        try:
            await self.jobs.add(f"new:{address}", {"account": address, "channel": None, "attempt": 0}, self._clock())
        except Exception:
            log.warning("notification not queued", exc_info=True)

    # -- from the routes -----------------------------------------------------------------------

    async def send_otp(self, address: str, recipient: str) -> None:
        """Issue a one-time password for ``recipient`` and mail it (the sending limit applies)."""
        if self.email is None:
            raise ChannelNotSupported("Notification channel EMAIL is currently not supported by the DS")
        code = await self.store.issue_otp(address, recipient)
        minutes = max(1, self._s.otp_ttl // 60)
        text = (
            f"Your verification code for notifications from {self._service_name} is {code}.\n"
            f"It expires in {minutes} minute{'s' if minutes != 1 else ''}. If you did not ask for it, ignore this email."
        )
        try:
            await self.email.send(recipient, "Email Verification", text)
        except SendFailed as exc:
            self.sent.labels("EMAIL", "failed").inc()
            if exc.permanent:
                raise InvalidRecipient("the mail server refused this address") from None
            raise NotificationUnavailable("the verification email could not be sent; try again later") from None
        self.sent.labels("EMAIL", "otp").inc()

    # -- the worker ----------------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._tasks = [
            asyncio.create_task(self._run(), name="delivery-notifier"),
            asyncio.create_task(self._refresh_presence(), name="delivery-presence"),
        ]

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._pending.wait()
        self._tasks = []
        if self.push is not None:
            await self.push.close()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def _refresh_presence(self) -> None:
        while not self._stop.is_set():
            await self._sleep(PRESENCE_REFRESH)
            await self.presence.refresh()

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                handled = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("notifier: round failed; retrying", exc_info=True)
                handled = 0
            if handled == 0:
                await self._sleep(POLL)

    async def run_once(self) -> int:
        """Claim the jobs due now and handle them; returns how many were claimed. Jobs this
        process is still adding (:meth:`message_stored`) are added first."""
        await self._pending.wait()
        jobs = await self.jobs.claim(self._clock())
        await asyncio.gather(*(self._handle(job_id, job) for job_id, job in jobs))
        return len(jobs)

    async def _handle(self, job_id: str, job: dict[str, Any]) -> None:
        address, kind, attempt = str(job["account"]), job.get("channel"), int(job.get("attempt", 0))
        try:
            if await self._wanted(address):
                state = await self.store.state(address)
                kinds = [kind] if kind else [k for k, c in state.channels.items() if c.active]
                for k in kinds:
                    channel = state.channels.get(k)
                    if state.enabled and channel is not None and channel.active and self.supports(k):
                        if kind is None and not await self._interval_free(address, k):
                            continue
                        if not await self._send(address, k, channel.recipient, attempt):
                            if kind is not None:
                                return  # this retry job was re-scheduled under its own id
            await self.jobs.done(job_id)
        except (RedisError, OSError):
            # The lease brings the job back; nothing to do but say so.
            log.warning("notifier: Redis failed during a job", exc_info=True)
        except Exception:
            # A job that cannot be handled (a bug, a corrupt record) must not come back forever.
            log.exception("notifier: dropping a job that failed")
            with contextlib.suppress(RedisError, OSError):
                await self.jobs.done(job_id)

    async def _wanted(self, address: str) -> bool:
        account = await self._accounts.get(address)
        if account is None or account.suspended or not account.notify:
            return False
        return not await self.presence.online(address)

    async def _interval_free(self, address: str, kind: str) -> bool:
        if self._s.notify_interval == 0:
            return True
        key = notified_key(self._prefix, address, kind)
        return bool(await self._redis.set(key, "1", nx=True, ex=self._s.notify_interval))

    async def _send(self, address: str, kind: str, recipient: str, attempt: int) -> bool:
        """Send one notification; on failure schedule its retry. ``True`` when it was sent."""
        text = new_message_text(self._service_name)
        try:
            if kind == "EMAIL":
                assert self.email is not None
                await self.email.send(recipient, f"New message at {self._service_name}", text)
            else:
                assert self.push is not None
                await self.push.send(json.loads(recipient), {"title": NEW_MESSAGE_TITLE, "body": text})
        except SendFailed as exc:
            attempt += 1
            if exc.permanent or attempt >= self._s.max_attempts:
                self.sent.labels(kind, "failed").inc()
                log.warning("notification dropped after %d attempt(s): %s", attempt, exc, extra={"channel": kind})
                return True  # nothing more to do for it
            delay = min(MAX_RETRY_DELAY, self._s.retry_delay * 2 ** (attempt - 1))
            await self.jobs.retry(
                f"new:{address}:{kind}", {"account": address, "channel": kind, "attempt": attempt}, self._clock() + delay
            )
            self.sent.labels(kind, "retried").inc()
            log.info("notification failed (%s); retry %d in %.0f s", exc, attempt, delay, extra={"channel": kind})
            return False
        self.sent.labels(kind, "sent").inc()
        return True


notifier_key = web.AppKey("notifier_key", Notifier)


def notifier_ctx(*, run_worker: bool = True) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context for the app's notifier (``app[notifier_key]``, set once its clients
    exist): runs its worker while the app runs when ``run_worker``, and closes it at the end."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        notifier = app[notifier_key]
        if run_worker:
            notifier.start()
        yield
        await notifier.stop()

    return ctx


async def presence_joined(app: web.Application, address: str) -> None:
    """Socket hooks (:mod:`delivery.push`): an authorised socket of ``address`` connected here."""
    await _presence(app, lambda p: p.joined(address))


async def presence_left(app: web.Application, address: str) -> None:
    await _presence(app, lambda p: p.left(address))


async def _presence(app: web.Application, call: Any) -> None:
    notifier = app.get(notifier_key)
    if notifier is not None:
        awaitable: Awaitable[None] = call(notifier.presence)
        await awaitable
