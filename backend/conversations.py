"""dm3's conversation storage: ``/storage/new/{ensName}/…``, with dm3's request and answer shapes.

dm3's clients (``BackendConnector``) call these with a session token of the path's account (see
:mod:`backend.storage_auth`); every value is an opaque client-encrypted string. Differences from
dm3's backend, each a fix:

* counts are the owner's: ``getNumberOfMessages`` counts the owner's messages with that contact
  (dm3 counts every account's messages under that encrypted name);
* pages are stable: newest first with a tie-break on the id, so consecutive pages never overlap or
  skip when times are equal (dm3's SQL pages have no tie-break); ``offset`` stays dm3's page index;
* a page size or offset that is not a non-negative integer, or a page larger than
  :data:`MAX_PAGE`, is a 400 naming the parameter (dm3 silently falls back to its defaults);
* one conversation per contact (dm3 has no unique index and can create two in a race);
* every write is atomic (one Lua script) and counted against the account's storage quota.

Answers of writes are ``{"status": …}`` with 200, where dm3 answers the text ``OK``: dm3's clients
read only the status.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from aiohttp import web
from marshmallow import Schema

from backend.appkeys import conversations_key, now_ms, settings_key
from backend.convstore import Conversation, NewMessage, StoredMessage
from backend.errors import DuplicateMessage, MessageTooLarge, NoMessage, QuotaExceeded
from backend.records import Resolved
from backend.schemas import (
    Dm3AddConversation,
    Dm3AddMessage,
    Dm3AddMessageBatch,
    Dm3ClearHalted,
    Dm3EditMessageBatch,
    Dm3Page,
    Dm3ToggleHide,
)
from backend.storage_auth import require_owner
from ensign.protocol.canonical import stringify
from ensign.protocol.encoding import sha256_hex
from ensign.protocol.schema import load
from ensign.web import read_json

__all__ = [
    "routes",
            "stored_message_id",
    "iso_time",
    "add_conversation",
    "add_message",
    "add_message_batch",
    "clear_halted_message",
    "edit_message_batch",
    "get_conversations",
    "get_halted_messages",
    "get_messages",
    "get_number_of_conversations",
    "get_number_of_messages",
    "toggle_hide",
]

routes = web.RouteTableDef()

_BASE = "/storage/new/{ensName}"


def stored_message_id(name: str, message_id: str) -> str:
    """dm3's stored id: ``sha256(<normalised ensName> + messageId)``, ``0x`` hex."""
    return sha256_hex(name + message_id)


def iso_time(ms: int) -> str:
    """JavaScript's ``Date.toJSON()`` of ``ms``: ``2026-01-01T00:00:00.000Z``."""
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_CONVERSATION_PAGE = Dm3Page(10)  # dm3's defaults
_MESSAGE_PAGE = Dm3Page(100)


# --- helpers ---------------------------------------------------------------------------------------


async def _body(request: web.Request, schema: Schema, what: str) -> tuple[Resolved, dict[str, Any]]:
    owner = await require_owner(request)
    return owner, load(schema, await read_json(request), what)


def _messages(owner: Resolved, records: list[dict[str, Any]], max_message: int) -> list[NewMessage]:
    """The records as stored messages; of two records with one id, the first is kept (as dm3)."""
    out: dict[str, NewMessage] = {}
    for record in records:
        container = record["encryptedEnvelopContainer"]
        if len(container) > max_message:
            raise MessageTooLarge(f"encryptedEnvelopContainer is longer than {max_message} characters")
        stored_id = stored_message_id(owner.name, record["messageId"])
        out.setdefault(stored_id, NewMessage(stored_id, record["createdAt"], container, record["isHalted"]))
    return list(out.values())


def _raise_for_write(outcome: str, detail: str, quota: int) -> None:
    if outcome == "duplicate":
        raise DuplicateMessage("unable to add message: a message with this id is stored already", details={"id": detail})
    if outcome == "quota":
        raise QuotaExceeded(
            f"the account's storage quota of {quota} bytes would be exceeded",
            details={"used": int(detail), "quota": quota},
        )


def _conversation(c: Conversation) -> dict[str, Any]:
    return {
        "contact": c.contact,
        "previewMessage": c.preview,
        "updatedAt": iso_time(c.updated_at),
        "encryptedProfileLocation": c.location,
    }


def _row(owner: Resolved, m: StoredMessage) -> dict[str, Any]:
    """dm3's EncryptedMessage row."""
    return {
        "id": m.id,
        "createdAt": iso_time(m.created_at),
        "encryptedEnvelopContainer": m.container,
        "encryptedContactName": m.contact,
        "conversationId": m.cid,
        "ownerId": owner.name,
        "isHalted": m.halted,
    }


def _both(path: str) -> list[str]:
    """dm3's clients call some routes with a trailing slash and some without: serve both."""
    return [path, path + "/"]


# --- routes ------------------------------------------------------------------------------------------


@routes.post(_BASE + "/addConversation")
async def add_conversation(request: web.Request) -> web.Response:
    owner, body = await _body(request, Dm3AddConversation(), "addConversation body")
    quota = request.app[settings_key].storage.quota_bytes
    outcome = await request.app[conversations_key].add_conversation(
        owner.address, body["encryptedContactName"], body["encryptedProfileLocation"], now_ms=now_ms(request), quota=quota
    )
    _raise_for_write(outcome, "0", quota)
    return web.json_response({"status": outcome})


@routes.get(_BASE + "/getConversations")
async def get_conversations(request: web.Request) -> web.Response:
    owner = await require_owner(request)
    page = load(_CONVERSATION_PAGE, dict(request.query), "query")
    size = page["pageSize"]
    found = await request.app[conversations_key].conversations(owner.address, page["offset"] * size, size)
    return web.json_response([_conversation(c) for c in found])


@routes.post(_BASE + "/toggleHideConversation")
async def toggle_hide(request: web.Request) -> web.Response:
    owner, body = await _body(request, Dm3ToggleHide(), "toggleHideConversation body")
    outcome = await request.app[conversations_key].toggle_hide(owner.address, body["encryptedContactName"], body["hide"])
    return web.json_response({"status": outcome})


async def _store_messages(request: web.Request, schema: Schema, field: str | None, what: str) -> int:
    """addMessage (``field`` None: the body is the record), addMessageBatch, editMessageBatch."""
    owner, body = await _body(request, schema, what + " body")
    storage = request.app[settings_key].storage
    messages = _messages(owner, [body] if field is None else body[field], storage.max_message)
    store = request.app[conversations_key]
    write = store.edit_messages if what == "editMessageBatch" else store.add_messages
    outcome, detail = await write(
        owner.address, body["encryptedContactName"], messages, now_ms=now_ms(request), quota=storage.quota_bytes
    )
    _raise_for_write(outcome, detail, storage.quota_bytes)
    return len(messages)


@routes.post(_BASE + "/addMessage")
async def add_message(request: web.Request) -> web.Response:
    await _store_messages(request, Dm3AddMessage(), None, "addMessage")
    return web.json_response({"status": "added"})


@routes.post(_BASE + "/addMessageBatch")
async def add_message_batch(request: web.Request) -> web.Response:
    count = await _store_messages(request, Dm3AddMessageBatch(), "messageBatch", "addMessageBatch")
    return web.json_response({"status": "added", "added": count})


@routes.post(_BASE + "/editMessageBatch")
async def edit_message_batch(request: web.Request) -> web.Response:
    count = await _store_messages(request, Dm3EditMessageBatch(), "editMessageBatchPayload", "editMessageBatch")
    return web.json_response({"status": "edited", "edited": count})


async def get_messages(request: web.Request) -> web.Response:
    owner = await require_owner(request)
    page = load(_MESSAGE_PAGE, dict(request.query), "query")
    size = page["pageSize"]
    found = await request.app[conversations_key].messages(
        owner.address, request.match_info["encryptedContactName"], page["offset"] * size, size
    )
    # dm3 answers an array of JSON strings, one per row; its client parses each.
    return web.json_response([stringify(_row(owner, m)) for m in found])


@routes.get(_BASE + "/getNumberOfMessages/{encryptedContactName}")
async def get_number_of_messages(request: web.Request) -> web.Response:
    owner = await require_owner(request)
    count = await request.app[conversations_key].count_messages(owner.address, request.match_info["encryptedContactName"])
    return web.json_response(count)


@routes.get(_BASE + "/getNumberOfConversations")
async def get_number_of_conversations(request: web.Request) -> web.Response:
    owner = await require_owner(request)
    return web.json_response(await request.app[conversations_key].count_conversations(owner.address))


async def get_halted_messages(request: web.Request) -> web.Response:
    owner = await require_owner(request)
    found = await request.app[conversations_key].halted(owner.address)
    return web.json_response(
        [
            {"messageId": m.id, "encryptedEnvelopContainer": m.container, "createdAt": iso_time(m.created_at),
             "isHalted": m.halted}
            for m in found
        ]
    )


async def clear_halted_message(request: web.Request) -> web.Response:
    owner, body = await _body(request, Dm3ClearHalted(), "clearHaltedMessage body")
    outcome = await request.app[conversations_key].clear_halted(
        owner.address, body["messageId"], body["aliasName"], now_ms=now_ms(request)
    )
    if outcome == "no_message":
        raise NoMessage("unable to clear halted message: no message with this id")
    return web.json_response({"status": outcome})


for _path in _both(_BASE + "/getMessages/{encryptedContactName}"):
    routes.get(_path)(get_messages)
for _path in _both(_BASE + "/getHaltedMessages"):
    routes.get(_path)(get_halted_messages)
for _path in _both(_BASE + "/clearHaltedMessage"):
    routes.post(_path)(clear_halted_message)
