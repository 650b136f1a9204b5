"""Name resolution and the records feed the CCIP-Read gateway reads (``GET /records/{name}``).

The gateway has no database: for every ENS query under our domains it asks this endpoint and signs
what it gets. The answer is a stable contract (``specs/backend.md``)::

    200 {"name": "<normalised name>", "address": "0x<EIP-55>",
         "texts": {"network.dm3.profile": "data:application/json,<canonical JSON>",
                   "eth.ensign.revokedKeys": "data:application/json,<canonical JSON>"},  # if any
         "contenthash": null}
    404 {"error": "not_found", "message": "..."}

404 covers every name that has no record: unknown, released, not under our domains, and names that
cannot be normalised at all — the gateway turns all of them into a signed "no record" answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from backend.appkeys import domains_key, store_key
from backend.names import AddressName, AliasName, Domains
from backend.store import ProfileStore, StoredProfile
from ensign.errors import EncodingError, NotFound
from ensign.protocol.canonical import parse_json
from ensign.protocol.encoding import checksum_address, normalize_name
from ensign.protocol.models import SignedUserProfile
from ensign.protocol.profile import profile_json_data_uri
from ensign.protocol.records import PROFILE_RECORD_NAME, REVOCATION_RECORD_NAME

__all__ = ["Resolved", "resolve_name", "routes", "get_records"]

routes = web.RouteTableDef()


@dataclass(frozen=True)
class Resolved:
    """A registered name: ``address`` is EIP-55, ``profile`` the owner's current profile."""

    name: str
    address: str
    profile: StoredProfile

    def signed_profile(self) -> SignedUserProfile:
        return SignedUserProfile.from_json(parse_json(self.profile.profile_json, what="stored profile"))

    def profile_object(self) -> dict[str, Any]:
        value: dict[str, Any] = parse_json(self.profile.profile_json, what="stored profile")
        return value


async def resolve_name(store: ProfileStore, domains: Domains, name: str) -> Resolved | None:
    """Resolve a normalised name: an address name registered under its domain, or a claimed alias.

    Aliases resolve to their owner's *current* profile and address.
    """
    parsed = domains.parse(name)
    if isinstance(parsed, AddressName):
        if not await store.has_domain(parsed.address, parsed.domain):
            return None
        address = parsed.address
    elif isinstance(parsed, AliasName):
        owner = await store.alias_owner(parsed.name)
        if owner is None:
            return None
        address = checksum_address(owner)
    else:
        return None
    profile = await store.profile(address)
    if profile is None:
        return None
    return Resolved(name, address, profile)


@routes.get("/records/{name}")
async def get_records(request: web.Request) -> web.Response:
    """The gateway feed: address, text records and contenthash of one name."""
    raw = request.match_info["name"]
    try:
        name = normalize_name(raw)
    except EncodingError as exc:
        raise NotFound(f"no record for {raw!r}: not a valid name ({exc.message})") from None
    store = request.app[store_key]
    resolved = await resolve_name(store, request.app[domains_key], name)
    if resolved is None:
        raise NotFound(f"no record for {name!r}")
    texts = {PROFILE_RECORD_NAME: profile_json_data_uri(resolved.signed_profile())}
    revocations = await store.revocations(resolved.address)
    if revocations is not None:
        # Stored as canonical JSON, written as dm3 writes its data URIs (no escaping).
        texts[REVOCATION_RECORD_NAME] = "data:application/json," + revocations
    return web.json_response({"name": name, "address": resolved.address, "texts": texts, "contenthash": None})
