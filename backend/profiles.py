"""Profile registration and reads: ``/profile/address``, ``/profile/{address}``, names by address.

Registration accepts dm3's body ``{signedUserProfile, address, subdomain}`` unchanged. The profile's
EIP-191 signature must be ``address``'s: recovering to it, or accepted by it as a contract wallet
(EIP-1271, :mod:`ensign.ens.wallets`). A profile with new content replaces the current one;
content that this address has replaced before is refused (409 ``profile_superseded``), so an old
profile — public in ENS — cannot be replayed to roll the address back to old keys. Every success
is 200, because dm3's clients test for exactly that status.
"""

from __future__ import annotations

import logging

from aiohttp import web

from backend.appkeys import clock_key, domains_key, store_key, wallets_key
from backend.errors import ProfileSuperseded
from backend.records import resolve_name
from backend.schemas import ProfileRegistration
from ensign.errors import EncodingError, InvalidAddress, NotFound, SignatureError
from ensign.protocol.canonical import stringify
from ensign.protocol.encoding import checksum_address, sha256_hex
from ensign.protocol.models import SignedUserProfile, UserProfile
from ensign.protocol.schema import load
from ensign.web import read_json

__all__ = ["routes", "content_hash", "name_of_address", "profile_by_name", "profile_of_address", "register_profile"]

log = logging.getLogger(__name__)

_REGISTRATION = ProfileRegistration()

routes = web.RouteTableDef()


def content_hash(profile: UserProfile) -> str:
    """sha256 0x-hex of the canonical JSON of the profile without its signature (see store.py)."""
    return sha256_hex(stringify(profile.to_json()))


def _address(raw: str, field: str = "address") -> str:
    try:
        return checksum_address(raw)
    except EncodingError as exc:
        raise InvalidAddress(f"{field} is not an Ethereum address: {exc.message}") from None


@routes.post("/profile/address")
async def register_profile(request: web.Request) -> web.Response:
    """Register or update the profile of ``address`` and its address name under ``subdomain``."""
    store, domains = request.app[store_key], request.app[domains_key]
    body = load(_REGISTRATION, await read_json(request))
    signed = SignedUserProfile.from_json(body["signedUserProfile"])
    address = _address(body["address"])
    domain = domains.addr_domain(body["subdomain"])
    if not await request.app[wallets_key].verify_profile(signed, address):
        raise SignatureError(f"signedUserProfile is not signed by {address}")
    name = domains.address_name(address, domain)
    outcome = await store.register(
        address, domain, stringify(signed.to_json()), content_hash(signed.profile), int(request.app[clock_key]() * 1000)
    )
    if outcome == "superseded":
        raise ProfileSuperseded(
            f"this profile was replaced by a newer one for {address} and cannot be registered again; "
            "sign a new profile")
    if outcome != "unchanged":
        # The name only at DEBUG: INFO lines name no one (README "Privacy").
        log.info("profile %s", outcome)
        log.debug("profile %s for %s", outcome, name.name)
    return web.json_response({"name": name.name, "address": address, "status": outcome})


@routes.get("/profile/name/{address}")
async def name_of_address(request: web.Request) -> web.Response:
    """dm3's alias lookup: ``{"name": <primary alias>, "names": [all aliases, oldest first]}``."""
    store = request.app[store_key]
    address = _address(request.match_info["address"])
    aliases = await store.aliases(address)
    if not aliases:
        raise NotFound(f"{address} holds no alias")
    return web.json_response({"name": aliases[0], "names": aliases})


@routes.get("/profile/by-name/{name}")
async def profile_by_name(request: web.Request) -> web.Response:
    """The profile behind an address name or alias: ``{name, address, signedUserProfile}``."""
    store, domains = request.app[store_key], request.app[domains_key]
    name = domains.normalize(request.match_info["name"])
    resolved = await resolve_name(store, domains, name)
    if resolved is None:
        raise NotFound(f"no profile is registered for {name!r}")
    return web.json_response(
        {"name": name, "address": resolved.address, "signedUserProfile": resolved.profile_object()}
    )


@routes.get("/profile/{address}")
async def profile_of_address(request: web.Request) -> web.Response:
    """dm3's profile lookup: the stored SignedUserProfile of an address, or of a name (anything
    with a dot; dm3's storage client asks by name whether the account exists)."""
    store = request.app[store_key]
    raw = request.match_info["address"]
    if "." not in raw:
        address = _address(raw)
        profile = await store.profile(address)
        if profile is None:
            raise NotFound(f"no profile is registered for {address}")
        return web.Response(text=profile.profile_json, content_type="application/json")
    domains = request.app[domains_key]
    name = domains.normalize(raw)
    resolved = await resolve_name(store, domains, name)
    if resolved is None:
        raise NotFound(f"no profile is registered for {name!r}")
    return web.Response(text=resolved.profile.profile_json, content_type="application/json")
