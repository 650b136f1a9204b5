"""Read grants of a user's storage: one account lets another read a namespace or one document.

A grant, as signed by the owner and stored by the backend::

    {"owner": "0x<40 hex>", "reader": "0x<40 hex>",      # lowercase addresses
     "namespace": "<ns>", "key": "<key>" | null,         # null: the whole namespace
     "expires": <ms since the epoch>,
     "wrappedKey": "<string>",                           # the namespace key, wrapped to the reader
     "nonce": "0x<32 hex>",                              # makes every grant unique
     "id": "0x<64 hex>", "signer": "<base64 key>", "signature": "<base64>"}

``id`` is sha256 (``0x`` hex) of the canonical JSON of ``{"v": 1, owner, reader, namespace, key,
expires, wrappedKey, nonce}``; ``signature`` is Ed25519 by the owner's profile signing key over
``"Ensign storage grant\\n" + id``. ``wrappedKey`` is the canonical JSON of dm3's asymmetric
``EncryptedPayload`` (X25519 ``crypto_kx`` + ChaCha20-Poly1305, as messages are encrypted) of the
base64 namespace key (padded to 64-byte blocks), to the reader's profile ``publicEncryptionKey``: only the reader can unwrap it,
and the server, which stores it, never can. A revoked grant's id is remembered, so the same signed
grant cannot be stored again; a fresh grant needs a new ``nonce``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from marshmallow import validate

from ensign.errors import EncodingError, SchemaError, SignatureError
from ensign.protocol.canonical import parse_json, stringify
from ensign.protocol.crypto import (
    EncryptedPayload,
    EncryptionKeyPair,
    decrypt_asymmetric,
    encrypt_asymmetric,
    sign,
    verify,
)
from ensign.protocol.encoding import b64decode, b64encode, sha256_hex
from ensign.protocol.schema import Base64, Pattern, SafeInt, Strict, Text, load
from ensign.protocol.revisions import ADDRESS_PATTERN, HASH_PATTERN, NAME_PATTERN

__all__ = ["WRAP_BLOCK", "GRANT_VERSION", "GRANT_SIGNING_PREFIX", "Grant", "make_grant", "verify_grant", "wrap_key", "unwrap_key"]

GRANT_VERSION = 1
GRANT_SIGNING_PREFIX = "Ensign storage grant\n"
_NONCE = re.compile(r"0x[0-9a-f]{32}")
_MAX_WRAPPED = 1024
# The wrapped key is 44 characters of base64; dm3's 2048-byte message padding would only waste
# space, so it is padded to 64-byte blocks (the same ISO/IEC 7816-4 padding).
WRAP_BLOCK = 64


@dataclass(frozen=True)
class Grant:
    """A signed read grant (see the module docstring)."""

    owner: str
    reader: str
    namespace: str
    key: str | None
    expires: int
    wrapped_key: str
    nonce: str
    id: str
    signer: str
    signature: str

    def content(self) -> dict[str, Any]:
        return _content(self.owner, self.reader, self.namespace, self.key, self.expires, self.wrapped_key, self.nonce)

    def covers(self, namespace: str, key: str | None) -> bool:
        """True when the grant lets its reader read ``key`` (``None``: the namespace's list)."""
        return self.namespace == namespace and (self.key is None or self.key == key)

    def to_json(self) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "reader": self.reader,
            "namespace": self.namespace,
            "key": self.key,
            "expires": self.expires,
            "wrappedKey": self.wrapped_key,
            "nonce": self.nonce,
            "id": self.id,
            "signer": self.signer,
            "signature": self.signature,
        }

    @classmethod
    def from_json(cls, obj: Any) -> Grant:
        """Check a wire grant's shape (not its signature: :func:`verify_grant`)."""
        g = load(_GRANT, obj, "grant")
        return cls(
            g["owner"], g["reader"], g["namespace"], g["key"], g["expires"], g["wrapped_key"], g["nonce"], g["id"],
            g["signer"], g["signature"],
        )


class _GrantSchema(Strict):
    owner = Pattern(ADDRESS_PATTERN, "an address in lowercase hex", required=True)
    reader = Pattern(ADDRESS_PATTERN, "an address in lowercase hex", required=True)
    namespace = Pattern(NAME_PATTERN, "1-128 of A-Z a-z 0-9 . _ -", required=True)
    key = Pattern(NAME_PATTERN, "null or 1-128 of A-Z a-z 0-9 . _ -", required=True, allow_none=True)
    expires = SafeInt(required=True)
    wrapped_key = Text(required=True, data_key="wrappedKey", validate=validate.Length(min=1, max=_MAX_WRAPPED))
    nonce = Pattern(_NONCE, "0x followed by 32 lowercase hex digits", required=True)
    id = Pattern(HASH_PATTERN, "0x followed by 64 lowercase hex digits", required=True)
    signer = Base64(32, required=True)
    signature = Base64(64, required=True)


_GRANT = _GrantSchema()


def _content(
    owner: str, reader: str, namespace: str, key: str | None, expires: int, wrapped_key: str, nonce: str
) -> dict[str, Any]:
    return {
        "v": GRANT_VERSION,
        "owner": owner.lower(),
        "reader": reader.lower(),
        "namespace": namespace,
        "key": key,
        "expires": expires,
        "wrappedKey": wrapped_key,
        "nonce": nonce,
    }


def make_grant(
    secret_key: str,
    public_key: str,
    owner: str,
    reader: str,
    namespace: str,
    key: str | None,
    *,
    expires: int,
    wrapped_key: str,
    nonce: str | None = None,
) -> Grant:
    """Sign a grant with the owner's profile signing key; ``nonce`` defaults to 16 random bytes."""
    nonce = nonce if nonce is not None else "0x" + os.urandom(16).hex()
    content = _content(owner, reader, namespace, key, expires, wrapped_key, nonce)
    grant_id = sha256_hex(stringify(content))
    signature = sign(secret_key, GRANT_SIGNING_PREFIX + grant_id)
    return Grant(
        owner.lower(), reader.lower(), namespace, key, expires, wrapped_key, nonce, grant_id, public_key, signature
    )


def verify_grant(grant: Grant, *, signer: str) -> None:
    """Raise :class:`SignatureError` unless ``id`` hashes the content and ``signer`` signed it."""
    expected = sha256_hex(stringify(grant.content()))
    if grant.id != expected:
        raise SignatureError(f"grant id {grant.id} is not the hash of its content ({expected})")
    if grant.signer != signer or not verify(signer, GRANT_SIGNING_PREFIX + grant.id, grant.signature):
        raise SignatureError("the grant is not signed by the owner's profile signing key")


def wrap_key(
    reader_public_encryption_key: str, key: bytes, *, ephemeral_seed: bytes | None = None, nonce: bytes | None = None
) -> str:
    """The namespace ``key`` encrypted to the reader's X25519 key: ``wrappedKey`` of a grant (and
    of a multi-recipient envelope). ``ephemeral_seed`` and ``nonce``: only to reproduce vectors."""
    payload = encrypt_asymmetric(
        reader_public_encryption_key, _b64encode_key(key), block=WRAP_BLOCK, ephemeral_seed=ephemeral_seed, nonce=nonce
    )
    return stringify(payload.to_json())


def unwrap_key(reader_keys: EncryptionKeyPair, wrapped_key: str) -> bytes:
    """The reader's side of :func:`wrap_key`."""
    obj = parse_json(wrapped_key, what="wrappedKey")
    if not isinstance(obj, dict):
        raise SchemaError("wrappedKey must hold an encrypted payload object")
    ephem = obj.get("ephemPublicKey")
    payload = EncryptedPayload(
        ciphertext=str(obj.get("ciphertext", "")),
        nonce=str(obj.get("nonce", "")),
        ephem_public_key=ephem if isinstance(ephem, str) else None,
    )
    return b64decode(decrypt_asymmetric(reader_keys, payload, block=WRAP_BLOCK), length=32, what="wrapped key")


def _b64encode_key(key: bytes) -> str:
    if len(key) != 32:
        raise EncodingError("a namespace key is 32 bytes")
    return b64encode(key)
