"""Forwarding between delivery services: the note a service sends with an envelope it hands on.

The sender encrypted the envelope's ``deliveryInformation`` to the first service and signed the
metadata with the ciphertext in it, so the next service can neither read it nor replace it
without breaking the sender's signature. The forwarding service therefore hands on the envelope
unchanged, and with it the key that opens that one payload — the ``crypto_kx`` receive key of the
payload's ephemeral key, which opens nothing else — encrypted to the next service::

    {
      "version":      "ensign-forward-v1",
      "path":         ["ds1.example.eth"],     services the envelope went through, oldest first;
                                               the last one signs this note
      "to":           "ds2.example.eth",       the service the note is for
      "envelopeId":   "<hash>",                the envelope's encryptedMessageHash or messageHash
      "deliveryKey":  "<EncryptedPayload>",    wire JSON of base64(32-byte key), encrypted to the
                                               X25519 key of ``to``'s profile
      "recipients":   ["bob.eth", …],          only for an ``ensign-multi-v1`` envelope
                                               (``ensign_forwardMultiMessage``): the receivers of
                                               its encrypted list that ``to`` is to deliver to, as
                                               the sender wrote them; absent for a dm3 envelope
      "signature":    "<base64>"               Ed25519 of stringify(the note minus signature) with
                                               the signing key of ``path[-1]``'s profile
    }

The next service decrypts the sender's own ciphertext with that key, so it reads exactly the
``{to, from}`` the sender signed, and checks the sender's signature as for a direct submission:
a forwarder can hand on an envelope, but not change who sent it or to whom. Names are normalised
(:func:`ensign.protocol.encoding.normalize_name`).

A multi-recipient envelope (:mod:`ensign.protocol.multi`) is handed on the same way, its encrypted
receiver list being the payload the key opens; ``recipients`` (signed with the rest) picks the
receivers the next service is to deliver to — a subset of that list, each named once
(:func:`ensign.protocol.multi.pick_recipients`) — so a receiver is never delivered to twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ensign.errors import EncodingError, SchemaError, SignatureError
from ensign.protocol.canonical import parse_json, stringify
from ensign.protocol.crypto import (
    EncryptedPayload,
    EncryptionKeyPair,
    decrypt_asymmetric,
    decrypt_symmetric,
    encrypt_asymmetric,
    receiver_session_keys,
    sign,
    verify,
)
from ensign.protocol.encoding import b64decode, b64encode, normalize_name
from ensign.protocol.envelope import envelope_id
from ensign.protocol.models import DeliveryInformation, EncryptionEnvelop
from ensign.protocol.multi import MultiDeliveryInformation, MultiEnvelope, multi_delivery_information

__all__ = [
    "FORWARDING_VERSION",
    "Forwarding",
    "build_forwarding",
    "build_multi_forwarding",
    "open_forwarded_delivery_information",
    "open_forwarded_multi_delivery_information",
    "verify_forwarding",
]

FORWARDING_VERSION = "ensign-forward-v1"
_FIELDS = ("version", "path", "to", "envelopeId", "deliveryKey", "signature")
_OPTIONAL = ("recipients",)
#: Longest path a note may carry; services refuse longer ones before looking at them.
MAX_PATH = 8


@dataclass(frozen=True)
class Forwarding:
    """The note of the module docstring (``path`` and ``to`` normalised)."""

    path: tuple[str, ...]
    to: str
    envelope_id: str
    delivery_key: str
    signature: str
    #: The receivers of a multi-recipient envelope the note hands on; ``None`` for a dm3 envelope.
    recipients: tuple[str, ...] | None = None

    @property
    def forwarder(self) -> str:
        """The service that signed the note: the last of the path."""
        return self.path[-1]

    def unsigned_json(self) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "version": FORWARDING_VERSION,
            "path": list(self.path),
            "to": self.to,
            "envelopeId": self.envelope_id,
            "deliveryKey": self.delivery_key,
        }
        if self.recipients is not None:
            obj["recipients"] = list(self.recipients)
        return obj

    def to_json(self) -> dict[str, Any]:
        return {**self.unsigned_json(), "signature": self.signature}

    @classmethod
    def from_json(cls, obj: object) -> Forwarding:
        """Check the shape (:class:`SchemaError`) and normalise the names (:class:`EncodingError`)."""
        if not isinstance(obj, Mapping):
            raise SchemaError("the forwarding note must be a JSON object")
        unknown = sorted(set(obj) - set(_FIELDS) - set(_OPTIONAL))
        missing = [name for name in _FIELDS if name not in obj]
        if unknown:
            raise SchemaError(f"the forwarding note has unknown field(s): {', '.join(unknown)}")
        if missing:
            raise SchemaError(f"the forwarding note is missing field(s): {', '.join(missing)}")
        if obj["version"] != FORWARDING_VERSION:
            raise SchemaError(f"the forwarding note's version must be {FORWARDING_VERSION}")
        path = obj["path"]
        if not isinstance(path, list) or not path or len(path) > MAX_PATH or not all(isinstance(n, str) for n in path):
            raise SchemaError(f"the forwarding note's path must be a list of 1 to {MAX_PATH} names")
        for name in ("to", "envelopeId", "deliveryKey", "signature"):
            if not isinstance(obj[name], str) or not obj[name]:
                raise SchemaError(f"the forwarding note's {name} must be a non-empty string")
        recipients = obj.get("recipients")
        if recipients is not None and (
            not isinstance(recipients, list) or not recipients or not all(isinstance(n, str) and n for n in recipients)
        ):
            raise SchemaError("the forwarding note's recipients must be a non-empty list of names")
        return cls(
            path=tuple(normalize_name(name) for name in path),
            to=normalize_name(obj["to"]),
            envelope_id=obj["envelopeId"],
            delivery_key=obj["deliveryKey"],
            signature=obj["signature"],
            recipients=None if recipients is None else tuple(recipients),
        )


def build_forwarding(
    envelope: EncryptionEnvelop,
    ds_encryption_key_pair: EncryptionKeyPair,
    ds_signing_secret_key: str,
    *,
    path: Sequence[str],
    to: str,
    to_public_encryption_key: str,
) -> Forwarding:
    """The note with which the last service of ``path`` hands ``envelope`` on to ``to``.

    ``envelope``'s delivery information must be the ciphertext encrypted to
    ``ds_encryption_key_pair`` (:class:`DecryptionError` otherwise, :class:`SchemaError` when it
    is already the decrypted object).
    """
    info = envelope.metadata.delivery_information
    if isinstance(info, DeliveryInformation):
        raise SchemaError("only an envelope with encrypted delivery information can be forwarded")
    return _build(info, envelope_id(envelope), ds_encryption_key_pair, ds_signing_secret_key, path, to, to_public_encryption_key, None)


def build_multi_forwarding(
    envelope: MultiEnvelope,
    ds_encryption_key_pair: EncryptionKeyPair,
    ds_signing_secret_key: str,
    *,
    path: Sequence[str],
    to: str,
    to_public_encryption_key: str,
    recipients: Sequence[str],
) -> Forwarding:
    """:func:`build_forwarding` for a multi-recipient envelope, naming the ``recipients`` (as the
    sender wrote them in its receiver list) that ``to`` is to deliver to."""
    if not recipients:
        raise SchemaError("a multi-recipient forwarding note names at least one receiver")
    return _build(
        envelope.delivery_information,
        envelope.encrypted_message_hash,
        ds_encryption_key_pair,
        ds_signing_secret_key,
        path,
        to,
        to_public_encryption_key,
        tuple(recipients),
    )


def _build(
    info: str,
    id_: str,
    ds_encryption_key_pair: EncryptionKeyPair,
    ds_signing_secret_key: str,
    path: Sequence[str],
    to: str,
    to_public_encryption_key: str,
    recipients: tuple[str, ...] | None,
) -> Forwarding:
    payload = EncryptedPayload.from_wire(info, what="metadata.deliveryInformation")
    key = _payload_key(ds_encryption_key_pair, payload)
    decrypt_symmetric(key, payload)  # the key must open it: never hand on a key that does not
    unsigned = Forwarding(
        path=tuple(normalize_name(name) for name in path),
        to=normalize_name(to),
        envelope_id=id_,
        delivery_key=encrypt_asymmetric(to_public_encryption_key, b64encode(key)).to_wire(),
        signature="",
        recipients=recipients,
    )
    signature = sign(ds_signing_secret_key, stringify(unsigned.unsigned_json()))
    return replace(unsigned, signature=signature)


def verify_forwarding(
    forwarding: Forwarding, envelope: EncryptionEnvelop | MultiEnvelope, forwarder_public_signing_key: str
) -> None:
    """The note is for ``envelope`` and signed with the forwarder's key; :class:`SignatureError` if not."""
    id_ = envelope.encrypted_message_hash if isinstance(envelope, MultiEnvelope) else envelope_id(envelope)
    if forwarding.envelope_id != id_:
        raise SignatureError("the forwarding note is for another envelope")
    if not verify(forwarder_public_signing_key, stringify(forwarding.unsigned_json()), forwarding.signature):
        raise SignatureError("the forwarding note is not signed by the forwarding service's key")


def open_forwarded_delivery_information(
    envelope: EncryptionEnvelop, forwarding: Forwarding, ds_encryption_key_pair: EncryptionKeyPair
) -> DeliveryInformation:
    """The next service's side: open the delivery key with its own key, then the sender's payload.

    :class:`DecryptionError` when either does not open; :class:`SchemaError` /
    :class:`EncodingError` for malformed contents.
    """
    info = envelope.metadata.delivery_information
    if isinstance(info, DeliveryInformation):
        raise SchemaError("a forwarded envelope must carry its delivery information encrypted")
    plaintext = _open_with_note(info, forwarding, ds_encryption_key_pair)
    return DeliveryInformation.from_json(parse_json(plaintext, what="decrypted deliveryInformation"))


def open_forwarded_multi_delivery_information(
    envelope: MultiEnvelope, forwarding: Forwarding, ds_encryption_key_pair: EncryptionKeyPair
) -> MultiDeliveryInformation:
    """:func:`open_forwarded_delivery_information` for a multi-recipient envelope: the sender's
    receiver list, checked to pair with the envelope's keys."""
    plaintext = _open_with_note(envelope.delivery_information, forwarding, ds_encryption_key_pair)
    return multi_delivery_information(envelope, plaintext)


def _open_with_note(info: str, forwarding: Forwarding, ds_encryption_key_pair: EncryptionKeyPair) -> str:
    sealed_key = EncryptedPayload.from_wire(forwarding.delivery_key, what="the forwarding note's deliveryKey")
    key = b64decode(decrypt_asymmetric(ds_encryption_key_pair, sealed_key), length=32, what="deliveryKey")
    payload = EncryptedPayload.from_wire(info, what="metadata.deliveryInformation")
    return decrypt_symmetric(key, payload)


def _payload_key(key_pair: EncryptionKeyPair, payload: EncryptedPayload) -> bytes:
    if payload.ephem_public_key is None:
        raise EncodingError("metadata.deliveryInformation has no ephemPublicKey")
    rx, _tx = receiver_session_keys(key_pair, payload.ephem_public_key)
    return rx
