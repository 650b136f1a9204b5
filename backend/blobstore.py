"""Content-addressed blobs of a user's storage in Redis, kept in fixed-size chunks.

Same account tag as :mod:`backend.docstore` (``T`` = ``{st:<addr>}``). ``<hash>`` is the blob's
sha256 as ``0x`` + 64 lowercase hex.

``P T:blob:<hash>``             hash: ``size``, ``chunks``, ``digests`` (JSON list of each chunk's
                                sha256 hex), ``stored_at`` (ms)
``P T:blob:<hash>:<i>``         string: chunk ``i`` (0-based), :data:`BLOB_CHUNK` bytes but the last
``P T:upload:<id>:<i>``         string: chunk ``i`` of an upload in progress; expires after
                                :data:`UPLOAD_TTL` s unless ``commit_blob.lua`` moves it

An upload streams into its own keys while the hash is computed; only a complete upload whose hash
is the one named is committed (one script: de-duplicate, check the quota, rename the chunks). One
copy per account: a second upload of the same content is dropped and answered ``exists``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from backend.keys import StorageKeys
from ensign.redis_client import RedisClient, lua_script

__all__ = ["BLOB_CHUNK", "UPLOAD_TTL", "BlobStore", "BlobMeta"]

#: Bytes per chunk key.
BLOB_CHUNK = 256 * 1024
#: Seconds an unfinished upload's chunks live.
UPLOAD_TTL = 3600


@dataclass(frozen=True)
class BlobMeta:
    size: int
    digests: tuple[str, ...]
    stored_at: int



class BlobStore(StorageKeys):
    """Chunked writes, the atomic commit and streaming reads of the layout above."""

    def __init__(self, redis: RedisClient, prefix: str) -> None:
        super().__init__(prefix)
        self.redis = redis
        self._commit = redis.register_script(lua_script("backend.lua", "commit_blob"))
        self._delete = redis.register_script(lua_script("backend.lua", "delete_blob"))

    async def write_upload_chunk(self, owner: str, upload_id: str, index: int, data: bytes) -> None:
        await self.redis.set(self._k(owner, f"upload:{upload_id}:{index}"), data, ex=UPLOAD_TTL)

    async def drop_upload(self, owner: str, upload_id: str, chunks: int) -> None:
        if chunks:
            await self.redis.delete(*(self._k(owner, f"upload:{upload_id}:{i}") for i in range(chunks)))

    async def commit(
        self, owner: str, blob_hash: str, upload_id: str, size: int, digests: list[str], *, now_ms: int, quota: int
    ) -> tuple[str, int]:
        """``('stored' | 'exists' | 'quota', size or bytes used)``."""
        n = len(digests)
        keys = [self._k(owner, f"blob:{blob_hash}"), self._usage(owner)]
        keys += [self._k(owner, f"upload:{upload_id}:{i}") for i in range(n)]
        keys += [self._k(owner, f"blob:{blob_hash}:{i}") for i in range(n)]
        outcome, detail = await self._commit(keys=keys, args=[size, json.dumps(digests), now_ms, quota])
        return _text(outcome), int(_text(detail))

    async def meta(self, owner: str, blob_hash: str) -> BlobMeta | None:
        fields = await self.redis.hgetall(self._k(owner, f"blob:{blob_hash}"))
        if not fields:
            return None
        values = {_text(k): _text(v) for k, v in fields.items()}
        return BlobMeta(int(values["size"]), tuple(json.loads(values["digests"])), int(values["stored_at"]))

    async def chunks(self, owner: str, blob_hash: str, count: int) -> AsyncIterator[bytes | None]:
        """Each chunk in order, read one at a time (``None`` for a chunk that is gone)."""
        for index in range(count):
            value = await self.redis.get(self._k(owner, f"blob:{blob_hash}:{index}"))
            if value is not None and not isinstance(value, bytes):
                # A client made with decode_responses=True cannot carry binary chunks.
                raise TypeError("blob storage needs a Redis client that answers bytes")
            yield value

    async def delete(self, owner: str, blob_hash: str) -> bool:
        while True:
            meta = await self.meta(owner, blob_hash)
            if meta is None:
                return False
            keys = [self._k(owner, f"blob:{blob_hash}"), self._usage(owner)]
            keys += [self._k(owner, f"blob:{blob_hash}:{i}") for i in range(len(meta.digests))]
            outcome = _text(await self._delete(keys=keys, args=[]))
            if outcome != "moved":
                return outcome == "deleted"


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
