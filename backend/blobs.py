"""Content-addressed blobs: ``/storage/blobs/{ensName}/{hash}`` — streamed in, stored by hash, checked out.

* ``PUT`` (owner's session): the body is the blob's bytes, read as a stream and written to Redis in
  :data:`backend.blobstore.BLOB_CHUNK` pieces as they arrive (never held whole in memory); its
  sha256 must be ``{hash}`` (400 ``hash_mismatch``). At most ``STORAGE_MAX_BLOB`` bytes (413
  ``blob_too_large``, checked against ``Content-Length`` first and while reading); the account's
  quota must hold it (413 ``quota_exceeded``). A blob stored already is answered ``exists`` and
  kept once.
* ``GET`` (owner, or an account holding any live grant of the owner's — blobs are ciphertext that
  documents link to): streamed out chunk by chunk, each chunk's sha256 checked before it is sent; a
  chunk that fails the check ends the answer early (the client's own hash check then fails too).
  ``HEAD`` answers the size only: a client skips an upload the server already has.
* ``DELETE`` (owner) removes it and gives its bytes back to the quota.
"""

from __future__ import annotations

import hashlib
import logging
import uuid

from aiohttp import web

from backend.appkeys import blobs_key, documents_key, now_ms, settings_key
from backend.blobstore import BLOB_CHUNK
from backend.records import Resolved
from backend.storage_auth import require_owner, require_viewer, resolve_path_name
from backend.errors import BlobTooLarge, HashMismatch, InvalidHash, NotGranted, QuotaExceeded
from ensign.errors import NotFound
from ensign.protocol.revisions import HASH_PATTERN

__all__ = [
    "routes",
    "delete_blob",
    "get_blob",
    "put_blob",
]

log = logging.getLogger(__name__)

routes = web.RouteTableDef()

_PATH = "/storage/blobs/{ensName}/{hash}"
_READ_SIZE = 64 * 1024


def _hash(request: web.Request) -> str:
    value = request.match_info["hash"]
    if not HASH_PATTERN.fullmatch(value):
        raise InvalidHash("hash must be 0x followed by 64 lowercase hex digits (sha256)")
    return value


@routes.put(_PATH)
async def put_blob(request: web.Request) -> web.Response:
    blob_hash = _hash(request)
    owner = await require_owner(request)
    storage = request.app[settings_key].storage
    if request.content_length is not None and request.content_length > storage.max_blob:
        raise BlobTooLarge(f"a blob holds at most {storage.max_blob} bytes")
    blobs = request.app[blobs_key]
    upload = uuid.uuid4().hex
    digest = hashlib.sha256()
    digests: list[str] = []
    pending = bytearray()
    size = 0
    try:
        async for piece in request.content.iter_chunked(_READ_SIZE):
            size += len(piece)
            if size > storage.max_blob:
                raise BlobTooLarge(f"a blob holds at most {storage.max_blob} bytes")
            digest.update(piece)
            pending += piece
            while len(pending) >= BLOB_CHUNK:
                chunk = bytes(pending[:BLOB_CHUNK])
                del pending[:BLOB_CHUNK]
                await blobs.write_upload_chunk(owner.address, upload, len(digests), chunk)
                digests.append(hashlib.sha256(chunk).hexdigest())
        if pending:
            await blobs.write_upload_chunk(owner.address, upload, len(digests), bytes(pending))
            digests.append(hashlib.sha256(pending).hexdigest())
        actual = "0x" + digest.hexdigest()
        if actual != blob_hash:
            raise HashMismatch(f"the body's sha256 is {actual}, not {blob_hash}")
    except BaseException:
        await blobs.drop_upload(owner.address, upload, len(digests) + 1)
        raise
    outcome, detail = await blobs.commit(
        owner.address, blob_hash, upload, size, digests, now_ms=now_ms(request), quota=storage.quota_bytes
    )
    if outcome == "quota":
        raise QuotaExceeded(
            f"the account's storage quota of {storage.quota_bytes} bytes would be exceeded",
            details={"used": detail, "quota": storage.quota_bytes},
        )
    return web.json_response({"hash": blob_hash, "size": size, "status": outcome})


async def _blob_reader(request: web.Request) -> Resolved:
    """The path's owner, if the session is the owner's or holds a live grant of the owner's."""
    viewer = await require_viewer(request)
    owner = await resolve_path_name(request)
    if owner.address.lower() == viewer.address:
        return owner
    now = now_ms(request)
    if any(g.expires > now for g in await request.app[documents_key].grants_to(owner.address.lower(), viewer.address)):
        return owner
    raise NotGranted("this account holds no live grant from the blob's owner")


@routes.get(_PATH)
async def get_blob(request: web.Request) -> web.StreamResponse:
    blob_hash = _hash(request)
    owner = await _blob_reader(request)
    blobs = request.app[blobs_key]
    meta = await blobs.meta(owner.address, blob_hash)
    if meta is None:
        raise NotFound(f"no blob {blob_hash}")
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream", "X-Content-Sha256": blob_hash})
    response.content_length = meta.size
    await response.prepare(request)
    if request.method == "HEAD":
        return response
    index = 0
    async for chunk in blobs.chunks(owner.address, blob_hash, len(meta.digests)):
        if chunk is None or hashlib.sha256(chunk).hexdigest() != meta.digests[index]:
            # The status is sent already: end the answer short, so the client's check fails too.
            log.error("blob %s of %s: chunk %d is missing or corrupt", blob_hash, owner.address, index)
            if request.transport is not None:
                request.transport.close()
            return response
        await response.write(chunk)
        index += 1
    await response.write_eof()
    return response


@routes.delete(_PATH)
async def delete_blob(request: web.Request) -> web.Response:
    blob_hash = _hash(request)
    owner = await require_owner(request)
    if not await request.app[blobs_key].delete(owner.address, blob_hash):
        raise NotFound(f"no blob {blob_hash}")
    return web.json_response({"hash": blob_hash, "status": "deleted"})
