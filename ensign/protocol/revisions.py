"""Signed document revisions of a user's storage: canonical bytes, hash, signature, chain check.

A document lives at ``(owner, namespace, key)`` and changes only by revisions. One revision::

    {"owner": "0x<40 lowercase hex>", "namespace": "<ns>", "key": "<key>",
     "data": "<client-encrypted string>" | null,        # null: the document is removed
     "links": ["0x<64 hex>", ...],                       # content hashes (blobs, other revisions)
     "_lastrev": "0x<64 hex>" | null,                    # the head this revision replaces
     "_rev": "0x<64 hex>",
     "signer": "<base64 Ed25519 public key>",
     "signature": "<base64 Ed25519 signature>"}

``_rev`` is ``sha256`` (``0x`` + lowercase hex) of the UTF-8 of the canonical JSON
(:func:`ensign.protocol.canonical.stringify`) of the *content*::

    {"v": 1, "owner", "namespace", "key", "data", "links", "_lastrev"}

The content names the document, so a signed revision cannot be replayed into another document,
namespace or account; ``_lastrev`` chains it to the revision it replaces, so it cannot be replayed
onto another head either. ``signature`` is Ed25519 by the owner's profile signing key (dm3's
``publicSigningKey``) over the UTF-8 of ``"Ensign storage revision\\n" + _rev``: the first line keeps
it apart from everything else a dm3 signing key signs (JSON, ``alias:`` texts, JWTs).

A **co-signature** by a third party (a notary) is ``{"signer", "signature"}`` over
``"Ensign storage cosignature\\n" + _rev``; attaching one does not change ``_rev``.

The first revision of a document has ``_lastrev`` null; a removal has ``data`` null and is a
revision like any other, so writing after a removal chains onto it. :func:`check_chain` checks a
whole history, oldest first, as a client does on read.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from marshmallow import fields, validate

from ensign.errors import SchemaError, SignatureError
from ensign.protocol.canonical import stringify
from ensign.protocol.crypto import sign, verify
from ensign.protocol.encoding import sha256_hex
from ensign.protocol.schema import Base64, Pattern, SafeInt, Strict, Text, load

__all__ = [
    "REVISION_VERSION",
    "REVISION_SIGNING_PREFIX",
    "COSIGNATURE_SIGNING_PREFIX",
    "NAME_PATTERN",
    "HASH_PATTERN",
    "ADDRESS_PATTERN",
    "MAX_LINKS",
    "Revision",
    "CoSignature",
    "ChainError",
    "revision_content",
    "revision_hash",
    "make_revision",
    "verify_revision",
    "cosign",
    "verify_cosignature",
    "check_chain",
]

REVISION_VERSION = 1
REVISION_SIGNING_PREFIX = "Ensign storage revision\n"
COSIGNATURE_SIGNING_PREFIX = "Ensign storage cosignature\n"
#: Namespaces and document keys: 1–128 characters of letters, digits, ``.``, ``_``, ``-``.
NAME_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,128}")
HASH_PATTERN = re.compile(r"0x[0-9a-f]{64}")
ADDRESS_PATTERN = re.compile(r"0x[0-9a-f]{40}")
#: Most links one revision may carry.
MAX_LINKS = 64


class ChainError(SignatureError):
    """A history whose revisions do not hash, sign or link up."""

    code = "invalid_chain"


@dataclass(frozen=True)
class CoSignature:
    """A third party's signature of a revision's ``_rev``."""

    signer: str
    signature: str

    def to_json(self) -> dict[str, str]:
        return {"signer": self.signer, "signature": self.signature}

    @classmethod
    def from_json(cls, obj: Any) -> CoSignature:
        loaded = load(_CO_SIGNATURE, obj, "co-signature")
        return cls(loaded["signer"], loaded["signature"])


@dataclass(frozen=True)
class Revision:
    """One signed revision of a document (see the module docstring for the wire form)."""

    owner: str
    namespace: str
    key: str
    data: str | None
    links: tuple[str, ...]
    lastrev: str | None
    rev: str
    signer: str
    signature: str

    @property
    def removed(self) -> bool:
        return self.data is None

    def content(self) -> dict[str, Any]:
        return revision_content(self.owner, self.namespace, self.key, self.data, self.links, self.lastrev)

    def to_json(self) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "namespace": self.namespace,
            "key": self.key,
            "data": self.data,
            "links": list(self.links),
            "_lastrev": self.lastrev,
            "_rev": self.rev,
            "signer": self.signer,
            "signature": self.signature,
        }

    @classmethod
    def from_json(cls, obj: Any, *, max_data: int | None = None) -> Revision:
        """Check the shape of a wire revision (not its hash or signature: :func:`verify_revision`).

        :param max_data: most characters ``data`` may hold; ``None`` for no limit.
        """
        loaded = load(_REVISION, obj, "revision")
        data = loaded["data"]
        if max_data is not None and data is not None and len(data) > max_data:
            raise SchemaError(f"invalid revision: data is longer than {max_data} characters")
        return cls(
            loaded["owner"], loaded["namespace"], loaded["key"], data, tuple(loaded["links"]), loaded["lastrev"],
            loaded["rev"], loaded["signer"], loaded["signature"],
        )


class _CoSignatureSchema(Strict):
    signer = Base64(32, required=True)
    signature = Base64(64, required=True)


def _name_field(**kwargs: Any) -> Pattern:
    return Pattern(NAME_PATTERN, "1-128 of A-Z a-z 0-9 . _ -", required=True, **kwargs)


def _hash_field(**kwargs: Any) -> Pattern:
    return Pattern(HASH_PATTERN, "0x followed by 64 lowercase hex digits", **kwargs)


class _RevisionSchema(Strict):
    owner = Pattern(ADDRESS_PATTERN, "an address in lowercase hex", required=True)
    namespace = _name_field()
    key = _name_field()
    data = Text(required=True, allow_none=True)
    links: fields.List[str] = fields.List(_hash_field(), required=True, validate=validate.Length(max=MAX_LINKS))
    lastrev = _hash_field(required=True, allow_none=True, data_key="_lastrev")
    rev = _hash_field(required=True, data_key="_rev")
    signer = Base64(32, required=True)
    signature = Base64(64, required=True)


_CO_SIGNATURE = _CoSignatureSchema()
_REVISION = _RevisionSchema()


def revision_content(
    owner: str, namespace: str, key: str, data: str | None, links: Sequence[str], lastrev: str | None
) -> dict[str, Any]:
    """The object whose canonical JSON is hashed into ``_rev``."""
    return {
        "v": REVISION_VERSION,
        "owner": owner.lower(),
        "namespace": namespace,
        "key": key,
        "data": data,
        "links": list(links),
        "_lastrev": lastrev,
    }


def revision_hash(
    owner: str, namespace: str, key: str, data: str | None, links: Sequence[str], lastrev: str | None
) -> str:
    """``_rev``: sha256 0x-hex of the canonical JSON of :func:`revision_content`."""
    return sha256_hex(stringify(revision_content(owner, namespace, key, data, links, lastrev)))


def make_revision(
    secret_key: str,
    public_key: str,
    owner: str,
    namespace: str,
    key: str,
    data: str | None,
    *,
    lastrev: str | None,
    links: Sequence[str] = (),
) -> Revision:
    """Hash and sign a new revision with the owner's profile signing key (base64, libsodium form)."""
    rev = revision_hash(owner, namespace, key, data, links, lastrev)
    signature = sign(secret_key, REVISION_SIGNING_PREFIX + rev)
    return Revision(owner.lower(), namespace, key, data, tuple(links), lastrev, rev, public_key, signature)


def verify_revision(revision: Revision, *, signers: Collection[str] | None = None) -> None:
    """Raise :class:`SignatureError` unless ``_rev`` is the content's hash and ``signature`` verifies.

    :param signers: the public keys allowed to sign (the owner's profile keys); ``None`` trusts
        ``revision.signer`` (the caller then checks the key itself).
    """
    expected = revision_hash(
        revision.owner, revision.namespace, revision.key, revision.data, revision.links, revision.lastrev
    )
    if revision.rev != expected:
        raise SignatureError(f"_rev {revision.rev} is not the hash of the revision's content ({expected})")
    if signers is not None and revision.signer not in signers:
        raise SignatureError("the revision is not signed by the owner's profile signing key")
    if not verify(revision.signer, REVISION_SIGNING_PREFIX + revision.rev, revision.signature):
        raise SignatureError("the revision's signature does not verify with its signer key")


def cosign(secret_key: str, public_key: str, rev: str) -> CoSignature:
    """A co-signature of ``rev`` by a third party's Ed25519 key."""
    return CoSignature(public_key, sign(secret_key, COSIGNATURE_SIGNING_PREFIX + rev))


def verify_cosignature(rev: str, cosignature: CoSignature) -> bool:
    """True iff ``cosignature`` signs ``rev``."""
    return verify(cosignature.signer, COSIGNATURE_SIGNING_PREFIX + rev, cosignature.signature)


def check_chain(history: Sequence[Revision], *, signers: Collection[str] | None = None) -> None:
    """Check a document's history, oldest first: every revision verifies, the first has no
    ``_lastrev``, each next one's ``_lastrev`` is the previous ``_rev``, all name one document.

    Raises :class:`ChainError` naming the first revision that fails.
    """
    previous: Revision | None = None
    for index, revision in enumerate(history):
        try:
            verify_revision(revision, signers=signers)
        except SignatureError as exc:
            raise ChainError(f"revision {index} ({revision.rev}): {exc.message}") from None
        if previous is None:
            if revision.lastrev is not None:
                raise ChainError(f"revision 0 ({revision.rev}) is not a first revision: _lastrev is set")
        else:
            if (revision.owner, revision.namespace, revision.key) != (
                previous.owner,
                previous.namespace,
                previous.key,
            ):
                raise ChainError(f"revision {index} ({revision.rev}) belongs to another document")
            if revision.lastrev != previous.rev:
                raise ChainError(f"revision {index} ({revision.rev}) does not follow revision {index - 1}")
        previous = revision
