"""The EIP-3668 (CCIP-Read) gateway: signed answers for the OffchainResolver contract.

The gateway has no database. For each request it decodes the resolver's calldata, asks its
:class:`~resolver.records.RecordSource` (the profile backend in production) for the name's
records, encodes the one record asked for and signs the answer so that the resolver's
``resolveWithProof`` accepts it. Formats are in ``specs/gateway.md``; the wire encodings are in
:mod:`ensign.ens.ccip`.

===========================  ==================================================================
route                        answer
===========================  ==================================================================
``GET /{sender}/{data}``     ``200 {"data": "0x…"}``; ``{data}`` may end in ``.json``
``POST /``                   the same for a JSON body ``{"sender": "0x…", "data": "0x…"}``
``OPTIONS`` (any path)       CORS pre-flight, 204
``GET /health``              ``200 {"status": "ok", "signer": "0x…", "format": "…"}`` (+ ``signers``)
===========================  ==================================================================

``data`` is ``resolve(bytes name, bytes call)`` (and, with ``answer_format="dm3"``, dm3's
``resolveWithContext(bytes,bytes,bytes)``) wrapping ``text``, ``addr``, ``addr(coinType)`` or
``contenthash``. With ``batch_gateway=True`` it may also be an ENSIP-21 batch ``query(...)``, which
the dev chain's Universal Resolver stand-in sends; that handler fetches the URLs it is given, so it
is for the embedded dev stack only, never for a public gateway.

Errors are JSON ``{"error": code, "message": text}``; ``message`` is what ccip-read clients read:

======  =========================================================================================
status  when
======  =========================================================================================
400     ``sender`` is not an address or ``data`` not hex: ``"Invalid request format"``; undecodable
        calldata, a name that is not normalised, a namehash that does not match the name, an
        unsupported record function (ccip-read-server answers these with 500; a 4xx stops the
        client instead of sending the same bad request to the next gateway)
404     an outer function selector the gateway does not implement
        (``"No implementation for function with selector 0x…"``), or an unknown path
503     the record source (the backend) cannot answer: EIP-3668 clients try the resolver's next URL
500     anything unexpected, with a generic message (details go to the log only)
======  =========================================================================================

A name the backend does not know is answered normally, with empty records (empty text, zero
address, empty contenthash), signed: clients see "no record", not a revert.

Signed answers are reused: the answer to one ``(sender, data)`` — one name and record — is kept
and sent again for ``GATEWAY_ANSWER_REUSE`` seconds (default 5, 0 turns it off), never past half
of its validity (``GATEWAY_SIGNATURE_TTL``): a changed record is answered within that time, and a
busy name costs one backend read and one signature per window instead of one per request. At most :data:`ANSWER_CACHE_SIZE` answers
are kept (the oldest go first). ``GET /metrics`` counts answers by ``source`` (``signed`` or
``cache``) besides the request histogram.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web
from eth_account import Account
from eth_account.signers.local import LocalAccount

from ensign.clock import Clock, system_clock
from ensign.config import GatewaySettings
from ensign.errors import EncodingError
from ensign.metrics import ServiceMetrics, add_metrics
from ensign.protocol.safe_json import parse_json
from ensign.web import (
    cors_middleware,
    deadline_middleware,
    error_middleware,
    read_json,
    request_log_middleware,
)
from ensign.ens import ccip
from ensign.ens.fetch import read_capped
from resolver.appkeys import batch_session_key, clock_key, records_key, settings_key, signer_key, variant_key
from resolver.errors import InvalidRequest, NotFound
from resolver.records import BackendRecordSource, NameRecords, RecordSource

__all__ = [
    "ANSWER_CACHE_SIZE",
    "AnswerCache",
    "GatewayMetrics",
    "answers_key",
    "ccip_get",
    "ccip_post",
    "create_app",
    "health",
    "metrics_key",
]

log = logging.getLogger(__name__)


_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_HEX = re.compile(r"^0x(?:[0-9a-fA-F]{2})*$")
INVALID_FORMAT = "Invalid request format"
# A resolve() call for one record is well under 2 KiB; a batch query of a few of them under 16 KiB.
MAX_BODY_BYTES = 64 * 1024
# ENSIP-21 batch limits: the UR stand-in sends one request with at most 4 URLs.
MAX_BATCH_REQUESTS = 16
MAX_BATCH_URLS = 4
BATCH_FETCH_TIMEOUT = 10.0
MAX_BATCH_ANSWER_BYTES = 64 * 1024
#: Most signed answers kept for reuse (a few hundred bytes each).
ANSWER_CACHE_SIZE = 10_000


class GatewayMetrics(ServiceMetrics):
    """The gateway's ``/metrics``: requests, and answers by where they came from."""

    def __init__(self) -> None:
        super().__init__("ensign_gateway")
        self.answers = self.counter("answers", "Signed answers sent, newly signed or reused", ["source"])
        self.signed = self.answers.labels("signed")
        self.reused = self.answers.labels("cache")


class AnswerCache:
    """Response bodies of signed answers by ``(sender, calldata)``, reused for ``reuse`` seconds
    and never past half of their validity (see the module docstring)."""

    def __init__(self, reuse: float, size: int = ANSWER_CACHE_SIZE) -> None:
        self._reuse = reuse
        self._size = size
        # (sender, calldata) -> (reuse until, body)
        self._answers: dict[tuple[str, bytes], tuple[float, bytes]] = {}

    def get(self, sender: str, call_data: bytes, now: float) -> bytes | None:
        hit = self._answers.get((sender, call_data))
        if hit is None or hit[0] <= now:
            return None
        return hit[1]

    def put(self, sender: str, call_data: bytes, body: bytes, *, now: float, expires: int) -> None:
        if self._reuse <= 0:
            return
        key = (sender, call_data)
        if len(self._answers) >= self._size and key not in self._answers:
            del self._answers[next(iter(self._answers))]
        self._answers[key] = (now + min(self._reuse, (expires - now) / 2), body)


answers_key = web.AppKey("answers_key", AnswerCache)
metrics_key = web.AppKey("metrics_key", GatewayMetrics)

routes = web.RouteTableDef()


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    """Liveness, the address signing answers, and the answer format; with a next signer key also
    ``signers``, both addresses, which the resolver contract must list before the switch."""
    settings = request.app[settings_key]
    body: dict[str, Any] = {"status": "ok", "signer": request.app[signer_key].address, "format": settings.answer_format}
    if settings.next_signer_key is not None:
        body["signers"] = [
            Account.from_key(settings.signer_key).address,
            Account.from_key(settings.next_signer_key).address,
        ]
    return web.json_response(body)


@routes.get("/{sender}/{data}")
async def ccip_get(request: web.Request) -> web.Response:
    """``GET /{sender}/{data}.json``: the EIP-3668 request with both values in the path."""
    data = request.match_info["data"]
    if data.endswith(".json"):
        data = data[: -len(".json")]
    return await _answer(request, request.match_info["sender"], data)


@routes.post("/")
async def ccip_post(request: web.Request) -> web.Response:
    """``POST /`` with ``{"sender": "0x…", "data": "0x…"}``: the EIP-3668 request as JSON."""
    body = await read_json(request)
    return await _answer(request, body.get("sender"), body.get("data"))


async def _answer(request: web.Request, sender: Any, data: Any) -> web.Response:
    if not (isinstance(sender, str) and _ADDRESS.match(sender) and isinstance(data, str) and _HEX.match(data)):
        raise InvalidRequest(INVALID_FORMAT)
    call_data = bytes.fromhex(data[2:])
    selector = call_data[:4]
    app = request.app
    if selector == ccip.BATCH_QUERY_SELECTOR and batch_session_key in app:
        return _data_response(await _batch(app, call_data))
    if selector == ccip.RESOLVE_SELECTOR or (
        selector == ccip.RESOLVE_WITH_CONTEXT_SELECTOR and app[variant_key] is ccip.CcipVariant.DM3
    ):
        # The signature binds the resolver's address, not its spelling: one entry per address.
        sender = sender.lower()
        now = app[clock_key]()
        body = app[answers_key].get(sender, call_data, now)
        if body is not None:
            app[metrics_key].reused.inc()
        else:
            answer, expires = await _resolve(app, sender, call_data, now)
            body = _data_body(answer)
            app[answers_key].put(sender, call_data, body, now=now, expires=expires)
            app[metrics_key].signed.inc()
        return web.Response(body=body, content_type="application/json")
    raise NotFound(f"No implementation for function with selector 0x{selector.hex()}")


def _data_body(answer: bytes) -> bytes:
    """``{"data": "0x…"}``, written directly: the hex needs no escaping."""
    return b'{"data": "0x' + answer.hex().encode("ascii") + b'"}'


def _data_response(answer: bytes) -> web.Response:
    return web.Response(body=_data_body(answer), content_type="application/json")


async def _resolve(app: web.Application, sender: str, call_data: bytes, now: float) -> tuple[bytes, int]:
    """The signed answer to one ``resolve``/``resolveWithContext`` call, and its expiry."""
    request = ccip.decode_resolve_request(call_data)
    query = request.query
    records = await app[records_key].records(query.name)
    value = _record_value(records, query)
    variant = app[variant_key]
    result = ccip.encode_result(query, value, variant)
    log.debug("answer %s %s for %s (found=%s)", query.kind, query.key or query.coin_type or "", query.name, records is not None)
    expires = int(now + app[settings_key].signature_ttl)
    answer = ccip.build_response(
        app[signer_key], sender=sender, call_data=call_data, result=result, expires=expires, variant=variant
    )
    return answer, expires


def _record_value(records: NameRecords | None, query: ccip.RecordQuery) -> str | bytes | None:
    """The stored value for ``query``; ``None`` means "no record" and encodes as the empty value."""
    if records is None:
        return None
    if query.kind is ccip.RecordKind.TEXT:
        return records.texts.get(query.key or "")
    if query.kind is ccip.RecordKind.ADDR:
        # Only Ethereum addresses are stored; any other coin type has no record.
        if query.coin_type is None or query.coin_type == ccip.ETH_COIN_TYPE:
            return records.address
        return None
    return records.contenthash


# -- ENSIP-21 batch gateway (dev only) ----------------------------------------------------------


async def _batch(app: web.Application, call_data: bytes) -> bytes:
    """Answer ``query((address,string[],bytes)[])`` by fetching each request from its URLs."""
    requests = ccip.decode_batch_query(call_data)
    if len(requests) > MAX_BATCH_REQUESTS:
        raise InvalidRequest(f"a batch query may hold at most {MAX_BATCH_REQUESTS} requests")
    outcomes = await asyncio.gather(*(_batch_one(app[batch_session_key], r) for r in requests))
    return ccip.encode_batch_response([failed for failed, _ in outcomes], [answer for _, answer in outcomes])


async def _batch_one(session: aiohttp.ClientSession, request: ccip.BatchRequest) -> tuple[bool, bytes]:
    """``(failed, response)`` for one inner request, trying its URLs in order as EIP-3668 says."""
    if ccip.is_batch_query(request.data):
        return True, ccip.encode_error("nested batch queries are not allowed")
    error = ccip.encode_http_error(404, "no gateway URL")
    for template in request.urls[:MAX_BATCH_URLS]:
        call = ccip.gateway_call(template, request.sender, request.data)
        if not _ABSOLUTE_HTTP.match(call.url):
            # aiohttp asserts (a 500 here) on a relative URL such as "//x"; the query's URLs are the caller's.
            error = ccip.encode_http_error(400, "gateway URL is not an absolute http(s) URL")
            continue
        try:
            async with session.request(
                call.method,
                call.url,
                json=call.body,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=BATCH_FETCH_TIMEOUT),
            ) as response:
                raw = await read_capped(response.content, MAX_BATCH_ANSWER_BYTES)
                status = response.status
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
            error = ccip.encode_http_error(502, "gateway unreachable")
            continue
        body = _json_object(raw) if len(raw) <= MAX_BATCH_ANSWER_BYTES else None
        if 200 <= status < 300:
            data = body.get("data") if body is not None else None
            if isinstance(data, str) and _HEX.match(data):
                return False, bytes.fromhex(data[2:])
            return True, ccip.encode_error("gateway answer has no 0x-hex data")
        message = body.get("message") if body is not None else None
        error = ccip.encode_http_error(status, message[:200] if isinstance(message, str) else f"HTTP {status}")
        if 400 <= status < 500:
            # EIP-3668: a 4xx is final; only server errors move on to the next URL.
            break
    return True, error


_ABSOLUTE_HTTP = re.compile(r"https?://[^/?#\s]+", re.IGNORECASE)


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        value = parse_json(raw, what="the gateway's answer")
    except EncodingError:
        return None
    return value if isinstance(value, dict) else None


# -- app ----------------------------------------------------------------------------------------


def create_app(
    settings: GatewaySettings,
    *,
    records: RecordSource | None = None,
    batch_gateway: bool = False,
    clock: Clock = system_clock,
) -> web.Application:
    """The gateway application.

    :param settings: signer key, signature TTL, answer format, backend URL
    :param records: where records come from; default :class:`BackendRecordSource` on
        ``settings.backend_url``, opened and closed with the app. A source passed in stays the
        caller's to close.
    :param batch_gateway: also answer ENSIP-21 ``query(...)`` calls (default off). The handler
        fetches whatever URLs the query names, so enable it only for the embedded dev stack.
    :param clock: seconds since the epoch, which signature expiries count from; default the wall clock.
    """
    # During a signer rotation (README "Rotating keys") the next key signs once the resolver
    # contract lists it as well; until then it only shows in /health.
    use_next = settings.sign_with_next and settings.next_signer_key is not None
    signer: LocalAccount = Account.from_key(settings.next_signer_key if use_next else settings.signer_key)
    metrics = GatewayMetrics()
    app = web.Application(
        middlewares=[
            request_log_middleware(metrics.observe_request),
            cors_middleware("*"),
            error_middleware,
            deadline_middleware(settings.http.request_timeout),
        ],
        client_max_size=MAX_BODY_BYTES,
    )
    app[settings_key] = settings
    app[signer_key] = signer
    app[clock_key] = clock
    app[variant_key] = ccip.CcipVariant(settings.answer_format)
    app[answers_key] = AnswerCache(settings.answer_reuse)
    app[metrics_key] = metrics
    add_metrics(app, metrics, port=settings.http.metrics_port, host=settings.http.metrics_host)
    app.add_routes(routes)
    app.on_response_prepare.append(_always_allow_origin)

    async def records_ctx(app: web.Application) -> AsyncIterator[None]:
        owned = records is None
        app[records_key] = BackendRecordSource(settings.backend_url) if records is None else records
        yield
        if owned:
            await app[records_key].close()

    app.cleanup_ctx.append(records_ctx)

    if batch_gateway:

        async def batch_ctx(app: web.Application) -> AsyncIterator[None]:
            app[batch_session_key] = aiohttp.ClientSession()
            yield
            await app[batch_session_key].close()

        app.cleanup_ctx.append(batch_ctx)
    return app


async def _always_allow_origin(request: web.Request, response: web.StreamResponse) -> None:
    # ccip-read-server sends this on every answer, Origin header or not: a signed answer cached by a
    # CDN for a request without Origin must still be readable by a browser later.
    response.headers.setdefault("Access-Control-Allow-Origin", "*")
