"""The per-client-address limits of HTTP requests (:mod:`delivery.limits` keeps the buckets).

Which requests count (:func:`limits_middleware`):

* every request without a session — the signed account routes, sign-up, ``POST /rpc``
  (submissions), profile reads — takes a token of the ``address`` bucket of its client address,
  before its handler runs; on ``POST /rpc``, when the process can lend the address a token
  (:meth:`delivery.limits.RateLimiter.defer`), a ``dm3_submitMessage`` takes it in its queue
  insert's call instead, any other method before it runs (:func:`take_lent_token`), and a request
  that ends without taking it takes it at its end, a refusal then being its answer;
* login attempts — ``GET``/``POST /auth/<name>`` and ``POST /profile/<name>`` (dm3 sign-up, which
  answers a challenge) — take a token of the ``login`` bucket first;
* the routes that need a session token (inbox, acknowledgements, account reads and settings,
  notifications) do not: their token is checked before anything costly. Neither do ``/health``, ``/hello``,
  ``/metrics``, CORS pre-flights and the socket.io transport, whose handshake takes its own
  ``address`` token and a socket slot (:mod:`delivery.push`).

The client address is :func:`delivery.limits.client_address`: the peer, or behind a proxy listed in
``TRUSTED_PROXIES`` the address that proxy saw (``X-Forwarded-For``). Over a limit: 429 with
``Retry-After`` and ``{"error": "rate_limited", "details": {"limit": …}}``; on ``POST /rpc`` the
same as a JSON-RPC error (code -32020).
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from ensign.answers import as_error, jsonrpc_response

from .errors import RateLimited
from .limits import DeferredTake, RateLimiter, client_address
from .appkeys import settings_key

__all__ = ["SESSION_ROUTES", "deferred_key", "limiter_key", "limits_middleware", "take_lent_token"]

limiter_key = web.AppKey("limiter_key", RateLimiter)
#: The ``address`` token lent to a ``POST /rpc`` request, when one was.
deferred_key = web.RequestKey("deferred_key", DeferredTake)

#: (method, route) pairs authenticated by a session token: not counted per address.
SESSION_ROUTES = frozenset(
    {
        ("GET", "/account/{ensName}"),
        ("PUT", "/account/{ensName}/settings"),
        ("GET", "/account/{ensName}/devices"),
        ("GET", "/delivery/messages/incoming/{ensName}"),
        ("GET", "/delivery/messages/incoming/{ensName}/"),
        ("POST", "/delivery/messages/{ensName}/syncAcknowledgements"),
        ("POST", "/delivery/messages/{ensName}/syncAcknowledgements/"),
        # dm3's notification routes (delivery.web_notifications), every one behind the session.
        ("POST", "/notifications/global/{ensName}"),
        ("GET", "/notifications/global/{ensName}"),
        ("POST", "/notifications/{ensName}"),
        ("GET", "/notifications/{ensName}"),
        ("POST", "/notifications/otp/{ensName}"),
        ("POST", "/notifications/otp/verify/{ensName}"),
        ("POST", "/notifications/channel/{ensName}"),
        ("DELETE", "/notifications/channel/{channelType}/{ensName}"),
    }
)
_LOGIN_ROUTES = frozenset({("GET", "/auth/{ensName}"), ("POST", "/auth/{ensName}"), ("POST", "/profile/{ensName}")})
_EXEMPT_PATHS = ("/health", "/hello", "/metrics", "/socket.io")
_RPC = ("POST", "/rpc")


@web.middleware
async def limits_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Take the request's tokens (module docstring) before the handler runs."""
    if request.method == "OPTIONS" or request.path.startswith(_EXEMPT_PATHS):
        return await handler(request)
    resource = request.match_info.route.resource
    route = (request.method, resource.canonical if resource is not None else request.path)
    if route in SESSION_ROUTES:
        return await handler(request)
    limits = request.app[settings_key].limits
    limiter = request.app[limiter_key]
    address = client_address(request, limits.trusted_proxies)
    deferred = limiter.defer("address", limits.address, address) if route == _RPC else None
    if deferred is not None:
        return await _with_lent_token(request, handler, limiter, deferred)
    try:
        login = ("login", limits.login if route in _LOGIN_ROUTES else None, address)
        await limiter.take_all([login, ("address", limits.address, address)])
    except Exception as exc:
        if route == _RPC:
            return jsonrpc_response(as_error(exc, "rpc"), None)
        raise
    return await handler(request)


async def _with_lent_token(
    request: web.Request, handler: Handler, limiter: RateLimiter, deferred: DeferredTake
) -> web.StreamResponse:
    """Run a ``POST /rpc`` request on a lent ``address`` token, then settle the loan."""
    request[deferred_key] = deferred
    try:
        response = await handler(request)
    except BaseException:
        limiter.settle_soon(deferred)
        raise
    try:
        await limiter.settle(deferred)
    except Exception as exc:
        if response.status == 429:  # refused already, by this bucket or another: that answer stands
            return response
        return jsonrpc_response(as_error(exc, "rpc"), None)  # as it would have been before it ran
    return response


async def take_lent_token(request: web.Request) -> None:
    """Take the request's lent ``address`` token now, if it has one not taken yet: before a
    method that does not take it in a write of its own runs.

    :raises RateLimited: the client address's bucket is empty.
    """
    deferred = request.get(deferred_key)
    if deferred is None:
        return
    try:
        await request.app[limiter_key].take_all([], deferred=deferred)
    except RateLimited:
        deferred.claim()  # refused, so nothing is left to take when the request ends
        raise
