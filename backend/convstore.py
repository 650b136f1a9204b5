"""dm3's conversation storage in Redis: conversations and messages as opaque client-encrypted strings.

Same tag as :mod:`backend.docstore` (``T`` = ``{st:<addr>}``, one slot per account), so every
script is atomic and every count and page is scoped to the owner by construction. ``<cid>`` is the
conversation id: sha256 hex of the ``encryptedContactName`` (unique per account: dm3 has no unique
index and can hold two rows for one contact). ``<id>`` is dm3's stored message id,
``sha256(<normalised ensName> + messageId)`` as ``0x`` hex.

``P T:convs``          zset: cid → updatedAt (ms), every conversation (``getNumberOfConversations``)
``P T:visible``        zset: cid → updatedAt (ms), the conversations not hidden (``getConversations``)
``P T:conv:<cid>``     hash: ``contact``, ``location``, ``hidden`` (0|1), ``updatedAt`` (ms)
``P T:msgs:<cid>``     zset: id → createdAt (ms), the conversation's messages
``P T:msg:<id>``       hash: ``cid``, ``contact``, ``container``, ``createdAt`` (ms), ``halted`` (0|1)
``P T:halted``         zset: id → createdAt (ms), the account's halted messages
``P T:usage``          string: bytes the account keeps (shared with the documents)

Pages are read newest first with ``ZREVRANGE``: ties in time are ordered by member, so consecutive
pages never overlap or skip (dm3's SQL pages have no tie-break).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, cast

from backend.keys import StorageKeys
from ensign.redis_client import RedisClient, lua_script

__all__ = [
    "ConversationStore",
    "Conversation",
    "StoredMessage",
    "conversation_id",
    "NewMessage",
]


def conversation_id(contact: str) -> str:
    """sha256 hex of the encrypted contact name (no ``0x``): the conversation's key."""
    return hashlib.sha256(contact.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Conversation:
    cid: str
    contact: str
    location: str
    hidden: bool
    updated_at: int
    preview: str | None


@dataclass(frozen=True)
class StoredMessage:
    id: str
    cid: str
    contact: str
    container: str
    created_at: int
    halted: bool


@dataclass(frozen=True)
class NewMessage:
    """One message of an add or edit: dm3's stored id, createdAt (ms), container, halted."""

    id: str
    created_at: int
    container: str
    halted: bool



class ConversationStore(StorageKeys):
    """Reads and atomic writes of the layout above."""

    def __init__(self, redis: RedisClient, prefix: str) -> None:
        super().__init__(prefix)
        self.redis = redis
        self._add_conv = redis.register_script(lua_script("backend.lua", "add_conversation"))
        self._add_msgs = redis.register_script(lua_script("backend.lua", "add_messages"))
        self._edit_msgs = redis.register_script(lua_script("backend.lua", "edit_messages"))
        self._toggle = redis.register_script(lua_script("backend.lua", "toggle_hide"))
        self._clear = redis.register_script(lua_script("backend.lua", "clear_halted"))

    async def add_conversation(self, owner: str, contact: str, location: str, *, now_ms: int, quota: int) -> str:
        cid = conversation_id(contact)
        result = await self._add_conv(
            keys=[self._k(owner, "convs"), self._k(owner, "visible"), self._k(owner, f"conv:{cid}"),
                  self._usage(owner)],
            args=[cid, contact, location, now_ms, quota],
        )
        return _text(result)

    async def add_messages(
        self, owner: str, contact: str, messages: list[NewMessage], *, now_ms: int, quota: int
    ) -> tuple[str, str]:
        """``('added', n)``, ``('duplicate', id)`` or ``('quota', used)``: all or nothing."""
        args = [[m.id, m.created_at, m.container, int(m.halted)] for m in messages]
        return await self._messages_script(self._add_msgs, owner, contact, messages, args, now_ms, quota, halted=True)

    async def edit_messages(
        self, owner: str, contact: str, messages: list[NewMessage], *, now_ms: int, quota: int
    ) -> tuple[str, str]:
        """``('edited', n)`` or ``('quota', used)``: replaces containers by id, stores the new ones."""
        args = [[m.id, m.created_at, m.container] for m in messages]
        return await self._messages_script(self._edit_msgs, owner, contact, messages, args, now_ms, quota, halted=False)

    async def _messages_script(
        self,
        script: Any,
        owner: str,
        contact: str,
        messages: list[NewMessage],
        per_message: list[list[Any]],
        now_ms: int,
        quota: int,
        *,
        halted: bool,
    ) -> tuple[str, str]:
        cid = conversation_id(contact)
        keys = [self._k(owner, "convs"), self._k(owner, "visible"), self._k(owner, f"conv:{cid}"),
                self._k(owner, f"msgs:{cid}")]
        keys += [self._k(owner, "halted")] if halted else []
        keys += [self._usage(owner)] + [self._k(owner, f"msg:{m.id}") for m in messages]
        args: list[Any] = [cid, contact, now_ms, quota]
        for values in per_message:
            args += values
        outcome, detail = await script(keys=keys, args=args)
        return _text(outcome), _text(detail)

    async def toggle_hide(self, owner: str, contact: str, hide: bool) -> str:
        cid = conversation_id(contact)
        result = await self._toggle(
            keys=[self._k(owner, "visible"), self._k(owner, f"conv:{cid}")], args=[cid, int(hide)]
        )
        return _text(result)

    async def clear_halted(self, owner: str, message_id: str, alias: str | None, *, now_ms: int) -> str:
        """Un-halt a message and, with ``alias``, move it to the alias's conversation."""
        while True:
            cid_raw = await self.redis.hget(self._k(owner, f"msg:{message_id}"), "cid")
            if cid_raw is None:
                return "no_message"
            old = _text(cid_raw)
            new = conversation_id(alias) if alias else old
            result = _text(
                await self._clear(
                    keys=[
                        self._k(owner, "halted"),
                        self._k(owner, f"msg:{message_id}"),
                        self._k(owner, f"msgs:{old}"),
                        self._k(owner, f"conv:{old}"),
                        self._k(owner, f"msgs:{new}"),
                        self._k(owner, f"conv:{new}"),
                        self._k(owner, "convs"),
                        self._k(owner, "visible"),
                    ],
                    args=[message_id, old, new if alias else "", alias or "", now_ms],
                )
            )
            if result != "moved":
                return result

    # --- reads ------------------------------------------------------------------------------------

    async def conversations(self, owner: str, start: int, count: int) -> list[Conversation]:
        """Visible conversations, newest ``updatedAt`` first, ``count`` from ``start``."""
        members = await self.redis.zrevrange(self._k(owner, "visible"), start, start + count - 1)
        cids = [_text(c) for c in cast(list[bytes | str], members)]
        if not cids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for cid in cids:
            pipe.hgetall(self._k(owner, f"conv:{cid}"))
            pipe.zrevrange(self._k(owner, f"msgs:{cid}"), 0, 0)
        replies = await pipe.execute()
        newest = [cast(list[Any], replies[i + 1]) for i in range(0, len(replies), 2)]
        pipe = self.redis.pipeline(transaction=False)
        for ids in newest:
            if ids:
                pipe.hget(self._k(owner, f"msg:{_text(ids[0])}"), "container")
        previews = iter(await pipe.execute()) if any(newest) else iter(())
        out = []
        for index, cid in enumerate(cids):
            fields = {_text(k): _text(v) for k, v in replies[2 * index].items()}
            if not fields:
                continue
            preview = next(previews) if newest[index] else None
            out.append(
                Conversation(
                    cid=cid,
                    contact=fields["contact"],
                    location=fields.get("location", ""),
                    hidden=fields.get("hidden") == "1",
                    updated_at=int(fields["updatedAt"]),
                    preview=None if preview is None else _text(preview),
                )
            )
        return out

    async def messages(self, owner: str, contact: str, start: int, count: int) -> list[StoredMessage]:
        """The conversation's messages, newest ``createdAt`` first, ``count`` from ``start``."""
        cid = conversation_id(contact)
        members = await self.redis.zrevrange(self._k(owner, f"msgs:{cid}"), start, start + count - 1)
        ids = [_text(i) for i in cast(list[bytes | str], members)]
        return await self._messages(owner, ids)

    async def halted(self, owner: str) -> list[StoredMessage]:
        members = await self.redis.zrange(self._k(owner, "halted"), 0, -1)
        ids = [_text(i) for i in cast(list[bytes | str], members)]
        return await self._messages(owner, ids)

    async def _messages(self, owner: str, ids: list[str]) -> list[StoredMessage]:
        if not ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for message_id in ids:
            pipe.hgetall(self._k(owner, f"msg:{message_id}"))
        out = []
        for message_id, raw in zip(ids, await pipe.execute()):
            fields = {_text(k): _text(v) for k, v in raw.items()}
            if fields:
                out.append(
                    StoredMessage(
                        id=message_id,
                        cid=fields["cid"],
                        contact=fields["contact"],
                        container=fields["container"],
                        created_at=int(fields["createdAt"]),
                        halted=fields["halted"] == "1",
                    )
                )
        return out

    async def count_messages(self, owner: str, contact: str) -> int:
        return int(await self.redis.zcard(self._k(owner, f"msgs:{conversation_id(contact)}")))

    async def count_conversations(self, owner: str) -> int:
        return int(await self.redis.zcard(self._k(owner, "convs")))


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value
