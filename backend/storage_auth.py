"""Logging in to the storage: dm3's ``/auth`` challenge flow and sign-up, answered by the backend.

The backend is the source of truth for the names it serves, so a storage account is simply an
address with a registered profile here; its names (address names and aliases) all open the same
account. The flow and tokens are :mod:`ensign.sessions` (the delivery service logs in the same
way, with its own secret):

* ``GET  /auth/{ensName}``  → a challenge JWT (bare JSON string; single use, 15 min);
* ``POST /auth/{ensName}`` ``{challenge, signature}`` → a session JWT (1 h); the signature is by the
  profile's Ed25519 signing key over the challenge string;
* ``POST /profile/{ensName}`` with the name's SignedUserProfile → a challenge JWT, as the delivery
  service answers dm3's sign-up (the body is public; a client that uses it as a token gets a 401 and
  its interceptor logs in through ``/auth``).

The session's generation is the profile's ``updated_at``: replacing the profile (a key rotation)
ends every session of the old keys.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from backend.appkeys import domains_key, sessions_key, store_key
from backend.errors import NoAccount, ProfileNotRegistered
from backend.records import Resolved, resolve_name
from backend.schemas import ChallengeAnswer
from ensign.errors import EnsignError, InvalidName
from ensign.protocol.canonical import stringify
from ensign.protocol.encoding import normalize_name
from ensign.protocol.models import SignedUserProfile
from ensign.protocol.schema import load
from ensign.sessions import SessionMissing, SessionStale, SessionWrongAccount
from ensign.web import read_json

__all__ = [
    "routes",
    "Viewer",
    "resolve_path_name",
    "require_viewer",
    "require_owner",
    "get_challenge",
    "post_challenge",
    "sign_up",
]

routes = web.RouteTableDef()

_CHALLENGE_ANSWER = ChallengeAnswer()


@dataclass(frozen=True)
class Viewer:
    """The logged-in caller: the account (lowercase address) their session token belongs to."""

    address: str


async def resolve_path_name(request: web.Request, field: str = "ensName") -> Resolved:
    """The account behind the path's name; 404 ``no_account`` when no profile is registered for it."""
    raw = request.match_info[field]
    try:
        name = normalize_name(raw)
    except EnsignError:
        raise InvalidName(f"{field} is not a valid ENS name") from None
    resolved = await resolve_name(request.app[store_key], request.app[domains_key], name)
    if resolved is None:
        raise NoAccount(f"no profile is registered for {name!r}")
    return resolved


async def require_viewer(request: web.Request) -> Viewer:
    """Check the ``Authorization: Bearer`` session token; 401 with a code naming the failed check."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise SessionMissing("an Authorization: Bearer <session token> header is required")
    session = request.app[sessions_key].check_session(token.strip())
    profile = await request.app[store_key].profile(session.address)
    if profile is None or profile.updated_at != session.generation:
        raise SessionStale("the profile of this session token was replaced; log in again")
    return Viewer(session.address.lower())


async def require_owner(request: web.Request) -> Resolved:
    """The path's account, which must be the session's; 401 ``session_wrong_account`` otherwise."""
    viewer = await require_viewer(request)
    owner = await resolve_path_name(request)
    if owner.address.lower() != viewer.address:
        raise SessionWrongAccount("the session token belongs to another account")
    return owner


@routes.get("/auth/{ensName}")
async def get_challenge(request: web.Request) -> web.Response:
    """A challenge JWT (15 min, single use) for the account of the name."""
    owner = await resolve_path_name(request)
    return web.json_response(
        request.app[sessions_key].issue_challenge(owner.name, owner.address, owner.profile.updated_at)
    )


@routes.post("/auth/{ensName}")
async def post_challenge(request: web.Request) -> web.Response:
    """Redeem a signed challenge for a session JWT (1 h)."""
    body = load(_CHALLENGE_ANSWER, await read_json(request), "login body")
    owner = await resolve_path_name(request)
    token = await request.app[sessions_key].redeem(
        owner.name,
        owner.address,
        owner.profile.updated_at,
        body["challenge"],
        body["signature"],
        owner.signed_profile().profile.public_signing_key,
    )
    return web.json_response(token)


@routes.post("/profile/{ensName}")
async def sign_up(request: web.Request) -> web.Response:
    """dm3's storage sign-up: the body must be the profile registered for the name; answers a challenge."""
    posted = SignedUserProfile.from_json(await read_json(request))
    owner = await resolve_path_name(request)
    if stringify(posted.to_json()) != stringify(owner.profile_object()):
        raise ProfileNotRegistered(
            "the profile is not the one registered for this name; register it first (POST /profile/address)"
        )
    return web.json_response(
        request.app[sessions_key].issue_challenge(owner.name, owner.address, owner.profile.updated_at)
    )
