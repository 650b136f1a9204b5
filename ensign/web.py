"""HTTP pieces every Ensign service shares: JSON errors, JSON request bodies, CORS.

* :func:`error_middleware` turns every failure into ``{"error": code, "message": text}`` with the
  right status, so a client never has to parse HTML or guess:

  =====================================  ======  ==========================================
  raised                                 status  body ``error``
  =====================================  ======  ==========================================
  :class:`ensign.errors.EnsignError`     its     its ``code`` (and ``details`` if set)
  aiohttp ``HTTPException`` (≥ 400)      its     ``not_found``, ``method_not_allowed``, …
  Redis unreachable or cluster down      503     ``unavailable``
  anything else                          500     ``internal`` (logged with traceback)
  =====================================  ======  ==========================================

  The translation itself is :mod:`ensign.answers`, which the JSON-RPC endpoint and the socket
  handshake use too.

* :func:`read_json` reads a request body as JSON of an expected top-level type (400 otherwise),
  through :func:`read_body` (415/400 for a Content-Encoding that is unknown or does not decode)
  and :func:`ensign.protocol.safe_json.parse_json` (depth, number and surrogate limits).
* :func:`cors_middleware` answers pre-flight requests and marks every response readable from
  browsers, which dm3's web clients need.

* :func:`deadline_middleware` gives every request a deadline (408 or 503 past it).

Use the middlewares in this order: ``[cors_middleware(), error_middleware, deadline_middleware(s)]``,
so error responses get CORS headers too and a missed deadline becomes a JSON error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection
from typing import Any, TypeVar, overload

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage
from aiohttp.web_protocol import RequestPayloadError
from aiohttp.typedefs import Handler, Middleware

from ensign.answers import as_error, http_response
from ensign.errors import (
    EncodingError,
    EnsignError,
    InvalidJson,
    InvalidRequest,
    RequestTimeout,
    ServiceUnavailable,
    UnsupportedMediaType,
)
from ensign.logs import (
    REQUEST_ID_HEADER,
    install_request_id_factory,
    log_request_line,
    new_request_id,
    request_fields_var,
    request_id_var,
)
from ensign.protocol.safe_json import parse_json

__all__ = [
    "Handler",
    "Middleware",
    "RequestObserver",
    "cors_middleware",
    "deadline_middleware",
    "error_middleware",
    "read_body",
    "read_json",
    "request_log_middleware",
]


T = TypeVar("T", dict[str, Any], list[Any])

# Stable codes for aiohttp's own HTTP errors (unknown route, wrong method, body too large, …).
_HTTP_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    408: "request_timeout",
    409: "conflict",
    411: "length_required",
    413: "payload_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    429: "too_many_requests",
}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map exceptions to JSON error responses (see the module docstring for the table)."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            # Redirects and 2xx raised as exceptions are answers, not errors.
            raise
        error = EnsignError(_http_message(request, exc), code=_HTTP_CODES.get(exc.status, "http_error"))
        error.status = exc.status
        response = http_response(error)
        # Keep headers such as Allow (405) that tell the client what to do instead.
        for name, value in exc.headers.items():
            if name.lower() not in ("content-type", "content-length"):
                response.headers[name] = value
        return response
    except Exception as exc:
        return http_response(as_error(exc, f"{request.method} {request.path}"))


def _http_message(request: web.Request, exc: web.HTTPException) -> str:
    if exc.status == 404:
        return f"no endpoint at {request.path}"
    if exc.status == 405:
        return f"{request.method} is not allowed on {request.path}"
    text = exc.text or ""
    # aiohttp's default text is "<status>: <reason>"; a specific text (e.g. the body limit) is better.
    if text and not text.startswith(f"{exc.status}:"):
        return text
    return exc.reason


@overload
async def read_json(request: web.Request) -> dict[str, Any]: ...


@overload
async def read_json(request: web.Request, expected: type[T]) -> T: ...


async def read_json(request: web.Request, expected: type[Any] = dict) -> Any:
    """Read the request body as JSON whose top-level value is ``expected`` (``dict`` by default).

    Raises :class:`~ensign.errors.InvalidJson` (400, code ``invalid_json``) for an empty body, bytes that are
    not UTF-8 JSON, the constants ``NaN``/``Infinity``, and a top-level value of another type. The
    ``Content-Type`` header is not checked: curl users forget it, and the body decides anyway.
    A body over the application's ``client_max_size`` is a 413 raised by aiohttp.
    """
    raw = await read_body(request)
    if not raw.strip():
        raise InvalidJson("request body is empty; expected JSON")
    try:
        value = parse_json(raw, what="request body")
    except EncodingError as exc:
        raise InvalidJson(exc.message) from None
    if not isinstance(value, expected):
        want = "a JSON object" if expected is dict else "a JSON array" if expected is list else expected.__name__
        raise InvalidJson(f"request body must be {want}, got {_json_type(value)}")
    return value


#: Content-Encodings of request bodies that aiohttp decodes (``identity`` means none).
BODY_ENCODINGS = frozenset({"", "identity", "gzip", "x-gzip", "deflate"})


async def read_body(request: web.Request) -> bytes:
    """The request body, decoded as its ``Content-Encoding`` says.

    Raises :class:`UnsupportedMediaType` (415, code ``unsupported_encoding``) for an encoding
    other than gzip or deflate, and 400 (``invalid_request``, with ``Connection: close``) for a body that does not decode
    as its encoding says; aiohttp would let the first through undecoded and turn the second into
    a 500. A body over the app's ``client_max_size`` stays aiohttp's 413.
    """
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in BODY_ENCODINGS:
        raise UnsupportedMediaType(
            f"Content-Encoding {encoding[:40]!r} is not supported; send gzip, deflate or none",
            code="unsupported_encoding",
        )
    try:
        return await request.read()
    except (BadHttpMessage, RequestPayloadError):
        # aiohttp drops the connection after a body it could not decode; say so, or a client
        # reusing the connection gets a reset on its next request.
        raise web.HTTPBadRequest(
            text=f"request body does not decode as its Content-Encoding ({encoding})", headers={"Connection": "close"}
        ) from None


def _json_type(value: object) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return "null"


def cors_middleware(
    origins: Collection[str] | str = "*",
    *,
    allow_headers: Collection[str] = ("Authorization", "Content-Type"),
    max_age: int = 600,
) -> Middleware:
    """CORS for browser clients.

    :param origins: ``"*"`` (default) allows every origin; otherwise the exact origins allowed
        (``"https://app.example"``). Ensign never relies on cookies, so credentials are not allowed.
    :param allow_headers: request headers a browser may send.
    :param max_age: seconds a browser may cache a pre-flight answer (default 600).

    A pre-flight (``OPTIONS`` with ``Access-Control-Request-Method``) is answered 204 here, before
    routing, so handlers need no ``OPTIONS`` routes. A request from a disallowed origin is served
    without CORS headers, and the browser then hides the answer from the page.
    """
    allow_all = origins == "*"
    allowed = frozenset() if isinstance(origins, str) else frozenset(origins)
    headers_value = ", ".join(allow_headers)

    def allow_origin(origin: str | None) -> str | None:
        if origin is None:
            return None
        if allow_all:
            return "*"
        return origin if origin in allowed else None

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = allow_origin(request.headers.get("Origin"))
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            response: web.StreamResponse = web.Response(status=204)
            if origin is not None:
                response.headers["Access-Control-Allow-Origin"] = origin
                response.headers["Access-Control-Allow-Methods"] = "GET, POST, PUT, DELETE, OPTIONS"
                response.headers["Access-Control-Allow-Headers"] = headers_value
                response.headers["Access-Control-Max-Age"] = str(max_age)
            if not allow_all:
                response.headers["Vary"] = "Origin"
            return response
        response = await handler(request)
        if origin is not None and not response.prepared:
            response.headers["Access-Control-Allow-Origin"] = origin
            if not allow_all:
                response.headers.add("Vary", "Origin")
        return response

    return middleware


RequestObserver = Callable[[str, str, int, float], None]
"""Called once per request with (method, route template, status, seconds), e.g. to feed metrics."""

_request_log = logging.getLogger("ensign.request")


def request_log_middleware(observe: RequestObserver | None = None) -> Middleware:
    """Give each request an id and log one line for it (method, route template, status, ms).

    The id is the client's ``X-Request-Id`` when it is a plain short token, otherwise a new one; it
    is echoed in the response and stamped on every log line written while the request is handled.
    Place it first, so the line records the status the error middleware produced. Handlers add
    their own fields to that line with :func:`ensign.logs.add_request_fields`.

    :param observe: also told about every request (each service records latency metrics)
    """
    install_request_id_factory()

    @web.middleware
    async def request_log(request: web.Request, handler: Handler) -> web.StreamResponse:
        request_id = new_request_id(request.headers.get(REQUEST_ID_HEADER))
        token = request_id_var.set(request_id)
        fields: dict[str, Any] = {}
        fields_token = request_fields_var.set(fields)
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            if not response.prepared:
                response.headers[REQUEST_ID_HEADER] = request_id
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            elapsed = time.perf_counter() - started
            resource = request.match_info.route.resource
            route = resource.canonical if resource is not None else "unmatched"
            if observe is not None:
                observe(request.method, route, status, elapsed)
            log_request_line(
                _request_log, f"{request.method} {route} {status}",
                {**fields, "status": status, "ms": round(elapsed * 1000, 1)},
            )
            request_fields_var.reset(fields_token)
            request_id_var.reset(token)

    return request_log


class _DeadlineWatch:
    """The deadlines of one event loop's requests, checked by one timer every ``tick`` seconds.

    ``asyncio.timeout`` schedules and cancels a timer per request (with its task lookups: 2 % of a
    submission's CPU); here a request costs a dict entry, and the timer only runs while requests
    are in flight. A deadline is kept within ``tick`` (at most a tenth of it, and 1 s) late.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, tick: float) -> None:
        self.loop = loop
        self._tick = tick
        self._entries: dict[int, tuple[float, asyncio.Task[Any], list[bool]]] = {}
        self._timer: asyncio.TimerHandle | None = None

    def watch(self, task: asyncio.Task[Any], at: float) -> list[bool]:
        """Cancel ``task`` once the loop's clock passes ``at``, until :meth:`forget`; the list
        returned holds ``True`` once that happened."""
        fired = [False]
        self._entries[id(fired)] = (at, task, fired)
        if self._timer is None:
            self._timer = self.loop.call_at(at, self._check)
        return fired

    def forget(self, fired: list[bool]) -> None:
        self._entries.pop(id(fired), None)

    def _check(self) -> None:
        self._timer = None
        now = self.loop.time()
        for key, (at, task, fired) in list(self._entries.items()):
            if at <= now:
                del self._entries[key]
                fired[0] = True
                task.cancel()
        if self._entries:
            self._timer = self.loop.call_at(now + self._tick, self._check)


def deadline_middleware(seconds: float, *, exempt_prefixes: tuple[str, ...] = ()) -> Middleware:
    """Cancel a request that takes longer than ``seconds``, reading its body included.

    Past the deadline the client gets 408 (``request_timeout``) if its body had not fully arrived
    (a client sending slowly) and 503 (``unavailable``) otherwise (the service was too slow).
    Paths under ``exempt_prefixes`` (socket.io's long-lived connections) have no deadline.
    Place it after :func:`error_middleware`, which turns the errors into JSON. The deadline is
    kept within a tenth of ``seconds`` (at most 1 s) late (:class:`_DeadlineWatch`).
    """
    tick = min(1.0, seconds / 10)
    watches: list[_DeadlineWatch] = []

    @web.middleware
    async def deadline(request: web.Request, handler: Handler) -> web.StreamResponse:
        if exempt_prefixes and request.path.startswith(exempt_prefixes):
            return await handler(request)
        loop = asyncio.get_running_loop()
        if not watches or watches[0].loop is not loop:
            watches[:] = [_DeadlineWatch(loop, tick)]
        watch = watches[0]
        task = asyncio.current_task()
        assert task is not None  # a request is handled in a task
        cancelling = task.cancelling()
        fired = watch.watch(task, loop.time() + seconds)
        try:
            return await handler(request)
        except asyncio.CancelledError:
            # Ours when the watch fired and no one else cancelled the task meanwhile (the rule of
            # asyncio.timeout): then a timeout; else the cancellation goes on.
            if not fired[0]:
                raise
            fired[0] = False  # uncancelled here, not again below
            if task.uncancel() > cancelling:
                raise
        finally:
            watch.forget(fired)
            if fired[0]:  # fired, but the handler swallowed the cancellation: take it back
                task.uncancel()
        if request.body_exists and not request.content.at_eof():
            raise RequestTimeout(f"the request body did not arrive within {seconds:g} s")
        raise ServiceUnavailable(f"the request took longer than {seconds:g} s; try again later")

    return deadline
