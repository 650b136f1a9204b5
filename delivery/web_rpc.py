"""``POST /rpc``: dm3's JSON-RPC methods, with JSON-RPC error objects (dm3 answers bare 400s).

Success is HTTP 200 ``{"jsonrpc": "2.0", "id": <id>, "result": …}``. A failure is HTTP 4xx/5xx (the
error's status, so dm3 clients, which use axios and treat any 2xx as delivered, see the failure and
try the receiver's next delivery service) with
``{"jsonrpc": "2.0", "id": <id>, "error": {"code": <int>, "message": <text>, "data": {"error": <code>}}}``,
made by :func:`ensign.answers.jsonrpc_response`. Each error's JSON-RPC code is on its class: the
table is in :mod:`delivery.errors` (and ``specs/delivery.md`` §5).
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from ensign.answers import as_error, jsonrpc_response
from ensign.errors import EncodingError, InvalidJson, InvalidRequest
from ensign.protocol.canonical import parse_json, stringify
from ensign.web import read_body

from .appkeys import accounts_key, directory_key, intake_key, multi_intake_key, settings_key
from .forwarder import FORWARD_METHOD, FORWARD_MULTI_METHOD
from .errors import InvalidParams, MessageTooLarge, MethodNotFound, UnknownUser
from .ports import address_or_none
from .web_auth import path_name_of
from .web_limits import deferred_key, take_lent_token

routes = web.RouteTableDef()

# dm3's default profile extension says the NEW message type is not supported; ours lists none.
PROFILE_EXTENSION = {"encryptionAlgorithm": ["x25519-chacha20-poly1305"], "notSupportedMessageTypes": []}


def _result(request_id: Any, result: Any) -> web.Response:
    answer = {"jsonrpc": "2.0", "id": request_id, "result": result}
    try:
        # Every submission's answer: orjson writes it in a third of json_response's CPU.
        body = orjson.dumps(answer)
    except TypeError:  # what orjson does not write (an integer id past 64 bits): the stdlib can
        return web.json_response(answer)
    return web.Response(body=body, content_type="application/json")


@routes.post("/rpc")
async def rpc(request: web.Request) -> web.Response:
    request_id: Any = None
    try:
        try:
            raw = await read_body(request)
        except web.HTTPRequestEntityTooLarge:
            raise MessageTooLarge("the request body is larger than this service accepts") from None
        except web.HTTPBadRequest as exc:  # the body does not decode as its Content-Encoding
            # aiohttp drops the connection after such a body: say so (see ensign.web.read_body).
            response = jsonrpc_response(InvalidJson(exc.text or "the body cannot be decoded"), None)
            response.headers["Connection"] = "close"
            return response
        try:
            body = parse_json(raw, what="the body")
        except EncodingError as exc:
            raise InvalidJson(exc.message) from None
        if not isinstance(body, dict):
            raise InvalidRequest("a JSON-RPC request must be an object")
        request_id = body.get("id")
        if isinstance(request_id, (dict, list)):
            request_id = None
        method = body.get("method")
        params = body.get("params", [])
        if not isinstance(method, str) or not isinstance(params, list):
            raise InvalidRequest("method must be a string and params an array")
        handler = _METHODS.get(method)
        if handler is None:
            raise MethodNotFound(f"method {method} is not supported")
        if handler is not submit_message:  # only a submission takes the address token in its write
            await take_lent_token(request)
        return _result(request_id, await handler(request, params))
    except Exception as exc:
        return jsonrpc_response(as_error(exc, "rpc"), request_id)


async def submit_message(request: web.Request, params: list[Any]) -> str:
    """``dm3_submitMessage``: params[0] is the envelope as a JSON string (an object is accepted too)."""
    if not params:
        raise InvalidParams("params[0] must hold the envelope")
    envelope = params[0]
    if isinstance(envelope, str):
        envelope = parse_json(envelope, what="params[0]")
    await request.app[intake_key].submit(envelope, deferred=request.get(deferred_key))
    return "OK"


async def forward_message(request: web.Request, params: list[Any]) -> str:
    """``ensign_forwardMessage``: another delivery service hands an envelope on.

    params[0] is the envelope (object or JSON string), params[1] the forwarding note (object),
    both as :mod:`delivery.forwarder` sends them; intake checks the note (``specs/delivery.md`` §4.5).
    """
    await request.app[intake_key].submit(*_envelope_and_note(params))
    return "OK"


def _envelope_and_note(params: list[Any]) -> tuple[Any, dict[str, Any]]:
    """params[0], the envelope (a JSON string is parsed), and params[1], the forwarding note."""
    if len(params) != 2:
        raise InvalidParams("params must hold the envelope and the forwarding note")
    envelope, note = params
    if isinstance(envelope, str):
        envelope = parse_json(envelope, what="params[0]")
    if not isinstance(note, dict):
        raise InvalidParams("params[1] must be the forwarding note, an object")
    return envelope, note


async def submit_multi_message(request: web.Request, params: list[Any]) -> dict[str, Any]:
    """``ensign_submitMultiMessage``: params[0] is an ``ensign-multi-v1`` envelope (JSON string or
    object); the result lists each receiver's outcome (:mod:`delivery.multi_intake`)."""
    if not params:
        raise InvalidParams("params[0] must hold the envelope")
    envelope = params[0]
    if isinstance(envelope, str):
        envelope = parse_json(envelope, what="params[0]")
    return (await request.app[multi_intake_key].submit(envelope)).to_json()


async def forward_multi_message(request: web.Request, params: list[Any]) -> dict[str, Any]:
    """``ensign_forwardMultiMessage``: another delivery service hands on an ``ensign-multi-v1``
    envelope (params[0], object or JSON string) for the receivers its note (params[1]) names; the
    result lists those receivers' outcomes (``specs/delivery.md`` §4.6)."""
    return (await request.app[multi_intake_key].submit(*_envelope_and_note(params))).to_json()


async def delivery_service_properties(request: web.Request, params: list[Any]) -> str:
    """``dm3_getDeliveryServiceProperties``: public limits only, as a JSON string (dm3 parses it).

    ``messageTTL`` is in seconds here (dm3's own code is inconsistent about the unit).
    """
    settings = request.app[settings_key]
    return stringify({"messageTTL": settings.message_ttl, "sizeLimit": settings.message_size_limit})


async def profile_extension(request: web.Request, params: list[Any]) -> str:
    """``dm3_getProfileExtension``: params[0] is a name with an account here; a JSON string."""
    if not params or not isinstance(params[0], str):
        raise InvalidParams("params[0] must be the name")
    name = path_name_of(params[0])
    address = await address_or_none(request.app[directory_key], name)
    if address is None or await request.app[accounts_key].get(address) is None:
        raise UnknownUser("unknown user")
    return stringify(PROFILE_EXTENSION)


_METHODS = {
    "dm3_submitMessage": submit_message,
    FORWARD_METHOD: forward_message,
    "dm3_getDeliveryServiceProperties": delivery_service_properties,
    "dm3_getProfileExtension": profile_extension,
    "ensign_submitMultiMessage": submit_multi_message,
    FORWARD_MULTI_METHOD: forward_multi_message,
}
