"""The user's own storage at the backend, through the SDK: ``client.storage``.

Values are encrypted on the client with a **namespace key** before they leave it, so the backend
keeps ciphertext only. The SDK derives the key of a namespace from the account's X25519 secret key
(every device of the wallet derives the same)::

    namespace key = BLAKE2b-256(key = encryption secret key, "Ensign storage namespace\\n" + namespace)

and encrypts each value with dm3's symmetric scheme (ChaCha20-Poly1305, random nonce) padded to
256-byte blocks; ``data`` is the canonical JSON of that ``EncryptedPayload``. A reader of another
account's namespace gets the key from the owner's grant, unwrapped with the reader's own key.

Writes are signed revisions (``ensign.protocol.revisions``); a write onto a head that moved is
refused by the backend with 409 ``revision_conflict`` (:class:`ApiError`, ``details["head"]``):
read again, merge, write again with ``lastrev`` = the new head. Reads of history check the whole
chain (hashes, links, signatures) before anything is decrypted.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp

import nacl.encoding
import nacl.hash

from ensign.errors import EncodingError, InvalidRequest
from ensign.protocol.canonical import stringify
from ensign.protocol.crypto import EncryptedPayload, decrypt_symmetric, encrypt_symmetric
from ensign.protocol.grants import Grant, make_grant, unwrap_key, wrap_key
from ensign.protocol.revisions import CoSignature, Revision, check_chain, make_revision, verify_revision

from ._errors import ApiError

if TYPE_CHECKING:
    from ._client import Client

__all__ = ["Storage", "StoredDocument", "StorageGrant", "StoredBlob", "namespace_key", "STORAGE_PAD_BLOCK"]

#: Bytes read and sent at a time when streaming a blob.
BLOB_PIECE = 256 * 1024
Progress = Callable[[int, int], None]

#: Padding block of stored values (a value's length shows only to the next 256 bytes).
STORAGE_PAD_BLOCK = 256
_NAMESPACE_KEY_CONTEXT = b"Ensign storage namespace\n"
_UNCHANGED: Any = object()


def namespace_key(encryption_secret_key: bytes, namespace: str) -> bytes:
    """The 32-byte key of ``namespace`` (see the module docstring)."""
    return nacl.hash.blake2b(
        _NAMESPACE_KEY_CONTEXT + namespace.encode("utf-8"),
        key=encryption_secret_key,
        digest_size=32,
        encoder=nacl.encoding.RawEncoder,
    )


@dataclass(frozen=True)
class StoredDocument:
    """One revision of a document, decrypted: ``value`` is ``None`` for a removal.

    :param rev: the revision's ``_rev`` — pass it as ``lastrev`` to write after it
    :param stored_at: when the backend stored it, ms since the epoch
    :param cosignatures: third parties' signatures of ``rev``
    """

    namespace: str
    key: str
    value: str | None
    rev: str
    lastrev: str | None
    stored_at: int
    revision: Revision
    cosignatures: tuple[CoSignature, ...]


@dataclass(frozen=True)
class StorageGrant:
    """A read grant: ``reader`` (lowercase address) may read ``namespace`` (``key`` None) or one document."""

    id: str
    owner: str
    reader: str
    namespace: str
    key: str | None
    expires: int


@dataclass(frozen=True)
class StoredBlob:
    """A blob at the backend: ``hash`` is ``0x`` + sha256 hex of its bytes; ``status`` of an upload
    is ``stored``, ``exists`` (the backend had it: nothing was sent) or ``read`` for a download."""

    hash: str
    size: int
    status: str


def _grant_view(grant: Grant) -> StorageGrant:
    return StorageGrant(grant.id, grant.owner, grant.reader, grant.namespace, grant.key, grant.expires)


class Storage:
    """``client.storage``: documents, history, co-signatures and grants at the backend."""

    def __init__(
        self, client: Client, request: Callable[..., Awaitable[Any]], stream: Callable[..., Awaitable[Any]]
    ) -> None:
        self._client = client
        self._request = request  # (method, path, json_body=, params=) with the backend session
        self._stream = stream  # (method, path, consume, body=) streamed, with the backend session

    # -- keys ---------------------------------------------------------------------------------------

    async def _own_key(self, namespace: str) -> bytes:
        keys = await self._client.keys()
        return namespace_key(keys.encryption.secret_key_bytes, namespace)

    async def _key_for(self, owner: str | None, namespace: str, key: str | None) -> bytes:
        if owner is None:
            return await self._own_key(namespace)
        keys = await self._client.keys()
        for grant in await self._grants(owner, self._client.name):
            if grant.covers(namespace, key):
                return unwrap_key(keys.encryption, grant.wrapped_key)
        raise InvalidRequest(f"{owner} has granted this account no access to {namespace}", code="not_granted")

    # -- reads --------------------------------------------------------------------------------------

    def _path(self, owner: str | None, namespace: str, key: str | None = None) -> str:
        name = quote(owner if owner is not None else self._client.name, safe="")
        base = f"/storage/docs/{name}/{quote(namespace, safe='')}"
        return base if key is None else f"{base}/{quote(key, safe='')}"

    def _open(self, stored: Mapping[str, Any], secret: bytes) -> StoredDocument:
        revision = Revision.from_json({k: v for k, v in stored.items() if k not in ("storedAt", "cosignatures")})
        verify_revision(revision)
        value = None
        if revision.data is not None:
            payload = json.loads(revision.data)
            value = decrypt_symmetric(
                secret, EncryptedPayload(str(payload["ciphertext"]), str(payload["nonce"])), block=STORAGE_PAD_BLOCK
            )
        cosignatures = tuple(CoSignature.from_json(c) for c in stored.get("cosignatures", ()))
        return StoredDocument(
            revision.namespace, revision.key, value, revision.rev, revision.lastrev, int(stored["storedAt"]),
            revision, cosignatures,
        )

    async def get(self, namespace: str, key: str, *, owner: str | None = None) -> StoredDocument | None:
        """The document's current value; ``None`` when it does not exist or was removed.

        :param owner: a name of another account that granted this one access (default: own)
        """
        try:
            stored = await self._request("GET", self._path(owner, namespace, key))
        except ApiError as exc:
            if exc.status == 404 and exc.code in ("not_found", "document_removed"):
                return None
            raise
        return self._open(stored, await self._key_for(owner, namespace, key))

    async def get_all(self, namespace: str, *, owner: str | None = None) -> list[StoredDocument]:
        """Every live document of the namespace, by key."""
        answer = await self._request("GET", self._path(owner, namespace))
        secret = await self._key_for(owner, namespace, None)
        return [self._open(d, secret) for d in answer["documents"]]

    async def history(
        self, namespace: str, key: str, *, owner: str | None = None, progress: Callable[[int, int], None] | None = None
    ) -> list[StoredDocument]:
        """Every revision, oldest first, after checking the whole chain (raises ``ChainError``)."""
        stored: list[Mapping[str, Any]] = []
        while True:
            page = await self._request(
                "GET", self._path(owner, namespace, key) + "/history", params={"offset": str(len(stored))}
            )
            stored += page["revisions"]
            if progress is not None:
                progress(len(stored), int(page["total"]))
            if not page["revisions"] or len(stored) >= int(page["total"]):
                break
        revisions = [Revision.from_json({k: v for k, v in s.items() if k not in ("storedAt", "cosignatures")})
                     for s in stored]
        check_chain(revisions)
        secret = await self._key_for(owner, namespace, key)
        return [self._open(s, secret) for s in stored]

    # -- writes -------------------------------------------------------------------------------------

    async def _head(self, namespace: str, key: str) -> str | None:
        try:
            stored = await self._request("GET", self._path(None, namespace, key))
        except ApiError as exc:
            if exc.status == 404 and exc.code == "document_removed":
                head = (exc.body or {}).get("details", {}).get("head")
                return str(head) if head else None
            if exc.status == 404 and exc.code == "not_found":
                return None
            raise
        return str(stored["_rev"])

    async def _write(self, namespace: str, key: str, data: str | None, lastrev: Any, links: Sequence[str]) -> str:
        if lastrev is _UNCHANGED:
            lastrev = await self._head(namespace, key)
        keys = await self._client.keys()
        revision = make_revision(
            keys.signing.secret_key, keys.signing.public_key, self._client.address.lower(), namespace, key, data,
            lastrev=lastrev, links=links,
        )
        await self._request("PUT", self._path(None, namespace, key), json_body=revision.to_json())
        return revision.rev

    async def set(
        self, namespace: str, key: str, value: str, *, lastrev: str | None = _UNCHANGED, links: Sequence[str] = ()
    ) -> str:
        """Encrypt and write ``value``; returns the new ``_rev``.

        :param lastrev: the head this write replaces (``None``: the document is new). Left out, the
            SDK reads the current head first — convenient, but a concurrent write between the read
            and the write is then still refused (409), never lost.
        :raises ApiError: 409 ``revision_conflict`` when ``lastrev`` is not the head
        """
        payload = encrypt_symmetric(await self._own_key(namespace), value, block=STORAGE_PAD_BLOCK)
        return await self._write(namespace, key, stringify(payload.to_json()), lastrev, links)

    async def remove(self, namespace: str, key: str, *, lastrev: str | None = _UNCHANGED) -> str:
        """Remove the document with a signed removal revision; returns its ``_rev``."""
        return await self._write(namespace, key, None, lastrev, ())

    async def cosign(self, namespace: str, key: str, rev: str, cosignature: CoSignature) -> str:
        """Attach a notary's co-signature (``ensign.protocol.revisions.cosign``) to a revision."""
        path = self._path(None, namespace, key) + f"/revisions/{rev}/cosignatures"
        answer = await self._request("POST", path, json_body=cosignature.to_json())
        return str(answer["status"])

    # -- sharing ------------------------------------------------------------------------------------

    async def share(
        self, namespace: str, reader: str, *, key: str | None = None, expires_in: float = 30 * 86400
    ) -> StorageGrant:
        """Let ``reader`` (a name) read the namespace (or one document) for ``expires_in`` seconds.

        The namespace key is wrapped to the reader's profile encryption key, read from ENS.
        """
        resolved = await (await self._client._directory()).user_profile(reader)
        profile = resolved.signed_profile.profile
        keys = await self._client.keys()
        expires = int((self._client._clock() + expires_in) * 1000)
        grant = make_grant(
            keys.signing.secret_key, keys.signing.public_key, self._client.address.lower(), resolved.address.lower(),
            namespace, key, expires=expires,
            wrapped_key=wrap_key(profile.public_encryption_key, await self._own_key(namespace)),
        )
        await self._request("POST", f"/storage/grants/{quote(self._client.name, safe='')}", json_body=grant.to_json())
        return _grant_view(grant)

    async def _grants(self, owner: str, reader: str) -> list[Grant]:
        path = f"/storage/grants/{quote(owner, safe='')}/to/{quote(reader, safe='')}"
        answer = await self._request("GET", path)
        return [Grant.from_json(g) for g in answer["grants"]]

    async def grants(self, reader: str, *, owner: str | None = None) -> list[StorageGrant]:
        """The live grants of ``owner`` (default: this account) to ``reader``."""
        return [_grant_view(g) for g in await self._grants(owner or self._client.name, reader)]

    async def revoke(self, grant_id: str) -> None:
        """Revoke one of this account's grants; its reader loses access at once."""
        await self._request("DELETE", f"/storage/grants/{quote(self._client.name, safe='')}/{grant_id}")

    # -- blobs ------------------------------------------------------------------------------------

    def _blob_path(self, owner: str | None, blob_hash: str) -> str:
        return f"/storage/blobs/{quote(owner or self._client.name, safe='')}/{blob_hash}"

    async def put_blob(self, source: bytes | str | os.PathLike[str], *, progress: Progress | None = None) -> StoredBlob:
        """Upload bytes, or a file by path, streamed in 256 KiB pieces; ``progress(sent, total)``
        after each. The content should be encrypted already (e.g. with :func:`namespace_key`); the
        backend stores it under its sha256 and keeps one copy, so an upload it already has is skipped.
        """
        if isinstance(source, bytes):
            size, blob_hash = len(source), "0x" + hashlib.sha256(source).hexdigest()
        else:
            size, blob_hash = await asyncio.to_thread(_file_digest, Path(source))
        path = self._blob_path(None, blob_hash)
        try:
            await self._stream("HEAD", path, _discard)
        except ApiError as exc:
            if exc.status != 404:
                raise
        else:
            if progress is not None:
                progress(size, size)
            return StoredBlob(blob_hash, size, "exists")

        async def body() -> AsyncIterator[bytes]:
            sent = 0
            async for piece in _pieces(source):
                yield piece
                sent += len(piece)
                if progress is not None:
                    progress(sent, size)

        answer = await self._stream("PUT", path, _json, body=body)
        return StoredBlob(str(answer["hash"]), int(answer["size"]), str(answer["status"]))

    async def get_blob(
        self,
        blob_hash: str,
        *,
        owner: str | None = None,
        to: str | os.PathLike[str] | None = None,
        progress: Progress | None = None,
    ) -> bytes:
        """Download a blob, streamed; its sha256 is checked before it is returned (``EncodingError``
        ``hash_mismatch`` otherwise). With ``to`` the bytes go to that file (removed again when the
        check fails) and ``b""`` is returned."""

        async def consume(response: aiohttp.ClientResponse) -> bytes:
            total = response.content_length or 0
            digest = hashlib.sha256()
            kept = bytearray()
            received = 0
            handle = open(to, "wb") if to is not None else None  # noqa: SIM115 - closed below
            try:
                async for piece in response.content.iter_chunked(BLOB_PIECE):
                    digest.update(piece)
                    received += len(piece)
                    if handle is not None:
                        await asyncio.to_thread(handle.write, piece)
                    else:
                        kept += piece
                    if progress is not None:
                        progress(received, total)
            finally:
                if handle is not None:
                    handle.close()
            if "0x" + digest.hexdigest() != blob_hash:
                if to is not None:
                    Path(to).unlink(missing_ok=True)
                raise EncodingError(f"the blob received is not {blob_hash}", code="hash_mismatch")
            return bytes(kept)

        result: bytes = await self._stream("GET", self._blob_path(owner, blob_hash), consume)
        return result

    async def delete_blob(self, blob_hash: str) -> None:
        """Delete one of this account's blobs; its bytes go back to the quota."""
        await self._request("DELETE", self._blob_path(None, blob_hash))

    async def usage(self) -> tuple[int, int]:
        """``(bytes kept, quota)`` of this account."""
        answer = await self._request("GET", f"/storage/usage/{quote(self._client.name, safe='')}")
        return int(answer["bytes"]), int(answer["quota"])


def _file_digest(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while piece := handle.read(BLOB_PIECE):
            digest.update(piece)
            size += len(piece)
    return size, "0x" + digest.hexdigest()


async def _pieces(source: bytes | str | os.PathLike[str]) -> AsyncIterator[bytes]:
    if isinstance(source, bytes):
        for start in range(0, len(source), BLOB_PIECE):
            yield source[start : start + BLOB_PIECE]
        return
    with Path(source).open("rb") as handle:
        while piece := await asyncio.to_thread(handle.read, BLOB_PIECE):
            yield piece


async def _discard(response: aiohttp.ClientResponse) -> None:
    await response.release()


async def _json(response: aiohttp.ClientResponse) -> Any:
    return await response.json()
