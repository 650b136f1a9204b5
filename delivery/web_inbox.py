"""Fetch and acknowledge (dm3's inbox routes), with real paging.

``GET /delivery/messages/incoming/<name>[/]?cursor=<c>&limit=<n>`` answers dm3's shape, a JSON
array of stored envelopes (oldest first, each with its postmark). Paging rides beside it, where
dm3 clients do not look: the query parameters ``cursor`` (opaque, from the previous page) and
``limit`` (1 … 1000, default 100), and the response header ``X-Next-Cursor`` (absent on the last
page) plus a ``Link: <…?cursor=…>; rel="next"`` header. A page also stops before its stored
envelopes pass ``INBOX_PAGE_BYTES`` (it always holds at least one), with the cursor pointing after
its last message, so a page is bounded in bytes as well as in count. A dm3 client that sends no query gets
the first 100 messages, acknowledges them, and gets the next ones on its next fetch.

``POST /delivery/messages/<name>/syncAcknowledgements/`` with
``{"acknowledgements": [{"contactAddress": <sender name>, "messageHash": <hash>}]}`` removes the
messages by hash (the hash the envelope carries: ``encryptedMessageHash`` or ``messageHash``).
The hash identifies the message within the account's queue; ``contactAddress``, when it names a
sender that resolves, also removes that sender's message stored under its scoped id (a message
whose hash another sender held already, :func:`delivery.queue.scoped_id`). Unknown hashes are ignored. Delivery is at least once: a message stays
until it is acknowledged or expires.

On an account with a device list (:mod:`delivery.devices`) both are the session's device's: the
inbox leaves out what that device acknowledged, and a message leaves the queue when every listed
device has acknowledged it. ``acknowledged`` then counts the messages this device acknowledged now.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from aiohttp import web

from ensign.protocol.encoding import checksum_address, is_address
from ensign.protocol.schema import load
from ensign.web import read_json

from .appkeys import clock_key, directory_key, metrics_key, queue_key, settings_key
from .errors import InvalidLimit
from .ports import address_or_none
from .queue import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, scoped_id
from .schemas import Acknowledgements
from .web_auth import require_session, session_request_key

log = logging.getLogger(__name__)

routes = web.RouteTableDef()

NEXT_CURSOR_HEADER = "X-Next-Cursor"
MAX_ACK_SENDERS = 100  # distinct contactAddress values resolved per acknowledgement request
_ACKNOWLEDGEMENTS = Acknowledgements()


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit")
    if raw is None:
        return DEFAULT_PAGE_SIZE
    # isdigit() alone lets "²" and 5,000-digit strings reach int(), which raises (a 500).
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9) or not 1 <= int(raw) <= MAX_PAGE_SIZE:
        raise InvalidLimit(f"limit must be a whole number from 1 to {MAX_PAGE_SIZE}")
    return int(raw)


@routes.get("/delivery/messages/incoming/{ensName}")
@routes.get("/delivery/messages/incoming/{ensName}/")
async def incoming(request: web.Request) -> web.Response:
    _, account = await require_session(request)
    limit = _limit(request)
    cursor = request.query.get("cursor") or None
    page = await request.app[queue_key].fetch(
        account.address, now=request.app[clock_key](), cursor=cursor, limit=limit,
        max_bytes=request.app[settings_key].limits.page_bytes, device=request[session_request_key].device,
    )
    # The stored bytes are canonical JSON already: splice them instead of parsing and re-encoding.
    body = b"[" + b",".join(item.envelope for item in page.items) + b"]"
    response = web.Response(body=body, content_type="application/json")
    if page.next_cursor is not None:
        response.headers[NEXT_CURSOR_HEADER] = page.next_cursor
        query = urlencode({"cursor": page.next_cursor, "limit": limit})
        response.headers["Link"] = f'<{request.path}?{query}>; rel="next"'
    return response


@routes.post("/delivery/messages/{ensName}/syncAcknowledgements/")
@routes.post("/delivery/messages/{ensName}/syncAcknowledgements")
async def acknowledge(request: web.Request) -> web.Response:
    _, account = await require_session(request)
    body = load(_ACKNOWLEDGEMENTS, await read_json(request))
    hashes = [ack["messageHash"] for ack in body["acknowledgements"]]
    senders: dict[str, str | None] = {}
    for ack in body["acknowledgements"]:
        contact = ack["contactAddress"]
        # Each distinct contact is one (cached) lookup; past MAX_ACK_SENDERS only bare hashes ack.
        if contact and contact not in senders and len(senders) < MAX_ACK_SENDERS:
            senders[contact] = await _sender_address(request, contact)
        sender = senders.get(contact)
        if sender is not None:
            hashes.append(scoped_id(ack["messageHash"], sender))
    now = request.app[clock_key]()
    device = request[session_request_key].device
    removed = await request.app[queue_key].ack(account.address, hashes, now=now, device=device) if hashes else 0
    request.app[metrics_key].acks.inc(removed)
    log.info("acknowledged", extra={"account": account.address, "removed": removed})
    return web.json_response({"acknowledged": removed})


async def _sender_address(request: web.Request, contact: str) -> str | None:
    # A name that is not valid or does not resolve names no sender: the bare hash still acks.
    if is_address(contact):
        return checksum_address(contact)
    return await address_or_none(request.app[directory_key], contact)
