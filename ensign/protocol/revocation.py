"""Revoked profile signing keys: the wallet-signed list, its ENS record, and the time rule.

A dm3 profile carries one signing key and nothing about older ones, and every profile the wallet
ever signed stays valid: anyone who kept a superseded profile (with its leaked keys) can publish it
under a name of their own pointing at the wallet's address. The **revocation list** closes that:

* the wallet signs (EIP-191 ``personal_sign``, as for anything else) the text of
  :func:`revocation_message`, naming each revoked public signing key with the time it was revoked
  (``revokedAt``, ms since the epoch);
* the list sits in its own ENS text record ``eth.ensign.revokedKeys``
  (:data:`~ensign.protocol.records.REVOCATION_RECORD_NAME`) as ``data:application/json,<canonical
  JSON>``. It is not a field of the dm3 profile: dm3 checks its profile JSON against a closed
  schema and signs exactly that JSON, so an extra field would break dm3 clients, and a revocation
  must outlive the profile it was published with (a rotation replaces the profile; the list only
  grows). The Ensign backend serves the list on every name of the address;
* the rule (:func:`check_not_revoked`): a signature by a listed key made at or after its
  ``revokedAt`` is refused. "Made" is never the signer's own claim (an attacker holding the key
  writes any timestamp): the delivery service uses the time it receives the envelope, a receiver
  the postmark's time (signed by the delivery service). Messages stored before the revocation stay
  readable.

JSON (keys in this order once canonical)::

    {"address": "0x<EIP-55>", "revoked": [{"publicSigningKey": "<base64>", "revokedAt": <ms>}, …],
     "signature": "0x<65-byte EIP-191 signature>"}

A newer list must keep every entry of the older one unchanged (:func:`extends`), so an old list
(public once published) cannot be replayed to un-revoke a key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ensign.errors import EncodingError, SchemaError, SignatureError
from ensign.protocol.canonical import stringify
from ensign.protocol.encoding import b64decode, checksum_address
from ensign.protocol.keys import address_of_private_key, personal_sign, recover_personal_sign
from ensign.protocol.profile import ParsedProfile, parse_profile_record
from ensign.protocol.records import REVOCATION_RECORD_NAME

__all__ = [
    "MAX_REVOKED_KEYS",
    "REVOCATION_RECORD_NAME",
    "KeyRevokedError",
    "RevokedKey",
    "RevocationList",
    "revocation_message",
    "sign_revocations",
    "verify_revocations",
    "revocation_record",
    "parse_revocation_record",
    "merge_revocations",
    "check_not_revoked",
    "extends",
]

#: Most keys one list names (an ENS text record is no place for an unbounded list).
MAX_REVOKED_KEYS = 100


class KeyRevokedError(SignatureError):
    """A signature by a key its wallet revoked, made at or after the revocation."""

    code = "key_revoked"


@dataclass(frozen=True)
class RevokedKey:
    """One entry: the base64 Ed25519 public signing key and when it was revoked (ms)."""

    public_signing_key: str
    revoked_at: int

    def to_json(self) -> dict[str, Any]:
        return {"publicSigningKey": self.public_signing_key, "revokedAt": self.revoked_at}


@dataclass(frozen=True)
class RevocationList:
    """The wallet-signed list of an address's revoked signing keys (see the module docstring)."""

    address: str
    revoked: tuple[RevokedKey, ...]
    signature: str

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "revoked": [entry.to_json() for entry in self.revoked],
            "signature": self.signature,
        }

    @classmethod
    def from_json(cls, obj: Any) -> RevocationList:
        """Validate the JSON shape (:class:`SchemaError` / :class:`EncodingError` naming the problem)."""
        if not isinstance(obj, dict) or set(obj) != {"address", "revoked", "signature"}:
            raise SchemaError("a revocation list is an object with exactly address, revoked and signature")
        address, revoked, signature = obj["address"], obj["revoked"], obj["signature"]
        if not isinstance(address, str) or not isinstance(signature, str):
            raise SchemaError("a revocation list's address and signature are strings")
        if not isinstance(revoked, list) or not 1 <= len(revoked) <= MAX_REVOKED_KEYS:
            raise SchemaError(f"a revocation list's revoked is an array of 1 to {MAX_REVOKED_KEYS} entries")
        entries: list[RevokedKey] = []
        for entry in revoked:
            if not isinstance(entry, dict) or set(entry) != {"publicSigningKey", "revokedAt"}:
                raise SchemaError("each revoked entry is an object with exactly publicSigningKey and revokedAt")
            key, at = entry["publicSigningKey"], entry["revokedAt"]
            if not isinstance(key, str) or isinstance(at, bool) or not isinstance(at, int) or at < 0:
                raise SchemaError("publicSigningKey is a string and revokedAt a non-negative integer (ms)")
            b64decode(key, length=32, what="publicSigningKey")
            entries.append(RevokedKey(key, at))
        if len({entry.public_signing_key for entry in entries}) != len(entries):
            raise SchemaError("a revocation list names each key once")
        return cls(address=checksum_address(address), revoked=tuple(entries), signature=signature)

    def revoked_keys(self) -> dict[str, int]:
        """``{public signing key: revokedAt}``."""
        return {entry.public_signing_key: entry.revoked_at for entry in self.revoked}


def revocation_message(address: str, revoked: Iterable[RevokedKey]) -> str:
    """The text the wallet signs: a fixed first line no other Ensign or dm3 text starts with."""
    return (
        "Ensign: revoke dm3 profile signing keys\n"
        f"Address: {checksum_address(address)}\n"
        f"Revoked: {stringify([entry.to_json() for entry in revoked])}"
    )


def sign_revocations(private_key_hex: str, revoked: Iterable[RevokedKey]) -> RevocationList:
    """Sign a list with a wallet key held in process (the SDK signs through its ``Wallet``)."""
    entries = tuple(revoked)
    address = address_of_private_key(private_key_hex)
    signature = personal_sign(private_key_hex, revocation_message(address, entries))
    return RevocationList(address=checksum_address(address), revoked=entries, signature=signature)


def verify_revocations(revocations: RevocationList, address: str) -> bool:
    """True iff the list is ``address``'s and its signature recovers to ``address``."""
    expected = checksum_address(address)
    if revocations.address != expected:
        return False
    try:
        signer = recover_personal_sign(revocation_message(expected, revocations.revoked), revocations.signature)
    except SignatureError:
        return False
    return signer == expected


def revocation_record(revocations: RevocationList) -> str:
    """The ENS text record's value: ``data:application/json,`` + canonical JSON."""
    return "data:application/json," + stringify(revocations.to_json())


def parse_revocation_record(text: str) -> RevocationList:
    """A record's list (a ``data:`` URI or raw JSON; links are not accepted). Not yet verified."""
    record = parse_profile_record(text)
    if not isinstance(record, ParsedProfile):
        raise EncodingError("a revocation record holds its list itself, not a link")
    return RevocationList.from_json(record.value)


def merge_revocations(lists: Iterable[RevocationList]) -> dict[str, int]:
    """One ``{key: revokedAt}`` from several verified lists of an address: the earliest time wins."""
    merged: dict[str, int] = {}
    for revocations in lists:
        for entry in revocations.revoked:
            known = merged.get(entry.public_signing_key)
            merged[entry.public_signing_key] = entry.revoked_at if known is None else min(known, entry.revoked_at)
    return merged


def check_not_revoked(revoked: Mapping[str, int], public_signing_key: str, at_ms: int) -> None:
    """Raise :class:`KeyRevokedError` when ``public_signing_key`` was revoked at or before ``at_ms``."""
    revoked_at = revoked.get(public_signing_key)
    if revoked_at is not None and revoked_at <= at_ms:
        raise KeyRevokedError(f"the signing key was revoked by its wallet at {revoked_at} ms, before {at_ms} ms")


def extends(older: RevocationList, newer: RevocationList) -> bool:
    """True iff ``newer`` keeps every entry of ``older`` with the same time (it may add more)."""
    kept = newer.revoked_keys()
    return all(kept.get(entry.public_signing_key) == entry.revoked_at for entry in older.revoked)
