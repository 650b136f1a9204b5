"""Account routes: create and delete with signed messages, read and change settings.

=======================================  =================================  ==================
route                                    authenticated by                   answer
=======================================  =================================  ==================
``POST   /account/<name>``               signed ``createAccount`` message   201 account
``DELETE /account/<name>``               signed ``deleteAccount`` message   200 ``{deleted}``
``GET    /account/<name>``               session token                      200 account
``PUT    /account/<name>/settings``      session token, body = settings     200 account
``POST   /account/<name>/settings``      signed ``updateSettings`` message  200 account
=======================================  =================================  ==================

Signed messages are described in :mod:`delivery.accounts`; the signing key is the one of the
profile ENS publishes for ``<name>``.
"""

from __future__ import annotations

import logging

from aiohttp import web

from ensign.protocol.profile import profile_hash
from ensign.web import read_json

from .accounts import SignedAccountMessage
from .appkeys import accounts_key, directory_key
from .errors import NoProfile
from .ports import profile_or_none
from .web_auth import address_of, path_name, require_session

log = logging.getLogger(__name__)

routes = web.RouteTableDef()


async def _signed(request: web.Request, topic: str) -> tuple[str, SignedAccountMessage, str]:
    """Parse and verify a signed account message for the path's name; return (address, message, dm3Hash)."""
    name = path_name(request)
    message = SignedAccountMessage.from_body(await read_json(request))
    address = await address_of(request, name)
    resolved = await profile_or_none(request.app[directory_key], name)
    if resolved is None:
        raise NoProfile("the name has no valid profile in ENS")
    profile = resolved.signed_profile
    request.app[accounts_key].check_signed(message, name, topic, profile.profile.public_signing_key)
    return address, message, profile_hash(profile)


@routes.post("/account/{ensName}")
async def create_account(request: web.Request) -> web.Response:
    address, message, dm3_hash = await _signed(request, "createAccount")
    account = await request.app[accounts_key].create_signed(address, message, dm3_hash)
    log.info("account created", extra={"account": address})
    return web.json_response(account.to_json(), status=201)


@routes.delete("/account/{ensName}")
async def delete_account(request: web.Request) -> web.Response:
    address, message, _ = await _signed(request, "deleteAccount")
    dropped = await request.app[accounts_key].delete_signed(address, message)
    log.info("account deleted", extra={"account": address, "dropped": dropped})
    return web.json_response({"deleted": address, "droppedMessages": dropped})


@routes.get("/account/{ensName}")
async def get_account(request: web.Request) -> web.Response:
    _, account = await require_session(request)
    return web.json_response(account.to_json())


@routes.put("/account/{ensName}/settings")
async def put_settings(request: web.Request) -> web.Response:
    _, account = await require_session(request)
    accounts = request.app[accounts_key]
    settings = accounts.parse_settings(await read_json(request))
    updated = await accounts.update_settings(account.address, settings)
    return web.json_response(updated.to_json())


@routes.post("/account/{ensName}/settings")
async def post_settings(request: web.Request) -> web.Response:
    address, message, _ = await _signed(request, "updateSettings")
    updated = await request.app[accounts_key].update_signed(address, message)
    return web.json_response(updated.to_json())
