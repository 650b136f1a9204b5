"""The two ways a notification leaves the service: email over SMTP and web push with VAPID.

* :class:`EmailSender` — ``aiosmtplib`` (asyncio SMTP client, kept up to date, STARTTLS and
  implicit TLS, AUTH) with the ``SMTP_*`` settings; one connection per email, a timeout on each.
* :class:`PushSender` — ``pywebpush`` (the reference Python web-push library: RFC 8291
  ``aes128gcm`` payload encryption to the subscription's keys, RFC 8292 VAPID JWT signed with
  ``VAPID_PRIVATE_KEY``) over one shared aiohttp session whose resolver refuses private
  addresses (:class:`PublicResolver`), so a subscription cannot point the service inside its own
  network.

What they send never carries message content, sender or subject: only that a message arrived and
at which delivery service (:func:`new_message_text`). Failures raise :class:`SendFailed`, whose
``permanent`` says whether retrying could help (a subscription the push service says is gone, an
address the mail server refuses outright).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import socket
from email.message import EmailMessage
from typing import Any

import aiohttp
import aiosmtplib
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from py_vapid import Vapid  # type: ignore[import-untyped]
from pywebpush import WebPushException, webpush_async  # type: ignore[import-untyped]

from ensign.config import NotificationSettings

from .errors import InvalidRecipient
from .notifications import check_endpoint

__all__ = ["EmailSender", "PublicResolver", "PushSender", "SendFailed", "new_message_text"]

log = logging.getLogger(__name__)

PUSH_TIMEOUT = 10.0  # seconds for one push request
PUSH_TTL = 24 * 3600  # seconds a push service may hold a notification for an offline browser
NEW_MESSAGE_TITLE = "New Message"


def new_message_text(service_name: str) -> str:
    """The whole content of a new-message notification."""
    return f"You have a new message at {service_name}. Open your dm3 app to read it."


class SendFailed(Exception):
    """A notification was not delivered. ``permanent``: retrying cannot help."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class EmailSender:
    """Sends plain-text emails through the configured SMTP server."""

    def __init__(self, settings: NotificationSettings) -> None:
        self._s = settings

    async def send(self, to: str, subject: str, text: str) -> None:
        s = self._s
        message = EmailMessage()
        message["From"] = s.smtp_from
        message["To"] = to
        message["Subject"] = subject
        message.set_content(text)
        try:
            await aiosmtplib.send(
                message,
                hostname=s.smtp_host,
                port=s.smtp_port,
                username=s.smtp_user,
                password=s.smtp_password,
                use_tls=s.smtp_tls == "tls",
                start_tls=True if s.smtp_tls == "starttls" else False,
                timeout=s.smtp_timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            # 5xx for the recipient is final; 4xx (greylisting, mailbox busy) may pass later.
            codes = [r.code for r in exc.recipients]
            raise SendFailed(f"the mail server refused the recipient ({codes})",
                             permanent=all(c >= 500 for c in codes)) from None
        except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as exc:
            # The exception text may quote the server's answer, never our password: keep the type.
            raise SendFailed(f"SMTP send failed ({type(exc).__name__})") from None


class PublicResolver(AbstractResolver):
    """aiohttp's resolver, keeping only public addresses (no loopback, private, link-local…)."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        public = [r for r in results if ipaddress.ip_address(r["host"]).is_global]
        if not public:
            raise OSError(f"{host} resolves to no public address")
        return public

    async def close(self) -> None:
        await self._inner.close()


class PushSender:
    """Sends web-push notifications with this service's VAPID key.

    Call :meth:`close` when done (the worker does, on shutdown).
    """

    def __init__(self, settings: NotificationSettings) -> None:
        self._s = settings
        self._vapid = Vapid.from_string(private_key=settings.vapid_private_key)
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            resolver = None if self._s.allow_private_push else PublicResolver()
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(resolver=resolver, limit=32),
                timeout=aiohttp.ClientTimeout(total=PUSH_TIMEOUT),
            )
        return self._session

    async def send(self, subscription: dict[str, Any], payload: dict[str, Any]) -> None:
        try:
            # Checked again at send time: the rules may have tightened since the channel was added.
            check_endpoint(subscription["endpoint"], allow_private=self._s.allow_private_push)
        except InvalidRecipient as exc:
            raise SendFailed(exc.message, permanent=True) from None
        try:
            await webpush_async(
                subscription_info=subscription,
                data=json.dumps(payload),
                vapid_private_key=self._vapid,
                # pywebpush fills in aud (the endpoint's origin) and exp (12 h); copy, it mutates.
                vapid_claims={"sub": self._s.vapid_subject},
                ttl=PUSH_TTL,
                timeout=PUSH_TIMEOUT,
                aiohttp_session=self._http(),
            )
        except WebPushException as exc:
            status = getattr(exc.response, "status", None)
            # 404/410: the subscription is gone; other 4xx but 429: the request itself is wrong.
            permanent = status is not None and 400 <= status < 500 and status != 429
            raise SendFailed(f"the push service answered {status}", permanent=permanent) from None
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            raise SendFailed(f"push send failed ({type(exc).__name__})") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
