"""``POST /rpc``: dm3's JSON-RPC methods, with JSON-RPC error objects (dm3 answers bare 400s).

Success is HTTP 200 ``{"jsonrpc": "2.0", "id": <id>, "result": …}``. A failure is HTTP 4xx/5xx (the
error's status, so dm3 clients, which use axios and treat any 2xx as delivered, see the failure and
try the receiver's next delivery service) with
``{"jsonrpc": "2.0", "id": <id>, "error": {"code": <int>, "message": <text>, "data": {"error": <code>}}}``.

===========  ==================================  =========================================
code         error (``data.error``)              when
===========  ==================================  =========================================
-32700       ``invalid_json``                    the body is not JSON
-32600       ``invalid_request``                 not a JSON-RPC request object
-32601       ``method_not_found``                unknown method (HTTP 405, as dm3)
-32602       ``invalid_params`` / schema codes   params or the envelope have the wrong shape
-32010       ``spam``                            the receiver's spam rules refuse the sender
-32011       ``message_too_large``               canonical size above the limit
-32012       ``delivery_information_unreadable`` not encrypted to this service's key
-32013       ``receiver_unknown``                ``to`` does not resolve / has no profile
-32014       ``receiver_without_account``        ``to`` has no account here
-32015       ``sender_unknown``                  ``from`` has no valid profile
-32016       ``sender_not_verified``             metadata signature / hash do not verify
-32017       ``queue_full``                      the receiver's queue is full
-32018       ``unknown_user``                    dm3_getProfileExtension for a name without account
-32000       ``unavailable``                     Redis or the chain unreachable (HTTP 503)
-32603       ``internal``                        anything else (HTTP 500, logged)
===========  ==================================  =========================================
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from ensign.errors import EnsignError, InvalidRequest, NotFound, ProtocolError
from ensign.protocol.canonical import parse_json, stringify
from ensign.redis_client import REDIS_UNAVAILABLE

from .ports import address_or_none
from .state import accounts_key, directory_key, intake_key, settings_key
from .web_auth import path_name_of

log = logging.getLogger(__name__)

routes = web.RouteTableDef()

RPC_CODES: dict[str, int] = {
    "invalid_json": -32700,
    "invalid_request": -32600,
    "method_not_found": -32601,
    "invalid_params": -32602,
    "spam": -32010,
    "message_too_large": -32011,
    "delivery_information_unreadable": -32012,
    "receiver_unknown": -32013,
    "receiver_without_account": -32014,
    "sender_unknown": -32015,
    "sender_not_verified": -32016,
    "queue_full": -32017,
    "unknown_user": -32018,
    "unavailable": -32000,
    "internal": -32603,
}

# dm3's default profile extension says NEW is not supported (dm3 reference §11.10); ours lists none.
PROFILE_EXTENSION = {"encryptionAlgorithm": ["x25519-chacha20-poly1305"], "notSupportedMessageTypes": []}


def rpc_code(exc: EnsignError) -> int:
    """The JSON-RPC code of an error: its own, else -32602 for bad input, else by status."""
    if exc.code in RPC_CODES:
        return RPC_CODES[exc.code]
    if isinstance(exc, (ProtocolError, InvalidRequest)):
        return -32602
    return -32603 if exc.status >= 500 else -32600


def _error(request_id: Any, status: int, code: int, name: str, message: str) -> web.Response:
    body = {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message, "data": {"error": name}}}
    return web.json_response(body, status=status)


def _result(request_id: Any, result: Any) -> web.Response:
    return web.json_response({"jsonrpc": "2.0", "id": request_id, "result": result})


@routes.post("/rpc")
async def rpc(request: web.Request) -> web.Response:
    request_id: Any = None
    try:
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _error(None, 413, -32011, "message_too_large", "the request body is larger than this service accepts")
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            return _error(None, 400, -32700, "invalid_json", "the body is not JSON")
        if not isinstance(body, dict):
            return _error(None, 400, -32600, "invalid_request", "a JSON-RPC request must be an object")
        request_id = body.get("id")
        if isinstance(request_id, (dict, list)):
            request_id = None
        method = body.get("method")
        params = body.get("params", [])
        if not isinstance(method, str) or not isinstance(params, list):
            return _error(request_id, 400, -32600, "invalid_request", "method must be a string and params an array")
        handler = _METHODS.get(method)
        if handler is None:
            return _error(request_id, 405, -32601, "method_not_found", f"method {method} is not supported")
        return _result(request_id, await handler(request, params))
    except EnsignError as exc:
        return _error(request_id, exc.status, rpc_code(exc), exc.code, exc.message)
    except REDIS_UNAVAILABLE:
        log.warning("rpc: Redis unreachable", exc_info=True)
        return _error(request_id, 503, -32000, "unavailable", "the data store is unreachable; try again later")
    except Exception:
        log.exception("rpc: unhandled error")
        return _error(request_id, 500, -32603, "internal", "internal server error")


async def submit_message(request: web.Request, params: list[Any]) -> str:
    """``dm3_submitMessage``: params[0] is the envelope as a JSON string (an object is accepted too)."""
    if not params:
        raise InvalidRequest("params[0] must hold the envelope", code="invalid_params")
    envelope = params[0]
    if isinstance(envelope, str):
        envelope = parse_json(envelope, what="params[0]")
    await request.app[intake_key].submit(envelope)
    return "OK"


async def delivery_service_properties(request: web.Request, params: list[Any]) -> str:
    """``dm3_getDeliveryServiceProperties``: public limits only, as a JSON string (dm3 parses it).

    ``messageTTL`` is in seconds here (dm3's unit is unsettled, see the reference §5.1).
    """
    settings = request.app[settings_key]
    return stringify({"messageTTL": settings.message_ttl, "sizeLimit": settings.message_size_limit})


async def profile_extension(request: web.Request, params: list[Any]) -> str:
    """``dm3_getProfileExtension``: params[0] is a name with an account here; a JSON string."""
    if not params or not isinstance(params[0], str):
        raise InvalidRequest("params[0] must be the name", code="invalid_params")
    name = path_name_of(params[0])
    address = await address_or_none(request.app[directory_key], name)
    if address is None or await request.app[accounts_key].get(address) is None:
        raise NotFound("unknown user", code="unknown_user")
    return stringify(PROFILE_EXTENSION)


_METHODS = {
    "dm3_submitMessage": submit_message,
    "dm3_getDeliveryServiceProperties": delivery_service_properties,
    "dm3_getProfileExtension": profile_extension,
}
