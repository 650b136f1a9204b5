"""dm3's sign-up and login routes (``/profile``, ``/auth``) and the session check for account routes.

``POST /profile/<name>`` answers a *challenge* JWT, not a session: the body is a public profile that
anyone can copy from ENS. dm3 clients ignore that answer and log in through ``/auth`` anyway; a
client that does use it as a bearer token gets a 401 and its interceptor logs in again.
"""

from __future__ import annotations

from aiohttp import web

from ensign.errors import EnsignError, InvalidName, SignatureError
from ensign.protocol.canonical import stringify
from ensign.protocol.encoding import normalize_name
from ensign.protocol.models import SignedUserProfile
from ensign.protocol.profile import profile_creation_message
from ensign.protocol.schema import load
from ensign.sessions import Session
from ensign.web import read_json

from .accounts import Account
from .appkeys import accounts_key, clock_key, directory_key, sessions_key
from .errors import (
    DeviceNotListed,
    NameUnresolved,
    NoAccount,
    NoProfile,
    NoProfileToVerify,
    ProfileNotPublished,
    SessionMissing,
    SessionStale,
    SessionWrongAccount,
)
from .ports import address_or_none, profile_or_none, signing_key_revoked
from .schemas import ChallengeAnswer

routes = web.RouteTableDef()

session_request_key = web.RequestKey("session_request_key", Session)

_CHALLENGE_ANSWER = ChallengeAnswer()


def path_name_of(raw: str) -> str:
    """``raw`` normalised as dm3 does; 400 ``invalid_name`` when it is not a valid name."""
    try:
        return normalize_name(raw)
    except EnsignError:
        raise InvalidName("the name is not a valid ENS name") from None


def path_name(request: web.Request) -> str:
    """The normalised ``ensName`` path parameter."""
    return path_name_of(request.match_info["ensName"])


async def address_of(request: web.Request, name: str) -> str:
    """The account id (EIP-55 address) of ``name``; 404 ``name_unresolved`` when it has none."""
    address = await address_or_none(request.app[directory_key], name)
    if address is None:
        raise NameUnresolved(f"{name} does not resolve to an address")
    return address


async def authorize(app: web.Application, name: str, token: str) -> tuple[Session, Account]:
    """The one session check, for every account route and the socket.io handshake.

    ``name`` is the (raw) name the caller claims, ``token`` its session JWT. Returns the verified
    session and the account; raises 400 ``invalid_name`` or 401 with a code saying why:
    ``session_missing``, ``session_invalid``, ``session_expired``, ``session_wrong_account`` (a
    token of another account), ``session_stale`` (the account was deleted, re-created or bound to
    another key since the token was issued).
    """
    session = app[sessions_key].check_session(token)
    address = await address_or_none(app[directory_key], path_name_of(name))
    if address is None or address != session.address:
        raise SessionWrongAccount("the session token belongs to another account")
    return session, await current_account(app, session)


async def current_account(app: web.Application, session: Session) -> Account:
    """The account of a verified ``session``, if the session still matches it: 401
    ``session_stale`` when the account was deleted or re-created or bound to another
    key since the token was issued (its ``gen`` claim is the account's binding time). The socket server re-checks its sockets with it."""
    return check_current(await app[accounts_key].get(session.address), session)


def check_current(account: Account | None, session: Session) -> Account:
    """:func:`current_account` on an account already read (``None``: there is none)."""
    # A token's generation is the account's binding time (its creation or last re-binding): a
    # re-created account starts after the token's, a re-bound one keeps its creation before it.
    if account is None or session.generation < account.created:
        raise SessionStale("the account of this session token no longer exists")
    if account.bound != session.generation:
        raise SessionStale("the account of this session token was bound to another key since")
    # A device's session lasts while its id is listed with the key it logged in with; a session
    # without a device only while the account has no device list (delivery.devices).
    if session.device:
        device = account.devices.get(session.device) if account.devices is not None else None
        if device is None or device.since != session.device_generation:
            raise SessionStale("the device of this session token was removed from the account's device list")
    elif account.devices is not None:
        raise SessionStale("the account has a device list since this session began; log in as a device")
    return account


async def require_session(request: web.Request) -> tuple[str, Account]:
    """:func:`authorize` the bearer token for the account of the path's name; return (name, account)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise SessionMissing("an Authorization: Bearer <session token> header is required")
    session, account = await authorize(request.app, request.match_info["ensName"], token.strip())
    request[session_request_key] = session
    return path_name(request), account


async def _account_of(request: web.Request, name: str) -> tuple[str, Account]:
    address = await address_of(request, name)
    account = await request.app[accounts_key].get(address)
    if account is None:
        raise NoAccount("there is no account for this name on this delivery service")
    return address, account


@routes.get("/profile/{ensName}")
async def get_profile(request: web.Request) -> web.Response:
    """The profile ENS publishes for the name, if the name's address has an account here."""
    name = path_name(request)
    await _account_of(request, name)
    resolved = await profile_or_none(request.app[directory_key], name)
    if resolved is None:
        raise NoProfile("the name has no valid profile in ENS")
    return web.json_response(resolved.signed_profile.to_json())


@routes.post("/profile/{ensName}")
async def post_profile(request: web.Request) -> web.Response:
    """dm3 sign-up: accept the SignedUserProfile that ENS publishes for the name; answer a challenge."""
    name = path_name(request)
    body = await read_json(request)
    posted = SignedUserProfile.from_json(body)
    address = await address_of(request, name)
    message = profile_creation_message(address, posted.profile)
    if not await request.app[directory_key].wallet_signed(address, message, posted.signature):
        raise SignatureError("the profile is not signed by the name's address")
    resolved = await profile_or_none(request.app[directory_key], name)
    if resolved is None or stringify(resolved.signed_profile.to_json()) != stringify(posted.to_json()):
        raise ProfileNotPublished("the profile is not the one ENS publishes for this name; publish it first")
    if signing_key_revoked(resolved, request.app[clock_key]()):
        raise NoProfile("the name's profile carries a signing key its wallet has revoked")
    account, _ = await request.app[accounts_key].create_from_profile(address, resolved.signed_profile)
    challenge = request.app[sessions_key].issue_challenge(name, address, account.bound)
    return web.json_response(challenge)


@routes.get("/auth/{ensName}")
async def get_challenge(request: web.Request) -> web.Response:
    """A challenge JWT (15 min, single use) for the account of the name."""
    name = path_name(request)
    address, account = await _account_of(request, name)
    return web.json_response(request.app[sessions_key].issue_challenge(name, address, account.bound))


@routes.post("/auth/{ensName}")
async def post_challenge(request: web.Request) -> web.Response:
    """Redeem a signed challenge for a session JWT (1 h): signed with the profile's key, or with a
    listed device's key naming the device (:mod:`delivery.devices`)."""
    name = path_name(request)
    body = load(_CHALLENGE_ANSWER, await read_json(request))
    address, account = await _account_of(request, name)
    # Only the key the account is bound to logs in, whichever name points at the address, or the
    # key of a listed device (delivery.devices).
    device = None
    if "device" in body:
        device = account.devices.get(body["device"]) if account.devices is not None else None
        if device is None:
            raise DeviceNotListed("the account's device list holds no device of this id")
        signing_key = device.key
    else:
        resolved = await profile_or_none(request.app[directory_key], name)
        if resolved is None:
            raise NoProfileToVerify("the name has no valid profile in ENS to check the signature")
        if signing_key_revoked(resolved, request.app[clock_key]()):
            raise NoProfileToVerify("the name's profile carries a signing key its wallet has revoked")
        account.require_bound(resolved.signed_profile)
        signing_key = resolved.signed_profile.profile.public_signing_key
        if account.devices is not None:
            device = account.devices.with_key(signing_key)
            if device is None:
                raise DeviceNotListed(
                    "the account has a device list and no listed device carries the profile's signing key; "
                    "log in as a device"
                )
    token = await request.app[sessions_key].redeem(
        name, address, account.bound, body["challenge"], body["signature"], signing_key,
        device=device.id if device else "", device_generation=device.since if device else 0,
    )
    return web.json_response(token)
