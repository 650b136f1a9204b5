"""Stateless JWT sessions as dm3 clients log in, bound to the account and with single-use challenges.

The delivery service and the backend (the user's storage) both log users in this way, each with
its own secret and its own key for the redeemed-challenge markers.

Flow::

    GET  /auth/<name>                       -> "<challenge JWT>"    (15 min)
    POST /auth/<name> {challenge, signature} -> "<session JWT>"      (1 h)
         signature = base64 Ed25519 over the UTF-8 of the whole challenge JWT string, made with the
         signing key of the profile published in ENS for <name>
    Authorization: Bearer <session JWT>     on every account route

Both are HS256 with this service's own ``settings.jwt_secret`` (never derived from the DS keys, so no
other service can mint them). Claims:

* challenge ``{account, addr, challenge, gen, iat, nbf, exp, kind:"challenge"}``
* session   ``{account, addr, gen, iat, nbf, exp, kind:"session"}``, plus ``dev`` and ``dgen`` for a
  session of one of the account's devices (the delivery service's device list,
  ``delivery.devices``): the device id and the time (ms) that id got its key

``account`` is the normalised name in the path (dm3 clients read it), ``addr`` the EIP-55 address
the name resolved to — the account id — and ``gen`` a generation of the account the service chooses
(the delivery service: the time in ms of the account's binding to its signing key — its creation or
last re-binding, :mod:`delivery.accounts` — so tokens of a deleted account stay dead when the
account is created again, and tokens of an old key die with a re-binding; the backend: when the profile was last replaced, so a key
rotation ends older sessions). A token is accepted on any name that resolves to the same address
(aliases share one account), never on another account.

Redis keys: this module writes only the redeemed-challenge marker, under the key the service's
layout names (``delivery.keys.challenge_key``, ``backend.keys.challenge_key``).

The refusals, all 401, are defined here for both services::

    Unauthorized (ensign.errors)
    ├── SessionMissing / ChallengeMissing    401  session_missing / challenge_missing
    ├── SessionInvalid / ChallengeInvalid    401  session_invalid / challenge_invalid
    ├── SessionExpired / ChallengeExpired    401  session_expired / challenge_expired
    ├── SessionWrongAccount                  401  session_wrong_account
    ├── SessionStale                         401  session_stale
    ├── ChallengeWrongAccount                401  challenge_wrong_account
    ├── ChallengeStale                       401  challenge_stale
    ├── ChallengeReplayed                    401  challenge_replayed
    └── ChallengeSignatureInvalid            401  invalid_signature

Times come from the injected clock, so PyJWT's own time checks are disabled and done here.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt

from ensign.clock import Clock
from ensign.errors import Unauthorized
from ensign.protocol.crypto import verify
from ensign.redis_client import RedisClient

__all__ = [
    "CHALLENGE_TTL",
    "SESSION_TTL",
    "Session",
    "Sessions",
    "SessionMissing",
    "SessionInvalid",
    "SessionExpired",
    "SessionWrongAccount",
    "SessionStale",
    "ChallengeMissing",
    "ChallengeInvalid",
    "ChallengeExpired",
    "ChallengeWrongAccount",
    "ChallengeStale",
    "ChallengeReplayed",
    "ChallengeSignatureInvalid",
    "token_error",
]

CHALLENGE_TTL = 900  # seconds, as dm3
SESSION_TTL = 3600  # seconds, as dm3
ALGORITHM = "HS256"
_CHALLENGE_CLAIMS = {"account", "addr", "challenge", "gen", "iat", "nbf", "exp", "kind"}
_SESSION_CLAIMS = {"account", "addr", "gen", "iat", "nbf", "exp", "kind"}
_DEVICE_CLAIMS = {"dev", "dgen"}


class SessionMissing(Unauthorized):
    code = "session_missing"


class SessionInvalid(Unauthorized):
    code = "session_invalid"


class SessionExpired(Unauthorized):
    code = "session_expired"


class SessionWrongAccount(Unauthorized):
    code = "session_wrong_account"


class SessionStale(Unauthorized):
    """The session's account (or its profile) changed since the token was issued."""

    code = "session_stale"


class ChallengeMissing(Unauthorized):
    code = "challenge_missing"


class ChallengeInvalid(Unauthorized):
    code = "challenge_invalid"


class ChallengeExpired(Unauthorized):
    code = "challenge_expired"


class ChallengeWrongAccount(Unauthorized):
    code = "challenge_wrong_account"


class ChallengeStale(Unauthorized):
    code = "challenge_stale"


class ChallengeReplayed(Unauthorized):
    code = "challenge_replayed"


class ChallengeSignatureInvalid(Unauthorized):
    code = "invalid_signature"


_TOKEN_ERRORS: dict[tuple[str, str], type[Unauthorized]] = {
    ("session", "missing"): SessionMissing,
    ("session", "invalid"): SessionInvalid,
    ("session", "expired"): SessionExpired,
    ("challenge", "missing"): ChallengeMissing,
    ("challenge", "invalid"): ChallengeInvalid,
    ("challenge", "expired"): ChallengeExpired,
}


def token_error(kind: str, problem: str) -> type[Unauthorized]:
    """The error for a ``kind`` token (``"session"``, ``"challenge"``) that is ``problem``
    (``"missing"``, ``"invalid"``, ``"expired"``)."""
    return _TOKEN_ERRORS[(kind, problem)]


@dataclass(frozen=True)
class Session:
    """A verified session token's claims."""

    name: str
    address: str
    generation: int
    expires_at: int
    #: The device that logged in ("" = the profile's signing key, no device list) and the time
    #: (ms) its id got its key.
    device: str = ""
    device_generation: int = 0


class Sessions:
    """Issues and checks challenge and session JWTs.

    :param redis: client for the redeemed-challenge keys.
    :param challenge_key: the Redis key marking a redeemed challenge id, from the service's layout.
    :param secret: HMAC secret (the service's own).
    :param clock: seconds since the epoch.
    """

    def __init__(
        self,
        redis: RedisClient,
        *,
        challenge_key: Callable[[str], str],
        secret: str,
        clock: Clock,
    ) -> None:
        self._redis = redis
        self._challenge_key = challenge_key
        self._secret = secret
        self._clock = clock

    def issue_challenge(self, name: str, address: str, generation: int) -> str:
        """A challenge JWT for ``name`` (normalised) whose account is ``address``."""
        now = int(self._clock())
        claims = {
            "account": name,
            "addr": address,
            "challenge": str(uuid.uuid4()),
            "gen": generation,
            "iat": now,
            "nbf": now,
            "exp": now + CHALLENGE_TTL,
            "kind": "challenge",
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    async def redeem(
        self,
        name: str,
        address: str,
        generation: int,
        challenge: str,
        signature: str,
        public_signing_key: str,
        *,
        device: str = "",
        device_generation: int = 0,
    ) -> str:
        """Check a signed challenge and return a session JWT; the challenge cannot be used again.
        With ``device``, the session is that device's (``public_signing_key`` is its key).

        Raises :class:`Unauthorized` naming the failed check: not a valid challenge, expired, for
        another account, signature not made with the profile's signing key, already redeemed.
        """
        claims = self._decode(challenge, kind="challenge", claim_set=_CHALLENGE_CLAIMS, what="challenge")
        if claims["account"] != name or claims["addr"] != address:
            raise ChallengeWrongAccount("challenge was issued for another account")
        if claims["gen"] != generation:
            raise ChallengeStale("challenge was issued before the account was re-created")
        if not verify(public_signing_key, challenge, signature):
            raise ChallengeSignatureInvalid(
                "signature does not verify with the signing key of the profile published in ENS"
            )
        # Checked last, so a bad signature does not burn someone else's challenge.
        remaining = max(1, int(claims["exp"]) - int(self._clock()))
        fresh = await self._redis.set(self._challenge_key(str(claims["challenge"])), "1", nx=True, ex=remaining)
        if not fresh:
            raise ChallengeReplayed("challenge was already redeemed")
        return self.issue_session(name, address, generation, device=device, device_generation=device_generation)

    def issue_session(
        self, name: str, address: str, generation: int, *, device: str = "", device_generation: int = 0
    ) -> str:
        """A session JWT, valid :data:`SESSION_TTL` seconds (of ``device``, when given)."""
        now = int(self._clock())
        claims: dict[str, Any] = {
            "account": name,
            "addr": address,
            "gen": generation,
            "iat": now,
            "nbf": now,
            "exp": now + SESSION_TTL,
            "kind": "session",
        }
        if device:
            claims.update(dev=device, dgen=device_generation)
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def check_session(self, token: str) -> Session:
        """Verify a session JWT's signature, kind and times; the caller matches the account."""
        claims = self._decode(token, kind="session", claim_set=_SESSION_CLAIMS, what="session token")
        return Session(
            name=str(claims["account"]),
            address=str(claims["addr"]),
            generation=int(claims["gen"]),
            expires_at=int(claims["exp"]),
            device=str(claims.get("dev", "")),
            device_generation=int(claims.get("dgen", 0)),
        )

    def _decode(self, token: str, *, kind: str, claim_set: set[str], what: str) -> dict[str, Any]:
        if not isinstance(token, str) or not token:
            raise token_error(kind, "missing")(f"{what} is missing")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                options={"verify_exp": False, "verify_nbf": False, "verify_iat": False, "verify_aud": False},
            )
        except jwt.InvalidTokenError:
            raise token_error(kind, "invalid")(f"{what} is not a valid token of this service") from None
        device_claims = _DEVICE_CLAIMS if kind == "session" and "dev" in claims else set()
        if set(claims) != claim_set | device_claims or claims.get("kind") != kind:
            raise token_error(kind, "invalid")(f"{what} is not a {kind} token")
        if device_claims and (not isinstance(claims["dev"], str) or not claims["dev"]):
            raise token_error(kind, "invalid")(f"{what} has a malformed dev claim")
        whole_numbers = ("iat", "nbf", "exp", "gen", "dgen") if device_claims else ("iat", "nbf", "exp", "gen")
        for field in whole_numbers:
            if not isinstance(claims[field], int) or isinstance(claims[field], bool):
                raise token_error(kind, "invalid")(f"{what} has a malformed {field} claim")
        now = self._clock()
        if now >= claims["exp"]:
            raise token_error(kind, "expired")(f"{what} has expired")
        if now < claims["nbf"] or claims["iat"] > now + 5:
            raise token_error(kind, "invalid")(f"{what} is not valid yet")
        return claims
