"""Notification channels of an account (dm3's ``/notifications`` routes) and their rules.

An account may register one channel per type, dm3's shape::

    {"type": "EMAIL" | "PUSH",
     "config": {"recipientValue": "<email address | JSON web-push subscription>",
                "isEnabled": bool, "isVerified": bool}}

behind a global switch ``{isEnabled}`` that starts off. A ``PUSH`` channel is verified when added
(the subscription came from the owner's own browser); an ``EMAIL`` channel is verified by a
one-time password mailed to it. Notifications go only to channels that are enabled and verified,
and only while the switch is on (:mod:`delivery.notify_worker` sends them).

Where it is stored
==================

In the account hash itself (``{prefix}account:{<tag>}``, :mod:`delivery.accounts`), so deleting
the account deletes its channels in the same script, and intake, which reads the hash anyway,
learns for free whether a new message needs a notification:

``notify:global``  ``"1"`` / ``"0"``
``notify:EMAIL``, ``notify:PUSH``  JSON ``{recipientValue, isEnabled, isVerified}``
``notify``  ``"1"`` when the switch is on and a channel is enabled and verified (absent otherwise);
            recomputed by ``account_fields.lua`` on every change, never written elsewhere

Every write is ``account_fields.lua``: only while the account exists.

One-time passwords (email verification)
=======================================

Five decimal digits (dm3's clients have five boxes), drawn with :mod:`secrets`. Kept hashed
(SHA-256) with the address they were sent to, for ``otp_ttl`` seconds, in
``{prefix}otp:{<tag>}``; ``otp_max_attempts`` wrong guesses delete it (``otp_check.lua``), and a
password verifies the channel only while the channel still holds the address it was sent to.
Sending is limited per account (``send_limit.lua``): one email per ``otp_resend_interval``
seconds and ``otp_daily_limit`` a day, so the service cannot be used to mail-bomb an address.
At the defaults (5 guesses per password, 10 passwords a day) a guesser has 50 tries in 100,000
per day.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ensign.config import NotificationSettings
from ensign.redis_client import RedisClient, lua_script

from .errors import (
    InvalidChannelType,
    InvalidRecipient,
    OtpAttemptsExceeded,
    OtpInvalid,
    OtpMissing,
    OtpRateLimited,
)
from .keys import account_key, otp_day_key, otp_key, otp_wait_key

__all__ = [
    "CHANNEL_TYPES",
    "Channel",
    "NotificationState",
    "NotificationStore",
    "channel_type",
    "check_email",
    "check_endpoint",
    "check_subscription",
    "new_otp",
    "same_recipient",
]

CHANNEL_TYPES = ("EMAIL", "PUSH")
OTP_DIGITS = 5
DAY = 86_400
MAX_EMAIL_LENGTH = 254
MAX_ENDPOINT_LENGTH = 2048
GLOBAL_FIELD = "notify:global"

# A practical address check, not RFC 5322: one @, no spaces or angle brackets, a dotted domain.
_EMAIL = re.compile(r"[^\s@<>()\[\],;:\"]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+")


# -- Channels --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Channel:
    type: str
    recipient: str
    enabled: bool
    verified: bool

    def config(self) -> dict[str, Any]:
        return {"recipientValue": self.recipient, "isEnabled": self.enabled, "isVerified": self.verified}

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "config": self.config()}

    @property
    def active(self) -> bool:
        return self.enabled and self.verified


@dataclass(frozen=True)
class NotificationState:
    """An account's switch and channels, as stored."""

    exists: bool
    enabled: bool
    channels: dict[str, Channel]


def channel_type(value: object) -> str:
    """A channel type from a request; dm3's messages for a missing or unknown one."""
    if value is None or value == "":
        raise InvalidChannelType("Notification Channel Type is missing")
    if value not in CHANNEL_TYPES:
        raise InvalidChannelType("Invalid notification channel type")
    return str(value)


def check_email(value: str) -> str:
    if len(value) > MAX_EMAIL_LENGTH or not _EMAIL.fullmatch(value):
        raise InvalidRecipient("Invalid Email Id")
    return value


def _b64url(value: object, length: int) -> bool:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_-]+={0,2}", value):
        return False
    try:
        return len(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))) == length
    except ValueError:
        return False


def check_subscription(value: str, *, allow_private: bool) -> dict[str, Any]:
    """A web-push subscription ``{endpoint, keys: {p256dh, auth}}`` as a browser's
    ``PushSubscription.toJSON()`` gives it (``expirationTime`` allowed). The endpoint must be
    ``https://`` on a public host; with ``allow_private`` also ``http://`` and private addresses."""
    try:
        sub = json.loads(value)
    except (json.JSONDecodeError, RecursionError):
        raise InvalidRecipient("Invalid subscription data") from None
    if (
        not isinstance(sub, dict)
        or not set(sub) <= {"endpoint", "keys", "expirationTime"}
        or not isinstance(sub.get("endpoint"), str)
        or not isinstance(sub.get("keys"), dict)
        or set(sub["keys"]) != {"p256dh", "auth"}
        or not _b64url(sub["keys"]["p256dh"], 65)
        or not _b64url(sub["keys"]["auth"], 16)
    ):
        raise InvalidRecipient("Invalid subscription data: expected {endpoint, keys: {p256dh, auth}}")
    check_endpoint(sub["endpoint"], allow_private=allow_private)
    return {"endpoint": sub["endpoint"], "keys": dict(sub["keys"])}


def check_endpoint(endpoint: str, *, allow_private: bool) -> None:
    """Refuse push endpoints this service must not be made to call (SSRF): not https, or an IP
    literal that is not a public address. Host names are checked again when connecting
    (:class:`delivery.notify_senders.PublicResolver`), so DNS cannot point them inside."""
    if len(endpoint) > MAX_ENDPOINT_LENGTH:
        raise InvalidRecipient("the push endpoint is too long")
    parts = urlsplit(endpoint)
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in schemes or not parts.hostname or parts.username or parts.password:
        raise InvalidRecipient("the push endpoint must be an https:// URL")
    if not allow_private:
        try:
            address = ipaddress.ip_address(parts.hostname)
        except ValueError:
            return
        if not address.is_global:
            raise InvalidRecipient("the push endpoint must be on a public address")


def new_otp() -> str:
    """Five decimal digits from the OS's CSPRNG."""
    return f"{secrets.randbelow(10**OTP_DIGITS):0{OTP_DIGITS}d}"


def _otp_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


class NotificationStore:
    """Reads and writes an account's notification fields and one-time passwords.

    :param redis: client; :param prefix: the key prefix; :param settings: the OTP limits.
    """

    def __init__(self, redis: RedisClient, *, prefix: str, settings: NotificationSettings) -> None:
        self._redis = redis
        self._prefix = prefix
        self._settings = settings
        self._fields = redis.register_script(lua_script("delivery.lua", "account_fields"))
        self._otp_check = redis.register_script(lua_script("delivery.lua", "otp_check"))
        self._send_limit = redis.register_script(lua_script("delivery.lua", "send_limit"))

    async def state(self, address: str) -> NotificationState:
        fields = ["created", GLOBAL_FIELD, *(f"notify:{kind}" for kind in CHANNEL_TYPES)]
        raw = [_text(v) for v in await self._redis.hmget(account_key(self._prefix, address), fields)]
        channels: dict[str, Channel] = {}
        for kind, text in zip(CHANNEL_TYPES, raw[2:]):
            if text:
                config = json.loads(text)
                channels[kind] = Channel(kind, config["recipientValue"], config["isEnabled"], config["isVerified"])
        return NotificationState(exists=raw[0] is not None, enabled=raw[1] == "1", channels=channels)

    async def write(self, address: str, values: dict[str, str], remove: tuple[str, ...] = ()) -> bool:
        """Set ``values`` and remove ``remove`` in the account hash while it exists (and refresh
        the ``notify`` summary); ``False`` when there is no account. Also used by operator tools."""
        args: list[str] = [str(len(values))]
        for name, value in values.items():
            args += [name, value]
        args += list(remove)
        return bool(await self._fields(keys=[account_key(self._prefix, address)], args=args))

    async def set_global(self, address: str, enabled: bool) -> bool:
        return await self.write(address, {GLOBAL_FIELD: "1" if enabled else "0"})

    async def put_channel(self, address: str, channel: Channel) -> bool:
        return await self.write(address, {f"notify:{channel.type}": json.dumps(channel.config())})

    async def remove_channel(self, address: str, kind: str) -> bool:
        if kind == "EMAIL":
            await self._redis.delete(otp_key(self._prefix, address))
        return await self.write(address, {}, (f"notify:{kind}",))

    async def issue_otp(self, address: str, recipient: str) -> str:
        """A new password for ``recipient``, after the sending limit allows it (429 otherwise)."""
        s = self._settings
        wait = int(
            await self._send_limit(
                keys=[otp_wait_key(self._prefix, address), otp_day_key(self._prefix, address)],
                args=[s.otp_resend_interval, s.otp_daily_limit, DAY],
            )
        )
        if wait > 0:
            raise OtpRateLimited(
                f"New OTP can be generated after {wait} seconds", details={"retryAfter": wait}
            )
        code = new_otp()
        key = otp_key(self._prefix, address)
        pipe = self._redis.pipeline(transaction=False)
        pipe.delete(key)
        pipe.hset(key, mapping={"code": _otp_hash(code), "recipient": recipient, "attempts": 0})
        pipe.expire(key, s.otp_ttl)
        await pipe.execute()
        return code

    async def check_otp(self, address: str, code: str) -> str:
        """Use a password; returns the address it was sent to. Raises :class:`OtpMissing`,
        :class:`OtpInvalid` or :class:`OtpAttemptsExceeded`."""
        key = otp_key(self._prefix, address)
        recipient = _text(await self._redis.hget(key, "recipient"))
        # The comparison is of hashes inside Redis; a wrong code of the right length is no faster
        # to reject than a right one is to accept, and the attempts bound guessing anyway.
        result = int(await self._otp_check(keys=[key], args=[_otp_hash(code), self._settings.otp_max_attempts]))
        if result == 1 and recipient is not None:
            return recipient
        if result == 0:
            raise OtpInvalid("Invalid OTP")
        if result == -2:
            raise OtpAttemptsExceeded("Too many wrong OTPs; request a new one")
        raise OtpMissing("Otp not found, please resend the OTP for verification")


def same_recipient(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
