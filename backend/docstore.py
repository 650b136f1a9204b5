"""A user's own storage in Redis: signed documents, read grants, and the account's byte count.

Redis layout. ``P`` is ``RedisSettings.prefix``; ``T`` is the account's hash tag ``{st:<addr>}``
(``<addr>`` the owner's address in lowercase hex), so every key of one account sits in one cluster
slot and each script below is atomic, while different accounts spread over the cluster. Namespaces
and document keys are 1–128 of ``A-Z a-z 0-9 . _ -`` (no ``:``), so they cannot break out of a key.

``P T:heads:<ns>``        hash: document key → ``_rev`` of its head (a removal is a head too)
``P T:hist:<ns>:<key>``   list: the document's ``_rev`` values, oldest first — the full history
``P T:rev:<_rev>``        hash: ``json`` (canonical JSON of the signed revision), ``stored_at`` (ms)
``P T:cosig:<_rev>``      hash: co-signer public key → signature (at most :data:`MAX_COSIGNATURES`)
``P T:usage``             string: bytes the account keeps (revisions, conversations, messages);
                          checked against ``StorageSettings.quota_bytes`` on every write
``P T:grants``            hash: grant id → reader address (lowercase hex)
``P T:grants:<reader>``   hash: grant id → canonical JSON of the signed grant, one per reader
``P T:revoked``           set: ids of revoked grants (never stored again)

Nothing is deleted by a write: history is kept until the account's quota is reached, after which
writes are refused (413 ``quota_exceeded``). Every write is one Lua script (``backend/lua/``):
``set_revision``, ``add_cosignature``, ``add_grant``, ``revoke_grant``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal, cast

from backend.keys import StorageKeys
from ensign.protocol.canonical import stringify
from ensign.protocol.grants import Grant
from ensign.protocol.revisions import CoSignature, Revision
from ensign.redis_client import RedisClient, lua_script

__all__ = [
    "MAX_COSIGNATURES",
    "MAX_GRANTS",
    "DocumentStore",
    "StoredRevision",
    "WriteResult",
]

#: Most co-signatures one revision carries.
MAX_COSIGNATURES = 16
#: Most live grants one owner keeps.
MAX_GRANTS = 1000

CosignOutcome = Literal["added", "unchanged", "no_revision", "limit"]
GrantOutcome = Literal["added", "unchanged", "revoked", "limit"]



@dataclass(frozen=True)
class StoredRevision:
    """A revision as stored: the signed revision, when it was stored, and its co-signatures."""

    revision: Revision
    stored_at: int
    cosignatures: tuple[CoSignature, ...]

    def to_json(self) -> dict[str, Any]:
        body = self.revision.to_json()
        body["storedAt"] = self.stored_at
        body["cosignatures"] = [c.to_json() for c in self.cosignatures]
        return body


@dataclass(frozen=True)
class WriteResult:
    """What ``set_revision`` did: ``outcome`` and the head (or bytes used, for ``quota``)."""

    outcome: Literal["ok", "conflict", "exists", "too_many", "quota"]
    detail: str


class DocumentStore(StorageKeys):
    """Reads and atomic writes of the layout above.

    :param redis: a single-server or cluster client; the caller owns it.
    :param prefix: ``RedisSettings.prefix`` (no braces).
    """

    def __init__(self, redis: RedisClient, prefix: str) -> None:
        super().__init__(prefix)
        self.redis = redis
        self._set = redis.register_script(lua_script("backend.lua", "set_revision"))
        self._cosign = redis.register_script(lua_script("backend.lua", "add_cosignature"))
        self._grant = redis.register_script(lua_script("backend.lua", "add_grant"))
        self._revoke = redis.register_script(lua_script("backend.lua", "revoke_grant"))

    # --- documents --------------------------------------------------------------------------------

    async def write(
        self, revision: Revision, *, now_ms: int, quota: int, max_documents: int
    ) -> WriteResult:
        """Append a verified revision if ``_lastrev`` is the head (``lua/set_revision.lua``)."""
        o, ns, key = revision.owner, revision.namespace, revision.key
        body = stringify(revision.to_json())
        result = await self._set(
            keys=[
                self._k(o, f"heads:{ns}"),
                self._k(o, f"hist:{ns}:{key}"),
                self._k(o, f"rev:{revision.rev}"),
                self._usage(o),
            ],
            args=[key, revision.lastrev or "", revision.rev, body, now_ms, len(body.encode()), quota, max_documents],
        )
        outcome, detail = (_text(v) for v in result)
        return WriteResult(cast(Any, outcome), detail)

    async def head(self, owner: str, namespace: str, key: str) -> str | None:
        value = await self.redis.hget(self._k(owner, f"heads:{namespace}"), key)
        return None if value is None else _text(value)

    async def revision(self, owner: str, rev: str) -> StoredRevision | None:
        """One stored revision of ``owner`` with its co-signatures, or ``None``."""
        found = await self.revisions(owner, [rev])
        return found[0] if found else None

    async def revisions(self, owner: str, revs: list[str]) -> list[StoredRevision]:
        """The stored revisions named (missing ones left out), in the order given."""
        if not revs:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for rev in revs:
            pipe.hgetall(self._k(owner, f"rev:{rev}"))
            pipe.hgetall(self._k(owner, f"cosig:{rev}"))
        replies = await pipe.execute()
        out: list[StoredRevision] = []
        for index in range(0, len(replies), 2):
            fields = {_text(k): _text(v) for k, v in replies[index].items()}
            if not fields:
                continue
            cosigs = tuple(
                sorted(
                    (CoSignature(_text(k), _text(v)) for k, v in replies[index + 1].items()),
                    key=lambda c: c.signer,
                )
            )
            out.append(
                StoredRevision(Revision.from_json(json.loads(fields["json"])), int(fields["stored_at"]), cosigs)
            )
        return out

    async def heads(self, owner: str, namespace: str) -> list[StoredRevision]:
        """The head revision of every document of the namespace (removals included), by key."""
        heads = await self.redis.hgetall(self._k(owner, f"heads:{namespace}"))
        ordered = sorted((_text(k), _text(v)) for k, v in heads.items())
        return await self.revisions(owner, [rev for _, rev in ordered])

    async def history(self, owner: str, namespace: str, key: str, offset: int, limit: int) -> tuple[int, list[str]]:
        """``(total, revs)``: the document's revision hashes, oldest first, ``limit`` from ``offset``."""
        hist = self._k(owner, f"hist:{namespace}:{key}")
        pipe = self.redis.pipeline(transaction=False)
        pipe.llen(hist)
        pipe.lrange(hist, offset, offset + limit - 1)
        total, revs = await pipe.execute()
        return int(total), [_text(r) for r in revs]

    async def add_cosignature(self, owner: str, rev: str, cosignature: CoSignature) -> CosignOutcome:
        result = await self._cosign(
            keys=[self._k(owner, f"rev:{rev}"), self._k(owner, f"cosig:{rev}")],
            args=[cosignature.signer, cosignature.signature, MAX_COSIGNATURES],
        )
        return cast(CosignOutcome, _text(result))

    async def usage(self, owner: str) -> int:
        value = await self.redis.get(self._usage(owner))
        return 0 if value is None else int(value)

    # --- grants -----------------------------------------------------------------------------------

    async def add_grant(self, grant: Grant) -> GrantOutcome:
        o = grant.owner
        result = await self._grant(
            keys=[self._k(o, "grants"), self._k(o, f"grants:{grant.reader}"), self._k(o, "revoked")],
            args=[grant.id, grant.reader, stringify(grant.to_json()), MAX_GRANTS],
        )
        return cast(GrantOutcome, _text(result))

    async def grants_to(self, owner: str, reader: str) -> list[Grant]:
        """Every stored grant of ``owner`` to ``reader`` (expired ones included), by id."""
        values = await self.redis.hgetall(self._k(owner, f"grants:{reader.lower()}"))
        return sorted((Grant.from_json(json.loads(_text(v))) for v in values.values()), key=lambda g: g.id)

    async def revoke_grant(self, owner: str, grant_id: str) -> bool:
        """Revoke a grant; ``False`` when the owner has no such grant."""
        while True:
            reader = await self.redis.hget(self._k(owner, "grants"), grant_id)
            if reader is None:
                return False
            reader_hex = _text(reader)
            result = await self._revoke(
                keys=[self._k(owner, "grants"), self._k(owner, f"grants:{reader_hex}"), self._k(owner, "revoked")],
                args=[grant_id, reader_hex],
            )
            if _text(result) == "revoked":
                return True


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value
