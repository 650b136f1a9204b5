"""The one translation from an error to what a caller is told, for every transport.

:func:`as_error` turns any exception into an :class:`~ensign.errors.EnsignError`:

=====================================  ======  ===============  ==========================================
raised                                 status  ``code``         logged
=====================================  ======  ===============  ==========================================
:class:`ensign.errors.EnsignError`     its     its own          as a warning when its status is ≥ 500
Redis unreachable or cluster down      503     ``unavailable``  as a warning, with the traceback
anything else                          500     ``internal``     as an error, with the traceback
=====================================  ======  ===============  ==========================================

Every 503 answer over HTTP carries ``Retry-After: 1`` (:data:`RETRY_AFTER_SECONDS`): Redis or the
chain is restarting or failing over, which takes seconds, and the request is safe to repeat.
The 500 answer says nothing about the cause: exception text can hold keys or paths. Which Redis
errors mean "unavailable" is :func:`ensign.redis_client.redis_unavailable`. The error then gives
each transport its answer:

* HTTP (:func:`http_response`, used by :func:`ensign.web.error_middleware`): its status and
  ``{"error": code, "message": text}`` (plus ``details`` when set); a 429 also the header
  ``Retry-After`` (whole seconds), on JSON-RPC answers too;
* JSON-RPC (:func:`jsonrpc_response`, used by ``POST /rpc``): its status and
  ``{"jsonrpc": "2.0", "id": …, "error": {"code": jsonrpc_code, "message": text, "data": {"error": code}}}``
  (``data.details`` too when set);
* socket.io (:func:`socket_refusal`, used by the push handshake and its ``submitMessage`` ack):
  ``{"error": message}``.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from ensign.errors import EnsignError, ServiceUnavailable, TooManyRequests
from ensign.redis_client import redis_unavailable

__all__ = ["RETRY_AFTER_SECONDS", "as_error", "http_response", "jsonrpc_body", "jsonrpc_response", "socket_refusal"]

log = logging.getLogger(__name__)

UNAVAILABLE_MESSAGE = "the data store is unreachable; try again later"
INTERNAL_MESSAGE = "internal server error"

#: Seconds a client is told to wait (``Retry-After``) before repeating a request answered 503.
RETRY_AFTER_SECONDS = 1


def as_error(exc: BaseException, where: str) -> EnsignError:
    """The error to answer ``exc`` with; ``where`` (e.g. ``"GET /inbox/{name}"``) goes in the log line."""
    if isinstance(exc, EnsignError):
        if exc.status >= 500:
            log.warning("%s -> %d %s: %s", where, exc.status, exc.code, exc.message)
        return exc
    if redis_unavailable(exc):
        log.warning("%s -> 503: Redis unreachable", where, exc_info=exc)
        return ServiceUnavailable(UNAVAILABLE_MESSAGE)
    log.error("%s -> 500: unhandled error", where, exc_info=exc)
    return EnsignError(INTERNAL_MESSAGE)


def http_response(error: EnsignError) -> web.Response:
    """The JSON error answer every Ensign HTTP route gives (a 503 with ``Retry-After``)."""
    return web.json_response(error.to_json(), status=error.status, headers=_headers(error))


def jsonrpc_body(error: EnsignError, request_id: Any) -> dict[str, Any]:
    """A JSON-RPC 2.0 error object for ``error``; ``data.error`` is the stable code."""
    data: dict[str, Any] = {"error": error.code}
    if error.details is not None:
        data["details"] = error.details
    detail = {"code": error.jsonrpc_code, "message": error.message, "data": data}
    return {"jsonrpc": "2.0", "id": request_id, "error": detail}


def jsonrpc_response(error: EnsignError, request_id: Any) -> web.Response:
    """The JSON-RPC error answer, with the error's HTTP status (dm3 clients treat any 2xx as delivered)."""
    return web.json_response(jsonrpc_body(error, request_id), status=error.status, headers=_headers(error))


def _headers(error: EnsignError) -> dict[str, str] | None:
    if isinstance(error, TooManyRequests):
        return {"Retry-After": str(error.retry_after)}
    # Redis or the chain restarting or failing over takes seconds, and the request is safe to repeat.
    return {"Retry-After": str(RETRY_AFTER_SECONDS)} if error.status == 503 else None


def socket_refusal(error: EnsignError) -> dict[str, str]:
    """What a socket.io client is told when its handshake or submission is refused."""
    return {"error": error.message}
