"""A real SMTP server (aiosmtpd) and a web-push service for the notification tests.

Both listen on 127.0.0.1, on ports the OS picks, in the test's own event loop.

* :class:`MailServer` — aiosmtpd's SMTP protocol on a plain asyncio server; keeps every message.
* :class:`PushService` — what a browser vendor's push service does with a notification: checks the
  RFC 8292 VAPID ``Authorization: vapid t=<JWT>, k=<key>`` header (ES256 signature by that key,
  ``aud`` the endpoint's origin, ``exp`` in the future, ``sub`` a contact, the key the one the
  service was configured with) and decrypts the RFC 8291 ``aes128gcm`` body with the
  subscription's private key and auth secret, as the browser would.
"""

from __future__ import annotations

import asyncio
import base64
import email
import json
import os
import time
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

import http_ece
import jwt
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_vapid_key() -> tuple[str, str]:
    """(VAPID_PRIVATE_KEY as the setting takes it, the public key as browsers get it)."""
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return b64url(key.private_numbers().private_value.to_bytes(32, "big")), b64url(public)


class MailServer:
    """An SMTP server keeping what it receives in :attr:`messages`; with ``login`` it requires
    SMTP AUTH with that (user, password) before it takes mail."""

    def __init__(self, login: tuple[str, str] | None = None) -> None:
        self.login = login
        self.messages: list[Message] = []
        self.recipients: list[list[str]] = []
        self.arrived = asyncio.Event()
        self._server: asyncio.base_events.Server | None = None
        self.port = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        self.messages.append(email.message_from_bytes(raw))
        self.recipients.append(list(envelope.rcpt_tos))
        self.arrived.set()
        return "250 Message accepted for delivery"

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
        assert self.login is not None
        ok = isinstance(data, LoginPassword) and (data.login.decode(), data.password.decode()) == self.login
        return AuthResult(success=ok)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()

        def protocol() -> SMTP:
            if self.login is None:
                return SMTP(self, hostname="mail.test")
            return SMTP(self, hostname="mail.test", authenticator=self._authenticate, auth_required=True,
                        auth_require_tls=False)

        self._server = await loop.create_server(protocol, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def text(self, index: int = -1) -> str:
        message = self.messages[index]
        payload = message.get_payload(decode=True)
        assert isinstance(payload, bytes)
        return payload.decode()


@dataclass
class Subscription:
    """A browser's push subscription: its endpoint and its keys (private one kept for decrypting)."""

    endpoint: str
    private_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    auth: bytes = field(default_factory=lambda: os.urandom(16))

    def to_json(self) -> dict[str, Any]:
        public = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {"endpoint": self.endpoint, "expirationTime": None, "keys": {"p256dh": b64url(public), "auth": b64url(self.auth)}}


class PushService:
    """A push service on loopback. ``statuses`` is what it answers next (default 201)."""

    def __init__(self, vapid_public_key: str, subject: str) -> None:
        self.vapid_public_key = vapid_public_key
        self.subject = subject
        self.subscriptions: dict[str, Subscription] = {}
        self.received: list[dict[str, Any]] = []
        self.refused: list[str] = []
        self.statuses: list[int] = []
        self.requests = 0
        app = web.Application()
        app.router.add_post("/push/{id}", self._push)
        self._server = TestServer(app, host="127.0.0.1")

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
        assert self.login is not None
        ok = isinstance(data, LoginPassword) and (data.login.decode(), data.password.decode()) == self.login
        return AuthResult(success=ok)

    async def start(self) -> None:
        await self._server.start_server()

    async def stop(self) -> None:
        await self._server.close()

    def subscribe(self, name: str) -> Subscription:
        subscription = Subscription(str(self._server.make_url(f"/push/{name}")))
        self.subscriptions[name] = subscription
        return subscription

    async def _push(self, request: web.Request) -> web.Response:
        self.requests += 1
        status = self.statuses.pop(0) if self.statuses else 201
        if status >= 400:
            return web.Response(status=status)
        subscription = self.subscriptions[request.match_info["id"]]
        problem = self._check_vapid(request, subscription)
        if problem:
            self.refused.append(problem)
            return web.Response(status=403, text=problem)
        if request.headers.get("Content-Encoding") != "aes128gcm":
            self.refused.append("content encoding")
            return web.Response(status=400)
        plain = http_ece.decrypt(
            await request.read(), private_key=subscription.private_key, auth_secret=subscription.auth, version="aes128gcm"
        )
        self.received.append({"subscription": request.match_info["id"], "payload": json.loads(plain),
                              "ttl": request.headers.get("TTL")})
        return web.Response(status=201)

    def _check_vapid(self, request: web.Request, subscription: Subscription) -> str | None:
        scheme, _, params = request.headers.get("Authorization", "").partition(" ")
        if scheme != "vapid":
            return "no vapid authorization"
        fields = dict(part.strip().split("=", 1) for part in params.split(","))
        if fields.get("k") != self.vapid_public_key:
            return "not the service's VAPID key"
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(fields["k"]))
        origin = subscription.endpoint.split("/push/")[0]
        try:
            claims = jwt.decode(fields["t"], key, algorithms=["ES256"], audience=origin)
        except jwt.InvalidTokenError as exc:
            return f"bad VAPID JWT: {exc}"
        if claims.get("sub") != self.subject or not claims["exp"] > time.time():
            return "bad VAPID claims"
        return None
