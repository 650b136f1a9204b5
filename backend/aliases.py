"""Alias claim and release: ``POST /profile/name`` and ``POST /profile/deleteName``.

Bodies are dm3's, optionally with ``timestamp`` (see :mod:`backend.claims` for the signed texts):

* claim   ``{signature, addressName, dm3Name[, timestamp]}`` — ``addressName`` is a registered name
  of the claiming address (its address name, or an alias it already holds); the signature is by
  that address's current profile signing key;
* release ``{signature, dm3Name[, timestamp]}`` — signed by the current owner's profile key.

An address holds at most :data:`backend.store.MAX_ALIASES` aliases. Aliases stay with the address
when its profile is replaced; claims and releases are then verified with the new profile's key.
"""

from __future__ import annotations

import logging

from aiohttp import web

from backend.appkeys import clock_key, domains_key, store_key
from backend.claims import claim_digest, claim_text, release_text
from backend.errors import AliasLimit, AliasTaken, Replayed
from backend.records import Resolved, resolve_name
from backend.schemas import AliasClaim, AliasRelease
from backend.store import ClaimOutcome, ReleaseOutcome
from ensign.errors import Conflict, NotFound, SignatureError
from ensign.protocol.crypto import verify
from ensign.protocol.encoding import checksum_address
from ensign.protocol.schema import load
from ensign.web import read_json

__all__ = ["routes", "claim_alias", "release_alias"]

log = logging.getLogger(__name__)

routes = web.RouteTableDef()

_CLAIM = AliasClaim()
_RELEASE = AliasRelease()


def _now_ms(request: web.Request) -> int:
    return int(request.app[clock_key]() * 1000)


@routes.post("/profile/name")
async def claim_alias(request: web.Request) -> web.Response:
    """Claim ``dm3Name`` for the address behind ``addressName``."""
    store, domains = request.app[store_key], request.app[domains_key]
    body = load(_CLAIM, await read_json(request))
    signature, raw_alias, raw_owner_name = body["signature"], body["dm3Name"], body["addressName"]
    timestamp = body.get("timestamp")
    alias = domains.alias(raw_alias)
    owner_name = domains.normalize(raw_owner_name, field="addressName")
    now = _now_ms(request)
    signed = claim_text(raw_alias, raw_owner_name, timestamp, now)

    owner = await resolve_name(store, domains, owner_name)
    if owner is None:
        raise NotFound(f"no profile is registered for addressName {owner_name!r}")
    key = _signing_key(owner)
    if not verify(key, signed.text, signature):
        raise SignatureError(f"signature is not a valid claim of {alias.name!r} by the profile of {owner_name!r}")
    outcome = await store.claim_alias(
        alias.name,
        owner.address,
        owner.profile.content_hash,
        claim_digest=claim_digest(key, signed.text),
        used_ttl_ms=signed.remember_ms,
        strict=signed.timestamped,
        now_ms=now,
    )
    _raise_for_claim(outcome, alias.name, store.max_aliases)
    if outcome == "claimed":
        # Names and addresses only at DEBUG: INFO lines name no one (README "Privacy").
        log.info("alias claimed (%s form)", _form(signed.timestamped))
        log.debug("alias %s claimed by %s", alias.name, owner.address)
    return web.json_response({"name": alias.name, "address": owner.address, "status": outcome})


@routes.post("/profile/deleteName")
async def release_alias(request: web.Request) -> web.Response:
    """Release ``dm3Name``; signed by its owner's current profile key."""
    store, domains = request.app[store_key], request.app[domains_key]
    body = load(_RELEASE, await read_json(request))
    signature, raw_alias = body["signature"], body["dm3Name"]
    timestamp = body.get("timestamp")
    alias = domains.alias(raw_alias)
    signed = release_text(raw_alias, timestamp, _now_ms(request))

    owner_hex = await store.alias_owner(alias.name)
    profile = None if owner_hex is None else await store.profile(owner_hex)
    if owner_hex is None or profile is None:
        raise NotFound(f"{alias.name!r} is not claimed")
    owner = Resolved(alias.name, checksum_address(owner_hex), profile)
    key = _signing_key(owner)
    if not verify(key, signed.text, signature):
        raise SignatureError(f"signature is not a valid release of {alias.name!r} by its owner")
    outcome = await store.release_alias(
        alias.name,
        owner.address,
        profile.content_hash,
        claim_digest=claim_digest(key, signed.text),
        used_ttl_ms=signed.remember_ms,
        strict=signed.timestamped,
    )
    _raise_for_release(outcome, alias.name)
    log.info("alias released (%s form)", _form(signed.timestamped))
    log.debug("alias %s released by %s", alias.name, owner.address)
    return web.json_response({"name": alias.name, "address": owner.address, "status": outcome})


def _form(timestamped: bool) -> str:
    return "timestamped" if timestamped else "dm3"


def _signing_key(owner: Resolved) -> str:
    return owner.signed_profile().profile.public_signing_key


def _raise_for_claim(outcome: ClaimOutcome, alias: str, max_aliases: int) -> None:
    if outcome == "taken":
        raise AliasTaken(f"{alias!r} is already claimed by another address")
    if outcome == "limit":
        raise AliasLimit(f"this address already holds {max_aliases} aliases; release one first")
    if outcome == "replayed":
        raise Replayed("this signed claim has already been used; sign a new, timestamped claim")
    if outcome == "stale_profile":
        raise Conflict("the profile changed while the claim was processed; sign again with its key")


def _raise_for_release(outcome: ReleaseOutcome, alias: str) -> None:
    if outcome == "not_owner":
        raise Conflict(f"{alias!r} changed owner while the release was processed")
    if outcome == "replayed":
        raise Replayed("this signed release has already been used; sign a new, timestamped release")
    if outcome == "stale_profile":
        raise Conflict("the profile changed while the release was processed; sign again with its key")
