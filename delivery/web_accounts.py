"""Account routes: create and delete with signed messages, read and change settings.

=======================================  =================================  ==================
route                                    authenticated by                   answer
=======================================  =================================  ==================
``POST   /account/<name>``               signed ``createAccount`` message   201 account
``DELETE /account/<name>``               signed ``deleteAccount`` message   200 ``{deleted}``
``GET    /account/<name>``               session token                      200 account
``PUT    /account/<name>/settings``      session token, body = settings     200 account
``POST   /account/<name>/settings``      signed ``updateSettings`` message  200 account
``POST   /account/<name>/binding``       wallet-signed binding message      200 / 201 account
``PUT    /account/<name>/devices``       wallet-signed device list          200 device list
``GET    /account/<name>/devices``       session token                      200 device list
=======================================  =================================  ==================

Signed messages are described in :mod:`delivery.accounts`; the signing key is the one of the
profile ENS publishes for ``<name>``, and for an existing account it must be the key the account
is bound to (403 ``key_not_bound``). The binding message is signed by the wallet (the address).
"""

from __future__ import annotations

import logging

from aiohttp import web

from ensign.protocol.models import SignedUserProfile
from ensign.web import read_json

from .accounts import SignedAccountMessage, SignedBinding
from .devices import NO_DEVICES, SignedDevices
from .appkeys import accounts_key, at_rest_key, clock_key, directory_key
from .errors import NoProfile
from .ports import profile_or_none, signing_key_revoked
from .web_auth import address_of, path_name, require_session, session_request_key

log = logging.getLogger(__name__)

routes = web.RouteTableDef()


async def _profile(request: web.Request, name: str) -> SignedUserProfile:
    resolved = await profile_or_none(request.app[directory_key], name)
    if resolved is None:
        raise NoProfile("the name has no valid profile in ENS")
    if signing_key_revoked(resolved, request.app[clock_key]()):
        raise NoProfile("the name's profile carries a signing key its wallet has revoked")
    return resolved.signed_profile


async def _signed(request: web.Request, topic: str) -> tuple[str, SignedAccountMessage, SignedUserProfile]:
    """Parse and verify a signed account message for the path's name; return (address, message,
    the name's profile). Deletions and settings changes must come from the bound key."""
    name = path_name(request)
    message = SignedAccountMessage.from_body(await read_json(request))
    address = await address_of(request, name)
    profile = await _profile(request, name)
    accounts = request.app[accounts_key]
    if topic != "createAccount":
        account = await accounts.get(address)
        if account is not None:
            account.require_bound(profile)
    accounts.check_signed(message, name, topic, profile.profile.public_signing_key)
    return address, message, profile


@routes.post("/account/{ensName}")
async def create_account(request: web.Request) -> web.Response:
    address, message, profile = await _signed(request, "createAccount")
    account = await request.app[accounts_key].create_signed(address, message, profile)
    log.info("account created", extra={"account_ref": request.app[at_rest_key].log_ref(address)})
    return web.json_response(account.to_json(), status=201)


@routes.delete("/account/{ensName}")
async def delete_account(request: web.Request) -> web.Response:
    address, message, _ = await _signed(request, "deleteAccount")
    dropped = await request.app[accounts_key].delete_signed(address, message)
    log.info("account deleted", extra={"account_ref": request.app[at_rest_key].log_ref(address), "dropped": dropped})
    return web.json_response({"deleted": address, "droppedMessages": dropped})


@routes.post("/account/{ensName}/binding")
async def bind_account(request: web.Request) -> web.Response:
    """Bind the account to the profile ENS now publishes for the name (wallet-signed message);
    creates the account when it is absent or deleted (201)."""
    name = path_name(request)
    binding = SignedBinding.from_body(await read_json(request))
    address = await address_of(request, name)
    accounts = request.app[accounts_key]
    await accounts.check_binding(binding, name, address)
    profile = await _profile(request, name)
    forget = getattr(request.app[directory_key], "forget", None)
    if profile.profile.public_signing_key != binding.signing_key and callable(forget):
        # The owner has just published the profile it binds: read ENS afresh, not the cache.
        forget(name)
        profile = await _profile(request, name)
    account, created = await accounts.bind(address, binding, profile)
    log.info("account bound to a key", extra={"account_ref": request.app[at_rest_key].log_ref(address), "created": created})
    return web.json_response(account.to_json(), status=201 if created else 200)


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


@routes.put("/account/{ensName}/devices")
async def put_devices(request: web.Request) -> web.Response:
    """Replace the account's device list with a wallet-signed one (:mod:`delivery.devices`)."""
    name = path_name(request)
    message = SignedDevices.from_body(await read_json(request))
    address = await address_of(request, name)
    accounts = request.app[accounts_key]
    await accounts.check_binding(message, name, address)
    devices, left = await accounts.set_devices(address, message)
    log.info("device list set", extra={"account_ref": request.app[at_rest_key].log_ref(address), "devices": len(devices.devices), "left": left})
    return web.json_response({**devices.to_json(), "releasedMessages": left})


@routes.get("/account/{ensName}/devices")
async def get_devices(request: web.Request) -> web.Response:
    """The account's device list (empty without one) and the session's own device."""
    _, account = await require_session(request)
    body = (account.devices or NO_DEVICES).to_json()
    return web.json_response({**body, "device": request[session_request_key].device or None})
