"""dm3's notification routes (``/notifications/*``), behind the session token of ``{ensName}``.

=================================================  =============================================  ==============
route                                              body                                           answer
=================================================  =============================================  ==============
``POST   /notifications/global/<name>``            ``{isEnabled: bool}``                          ``OK``
``GET    /notifications/global/<name>``            —                                              ``{isEnabled}``
``POST   /notifications/<name>``                   ``{recipientValue, notificationChannelType}``  ``OK``
``GET    /notifications/<name>``                   —                                              ``{notificationChannels}``
``POST   /notifications/otp/<name>``               ``{notificationChannelType}``                  ``OK``
``POST   /notifications/otp/verify/<name>``        ``{otp, notificationChannelType}``             ``OK``
``POST   /notifications/channel/<name>``           ``{notificationChannelType, isEnabled}``       ``OK``
``DELETE /notifications/channel/<type>/<name>``    —                                              ``{message}``
=================================================  =============================================  ==============

Paths, bodies and answers are dm3's (``OK`` is the text/plain body of dm3's ``sendStatus(200)``),
and so are the rules: every route but the two GETs needs the global switch on; adding a channel
replaces the one of its type, enabled and unverified; ``PUSH`` is verified at once, ``EMAIL`` gets
a one-time password (:mod:`delivery.notifications`). Refusals are 400 with the error body, whose
``message`` is dm3's error text where dm3 has one; the password sending limit answers 429 (with
``Retry-After``) and a mail server that cannot be reached 503.

The bodies are checked here rather than with a schema of :mod:`delivery.schemas`: dm3 ignores
fields it does not know and answers each problem with its own text, in its own order (the type,
then the value, then the switch), and dm3's clients show that text.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from ensign.answers import http_response
from ensign.errors import TooManyRequests
from ensign.protocol.canonical import stringify
from ensign.web import read_json

from .errors import (
    ChannelAlreadyVerified,
    ChannelNotConfigured,
    ChannelNotEnabled,
    ChannelNotSupported,
    InvalidRecipient,
    InvalidValue,
    NotificationsOff,
    OtpInvalid,
    OtpMissing,
)
from .notifications import (
    Channel,
    NotificationState,
    channel_type,
    check_email,
    check_subscription,
    same_recipient,
)
from .notify_worker import Notifier, notifier_key
from .appkeys import settings_key
from .web_auth import require_session

log = logging.getLogger(__name__)

__all__ = [
    "add_channel",
    "get_channels",
    "get_global",
    "remove_channel",
    "resend_otp",
    "routes",
    "set_global",
    "toggle_channel",
    "verify_otp",
]

routes = web.RouteTableDef()

MAX_OTP_LENGTH = 16


def _ok() -> web.Response:
    return web.Response(text="OK")


async def _owner(request: web.Request) -> tuple[str, Notifier, NotificationState]:
    """The session's account (checked first, as on every account route) and its channels."""
    _, account = await require_session(request)
    notifier = request.app[notifier_key]
    return account.address, notifier, await notifier.store.state(account.address)


def _global_on(state: NotificationState) -> None:
    # Checked after the body, as dm3 does, so a malformed request is told what is wrong with it.
    if not state.enabled:
        raise NotificationsOff("Global notifications is off")


def _configured(state: NotificationState, kind: str) -> Channel:
    channel = state.channels.get(kind)
    if channel is None:
        raise ChannelNotConfigured(f"{kind} notification channel is not configured")
    return channel


def _unverified(state: NotificationState, kind: str) -> Channel:
    channel = _configured(state, kind)
    if not channel.enabled:
        raise ChannelNotEnabled(f"{kind} notification channel is not enabled")
    if channel.verified:
        raise ChannelAlreadyVerified(f"{kind} notification channel is already verified")
    return channel


def _boolean(body: dict[str, Any]) -> bool:
    value = body.get("isEnabled")
    if not isinstance(value, bool):
        raise InvalidValue("Invalid value")
    return value


async def _send_otp(notifier: Notifier, address: str, recipient: str) -> web.Response:
    """Mail a password: ``OK``, or the 429 error body with ``Retry-After``."""
    try:
        await notifier.send_otp(address, recipient)
    except TooManyRequests as exc:
        response = http_response(exc)
        response.headers["Retry-After"] = str((exc.details or {}).get("retryAfter", 60))
        return response
    return _ok()


@routes.post("/notifications/global/{ensName}")
async def set_global(request: web.Request) -> web.Response:
    _, account = await require_session(request)
    enabled = _boolean(await read_json(request))
    await request.app[notifier_key].store.set_global(account.address, enabled)
    return _ok()


@routes.get("/notifications/global/{ensName}")
async def get_global(request: web.Request) -> web.Response:
    _, _, state = await _owner(request)
    return web.json_response({"isEnabled": state.enabled})


@routes.post("/notifications/{ensName}")
async def add_channel(request: web.Request) -> web.Response:
    address, notifier, state = await _owner(request)
    body = await read_json(request)
    kind = channel_type(body.get("notificationChannelType"))
    recipient = body.get("recipientValue")
    if not isinstance(recipient, str) or not recipient:
        raise InvalidRecipient("Recipient value is missing")
    allow_private = request.app[settings_key].notifications.allow_private_push
    if kind == "EMAIL":
        recipient = check_email(recipient)
    else:
        recipient = stringify(check_subscription(recipient, allow_private=allow_private))
    _global_on(state)
    if not notifier.supports(kind):
        raise ChannelNotSupported(f"Notification channel {kind} is currently not supported by the DS")
    # A web-push subscription comes from the owner's own browser: nothing to prove. An address
    # is proved by the password mailed to it.
    await notifier.store.put_channel(address, Channel(kind, recipient, enabled=True, verified=kind == "PUSH"))
    log.info("notification channel added", extra={"channel": kind})
    return await _send_otp(notifier, address, recipient) if kind == "EMAIL" else _ok()


@routes.get("/notifications/{ensName}")
async def get_channels(request: web.Request) -> web.Response:
    _, _, state = await _owner(request)
    channels = [c.to_json() for c in state.channels.values()] if state.enabled else []
    return web.json_response({"notificationChannels": channels})


@routes.post("/notifications/otp/{ensName}")
async def resend_otp(request: web.Request) -> web.Response:
    address, notifier, state = await _owner(request)
    body = await read_json(request)
    kind = channel_type(body.get("notificationChannelType"))
    _global_on(state)
    channel = _unverified(state, kind)
    if kind != "EMAIL":
        raise ChannelNotSupported(f"Notification channel {kind} needs no OTP")
    return await _send_otp(notifier, address, channel.recipient)


@routes.post("/notifications/otp/verify/{ensName}")
async def verify_otp(request: web.Request) -> web.Response:
    address, notifier, state = await _owner(request)
    body = await read_json(request)
    otp = body.get("otp")
    if not otp:
        raise OtpMissing("OTP is missing")
    if not isinstance(otp, str) or len(otp) > MAX_OTP_LENGTH:
        raise OtpInvalid("Invalid OTP")
    kind = channel_type(body.get("notificationChannelType"))
    _global_on(state)
    channel = _unverified(state, kind)
    sent_to = await notifier.store.check_otp(address, otp)
    if not same_recipient(sent_to, channel.recipient):
        raise OtpMissing("Otp not found, please resend the OTP for verification")
    await notifier.store.put_channel(address, Channel(kind, channel.recipient, enabled=True, verified=True))
    log.info("notification channel verified", extra={"channel": kind})
    return _ok()


@routes.post("/notifications/channel/{ensName}")
async def toggle_channel(request: web.Request) -> web.Response:
    address, notifier, state = await _owner(request)
    body = await read_json(request)
    kind = channel_type(body.get("notificationChannelType"))
    enabled = _boolean(body)
    _global_on(state)
    channel = _configured(state, kind)
    if channel.enabled != enabled:
        await notifier.store.put_channel(address, Channel(kind, channel.recipient, enabled, channel.verified))
    return _ok()


@routes.delete("/notifications/channel/{channelType}/{ensName}")
async def remove_channel(request: web.Request) -> web.Response:
    address, notifier, state = await _owner(request)
    kind = channel_type(request.match_info["channelType"])
    _global_on(state)
    _configured(state, kind)
    await notifier.store.remove_channel(address, kind)
    return web.json_response({"message": f"Notification channel {kind} has been removed successfully"})
