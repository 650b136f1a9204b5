"""Session tokens at delivery services: log in when needed, again when a token stops working.

A session is a 1-hour JWT (``specs/delivery.md`` §3). The SDK keeps one per delivery service and
logs in again

* before a request, when the token's ``exp`` (read without verifying: only the service can) is
  less than :data:`RENEW_BEFORE` seconds away on the client's clock;
* after a 401, once: the service's clock, a deleted and re-created account or a rotated secret can
  end a session early, and the request is then retried with the new token.

Concurrent requests share one login per service: whoever finds the token missing or rejected
logs in, the others wait for that token.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import jwt

from ._errors import ApiError

T = TypeVar("T")

#: Seconds before a token's expiry at which it is renewed instead of used.
RENEW_BEFORE = 60.0


@dataclass(frozen=True)
class Session:
    token: str
    expires_at: float | None  # seconds since the epoch, from the token's ``exp``


def token_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT, unverified; ``None`` when there is none to read."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    exp = claims.get("exp")
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


class Sessions:
    """Tokens by delivery service; ``login(service)`` makes a new one."""

    def __init__(self, login: Callable[[str], Awaitable[str]], clock: Callable[[], float]) -> None:
        self._login = login
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def _usable(self, session: Session | None, rejected: str | None) -> bool:
        if session is None or session.token == rejected:
            return False
        return session.expires_at is None or session.expires_at - RENEW_BEFORE > self._clock()

    async def token(self, service: str, *, rejected: str | None = None) -> str:
        """A usable token for ``service``, logging in if there is none, it is about to expire, or
        it is ``rejected`` (the token a 401 just refused)."""
        session = self._sessions.get(service)
        if self._usable(session, rejected):
            assert session is not None
            return session.token
        lock = self._locks.setdefault(service, asyncio.Lock())
        async with lock:
            # Another task may have logged in while this one waited.
            session = self._sessions.get(service)
            if self._usable(session, rejected):
                assert session is not None
                return session.token
            token = await self._login(service)
            self._sessions[service] = Session(token, token_expiry(token))
            return token

    def forget(self, service: str) -> None:
        """Drop the token of ``service`` (its account was deleted)."""
        self._sessions.pop(service, None)

    async def call(self, service: str, request: Callable[[str], Awaitable[T]]) -> T:
        """``request(token)``; after a 401, once more with a fresh token."""
        token = await self.token(service)
        try:
            return await request(token)
        except ApiError as exc:
            if exc.status != 401:
                raise
        token = await self.token(service, rejected=token)
        return await request(token)


