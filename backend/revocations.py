"""An address's list of revoked profile signing keys: ``POST`` and ``GET /revocations/{address}``.

The list (:mod:`ensign.protocol.revocation`) is signed by the wallet, so anyone may post it; the
backend keeps the newest one per address that

* is well formed (400 ``invalid_schema``), names this address (400 ``invalid_address``) and whose
  EIP-191 signature recovers to it (400 ``invalid_signature``);
* belongs to an address with a profile here (404 ``not_found``);
* keeps every entry of the stored list unchanged (409 ``revocation_dropped``): an older list, public
  once published, cannot be replayed to un-revoke a key.

The records feed (:mod:`backend.records`) then publishes it as ``eth.ensign.revokedKeys`` on every
name of the address, so the gateway answers it for the address name and each alias.
"""

from __future__ import annotations

from aiohttp import web

from backend.appkeys import store_key, wallets_key
from backend.errors import RevocationDropped
from backend.profiles import _address
from ensign.errors import Conflict, InvalidAddress, NotFound, SignatureError
from ensign.protocol.canonical import parse_json, stringify
from ensign.protocol.revocation import RevocationList, extends
from ensign.web import read_json

__all__ = ["routes", "post_revocations", "get_revocations"]

routes = web.RouteTableDef()

#: Attempts when another request replaces the list between the read and the write.
WRITE_ATTEMPTS = 3


def _path_address(request: web.Request) -> str:
    return _address(request.match_info["address"], "the path's address")


@routes.post("/revocations/{address}")
async def post_revocations(request: web.Request) -> web.Response:
    """Store the address's signed revocation list (rules in the module docstring)."""
    store = request.app[store_key]
    address = _path_address(request)
    revocations = RevocationList.from_json(await read_json(request))
    if revocations.address != address:
        raise InvalidAddress(f"the list is for {revocations.address}, not for the path's {address}")
    if not await request.app[wallets_key].verify_revocations(revocations, address):
        raise SignatureError(f"the revocation list is not signed by {address}")
    if await store.profile(address) is None:
        raise NotFound(f"{address} has no profile here")
    new_json = stringify(revocations.to_json())
    for _ in range(WRITE_ATTEMPTS):
        stored_json = await store.revocations(address)
        if stored_json == new_json:
            return _answer(address, revocations, "unchanged")
        if stored_json is not None:
            stored = RevocationList.from_json(parse_json(stored_json, what="stored revocation list"))
            if not extends(stored, revocations):
                raise RevocationDropped("the list leaves out or changes a key the stored list revokes")
        if await store.set_revocations(address, stored_json, new_json):
            return _answer(address, revocations, "stored")
    raise Conflict("the revocation list keeps changing; read it and sign again")


def _answer(address: str, revocations: RevocationList, status: str) -> web.Response:
    return web.json_response({"address": address, "revoked": len(revocations.revoked), "status": status})


@routes.get("/revocations/{address}")
async def get_revocations(request: web.Request) -> web.Response:
    """The address's stored revocation list (404 ``not_found`` when it has none)."""
    address = _path_address(request)
    stored = await request.app[store_key].revocations(address)
    if stored is None:
        raise NotFound(f"{address} has revoked no key")
    return web.Response(text=stored, content_type="application/json")
