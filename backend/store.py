"""Profiles, address names and aliases in Redis: the backend's whole state.

Redis layout: :mod:`backend.keys` names every key and documents what each holds. Only this
module writes them.

Atomicity: registration, claim and release each run as one Lua script (``backend/lua/``), so a
check and the write it guards can never interleave with another request; claim and release also
re-check that the owner's profile is still the one whose key verified the signature.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast

from backend.keys import (
    alias_key,
    aliases_key,
    claim_key,
    domains_key,
    profile_key,
    revocations_key,
    superseded_key,
)
from ensign.redis_client import RedisClient, lua_script

__all__ = [
    "MAX_ALIASES",
    "ProfileStore",
    "StoredProfile",
    "RegisterOutcome",
    "ClaimOutcome",
    "ReleaseOutcome",
]

#: Most aliases one address may hold at once (dm3 allows one; more is harmless and useful).
MAX_ALIASES = 5

RegisterOutcome = Literal["created", "replaced", "unchanged", "superseded"]
ClaimOutcome = Literal["claimed", "unchanged", "taken", "limit", "replayed", "stale_profile"]
ReleaseOutcome = Literal["released", "not_owner", "replayed", "stale_profile"]


# --- access ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredProfile:
    """An address's current profile as stored: ``profile_json`` is canonical JSON."""

    address: str
    profile_json: str
    content_hash: str
    updated_at: int


class ProfileStore:
    """Reads and atomic writes of the layout above.

    :param redis: a single-server or cluster client (bytes or decoded responses both work); the
        caller owns and closes it.
    :param prefix: the Redis key prefix (``RedisSettings.prefix``); no ``{`` or ``}``, which would
        move the hash tag.
    :param max_aliases: most aliases per address (default :data:`MAX_ALIASES`).
    """

    def __init__(self, redis: RedisClient, prefix: str, *, max_aliases: int = MAX_ALIASES) -> None:
        if "{" in prefix or "}" in prefix:
            raise ValueError("prefix must not contain '{' or '}'")
        self.redis = redis
        self.prefix = prefix
        self.max_aliases = max_aliases
        # register_script sends nothing now; its Script re-sends the source on NOSCRIPT.
        self._register = redis.register_script(lua_script("backend.lua", "register_profile"))
        self._claim = redis.register_script(lua_script("backend.lua", "claim_alias"))
        self._release = redis.register_script(lua_script("backend.lua", "release_alias"))
        self._set_revocations = redis.register_script(lua_script("backend.lua", "set_revocations"))

    async def ping(self) -> bool:
        """True when Redis answers; raises redis' ConnectionError/TimeoutError when it cannot."""
        return bool(await self.redis.ping())

    async def register(
        self, address: str, domain: str, profile_json: str, content_hash: str, now_ms: int
    ) -> RegisterOutcome:
        """Store ``profile_json`` as the address's profile under ``domain`` (see the Lua header)."""
        p = self.prefix
        result = await self._register(
            keys=[profile_key(p, address), superseded_key(p, address), domains_key(p, address)],
            args=[profile_json, content_hash, domain, now_ms],
        )
        return cast(RegisterOutcome, _text(result))

    async def profile(self, address: str) -> StoredProfile | None:
        """The address's current profile, or ``None`` if it never registered one."""
        fields = await self.redis.hgetall(profile_key(self.prefix, address))
        if not fields:
            return None
        values = {_text(k): _text(v) for k, v in fields.items()}
        return StoredProfile(
            address=address.lower(),
            profile_json=values["profile"],
            content_hash=values["hash"],
            updated_at=int(values["updated_at"]),
        )

    async def has_domain(self, address: str, domain: str) -> bool:
        """True when ``{address}.{domain}`` is a registered address name."""
        return bool(await self.redis.sismember(domains_key(self.prefix, address), domain))

    async def domains(self, address: str) -> list[str]:
        """The addr domains the address name is registered under, sorted."""
        return sorted(_text(d) for d in await self.redis.smembers(domains_key(self.prefix, address)))

    async def aliases(self, address: str) -> list[str]:
        """The address's aliases, oldest claim first."""
        members = cast(list[bytes | str], await self.redis.zrange(aliases_key(self.prefix, address), 0, -1))
        return [_text(a) for a in members]

    async def alias_owner(self, alias: str) -> str | None:
        """Lowercase hex address holding ``alias``, or ``None``."""
        owner = await self.redis.get(alias_key(self.prefix, alias))
        return None if owner is None else _text(owner)

    async def claim_alias(
        self,
        alias: str,
        address: str,
        profile_hash: str,
        *,
        claim_digest: str,
        used_ttl_ms: int,
        strict: bool,
        now_ms: int,
    ) -> ClaimOutcome:
        """Give ``alias`` to ``address`` atomically (see ``lua/claim_alias.lua``).

        :param profile_hash: content hash of the profile whose signing key verified the claim.
        :param claim_digest: identifies the signed claim for replay protection.
        :param used_ttl_ms: how long the claim is remembered as used; 0 = for ever.
        :param strict: True for the timestamped form (every reuse refused), False for dm3's form.
        """
        p = self.prefix
        result = await self._claim(
            keys=[alias_key(p, alias), aliases_key(p, address), profile_key(p, address), claim_key(p, claim_digest)],
            args=[alias, address.lower(), profile_hash, now_ms, self.max_aliases, used_ttl_ms, int(strict)],
        )
        return cast(ClaimOutcome, _text(result))

    async def release_alias(
        self, alias: str, address: str, profile_hash: str, *, claim_digest: str, used_ttl_ms: int, strict: bool
    ) -> ReleaseOutcome:
        """Take ``alias`` from ``address`` atomically (see ``lua/release_alias.lua``)."""
        p = self.prefix
        result = await self._release(
            keys=[alias_key(p, alias), aliases_key(p, address), profile_key(p, address), claim_key(p, claim_digest)],
            args=[alias, address.lower(), profile_hash, used_ttl_ms, int(strict)],
        )
        return cast(ReleaseOutcome, _text(result))

    async def revocations(self, address: str) -> str | None:
        """Canonical JSON of the address's revocation list, or ``None``."""
        value = await self.redis.get(revocations_key(self.prefix, address))
        return None if value is None else _text(value)

    async def set_revocations(self, address: str, expected: str | None, revocations_json: str) -> bool:
        """Store the list unless the stored one is no longer ``expected`` (see the Lua header)."""
        result = await self._set_revocations(
            keys=[revocations_key(self.prefix, address)], args=[expected or "", revocations_json]
        )
        return int(result) == 1


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value
