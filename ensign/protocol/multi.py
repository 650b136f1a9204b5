"""Multi-recipient envelopes (``ensign-multi-v1``): one message encrypted once for many receivers.

What the sender submits (``specs/protocol.md`` §1.15)::

    {"message":  "<EncryptedPayload JSON text: stringify(Message) under a random 32-byte key K>",
     "metadata": {"version": "ensign-multi-v1",
                  "encryptionScheme": "x25519-chacha20-poly1305",
                  "encryptedMessageHash": "0x… sha256_hex(stringify(message))",
                  "deliveryInformation": "<EncryptedPayload JSON text of stringify({from, to: [names]}), to the DS>",
                  "keys": ["<EncryptedPayload JSON text of base64(K), to receiver i>", …],
                  "signature": "<Ed25519 of stringify(metadata minus signature)>"}}

``keys[i]`` is for ``to[i]`` of the delivery information (only the DS can pair them), wrapped as a
storage grant's key is (:func:`ensign.protocol.grants.wrap_key`). The plaintext
is an ordinary signed dm3 :class:`Message` whose ``metadata.to`` is the canonical JSON array of the
receivers' names (:func:`recipients_field`), so the message signature covers the whole list and no
receiver's copy can be replayed to someone left off it.

What the DS stores for receiver ``i`` (a *copy*): the shared ``message``, that receiver's key, and
the decrypted ``{to, from}`` naming it, plus the postmark::

    {"message": "…", "metadata": {"version", "encryptionScheme", "encryptedMessageHash",
                                  "deliveryInformation": {"to": name_i, "from": sender}, "key": keys[i]},
     "postmark": "…"}

The sender's metadata signature is not in a copy (checking it needs every receiver's key); the
receiver relies on the message's own signature instead, as with dm3's stored envelopes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import nacl.bindings as sodium
from marshmallow import fields, post_load, validate

from ensign.errors import EncodingError, SchemaError, SignatureError
from ensign.protocol.canonical import parse_json, stringify
from ensign.protocol.crypto import (
    ENCRYPTION_SCHEME,
    EncryptedPayload,
    EncryptionKeyPair,
    decrypt_asymmetric,
    decrypt_symmetric,
    encrypt_asymmetric,
    encrypt_symmetric,
    sign,
    verify,
)
from ensign.protocol.encoding import normalize_name
from ensign.protocol.envelope import encrypted_message_hash
from ensign.protocol.grants import unwrap_key, wrap_key
from ensign.protocol.message import create_message, verify_message_signature
from ensign.protocol.models import DeliveryInformation, Message, _ed25519_signature, _hash
from ensign.protocol.schema import Strict, Text, load

__all__ = [
    "MULTI_VERSION",
    "MultiDeliveryInformation",
    "MultiEnvelope",
    "MultiCopy",
    "is_multi",
    "recipients_field",
    "recipients_of",
    "create_multi_message",
    "build_multi_envelope",
    "multi_signature_payload",
    "open_multi_delivery_information",
    "multi_delivery_information",
    "pick_recipients",
    "verify_multi_envelope",
    "copy_for",
    "open_copy",
    "deterministic_bytes",
]

MULTI_VERSION = "ensign-multi-v1"
_KEY_BYTES = 32


def is_multi(raw: object) -> bool:
    """Whether a parsed envelope (submitted or stored) says it is ``ensign-multi-v1``."""
    metadata = raw.get("metadata") if isinstance(raw, dict) else None
    return isinstance(metadata, dict) and metadata.get("version") == MULTI_VERSION


def recipients_field(names: Sequence[str]) -> str:
    """The message's ``metadata.to``: ``stringify([names…])`` in the sender's order."""
    return stringify(list(names))


def recipients_of(message: Message) -> tuple[str, ...]:
    """The receivers a multi-recipient message names (:class:`SchemaError` if it names none)."""
    try:
        names = parse_json(message.metadata.to, what="metadata.to")
    except EncodingError:
        names = None
    if not isinstance(names, list) or not names or not all(isinstance(name, str) and name for name in names):
        raise SchemaError("metadata.to of a multi-recipient message must be a JSON array of names")
    return tuple(names)


def create_multi_message(to: Sequence[str], from_: str, text: str | None, signing_secret_key: str, **kwargs: Any) -> Message:
    """:func:`~ensign.protocol.message.create_message` addressed to every name of ``to``."""
    _check_names(to, "the receivers")
    return create_message(recipients_field(to), from_, text, signing_secret_key, **kwargs)


#: Names ENSIP-15 leaves as they are (or refuses): compared without running the normaliser, which
#: costs about half a millisecond a name — a hundred receivers are compared on every hop.
_PLAIN_NAME = re.compile(r"[a-z0-9_.-]+")


def _same(a: str) -> str:
    """The form names are compared in: normalised, or as written when ENSIP-15 refuses it."""
    if _PLAIN_NAME.fullmatch(a):
        return a
    try:
        return normalize_name(a)
    except EncodingError:
        return a


def _check_names(names: Sequence[str], what: str) -> None:
    if isinstance(names, str) or not names:
        raise SchemaError(f"{what} must be a non-empty list of names")
    seen: set[str] = set()
    for name in names:
        key = _same(name)
        if key in seen:
            raise SchemaError(f"{what} name {name} twice")
        seen.add(key)


# --- wire objects --------------------------------------------------------------------------------


@dataclass(frozen=True)
class MultiDeliveryInformation:
    """``{from, to: [names]}`` — encrypted to the DS; ``to[i]`` receives ``keys[i]``."""

    to: tuple[str, ...]
    from_: str

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> MultiDeliveryInformation:
        return load(_MULTI_INFO, obj, "multi-recipient deliveryInformation")  # type: ignore[no-any-return]

    def to_json(self) -> dict[str, Any]:
        return {"from": self.from_, "to": list(self.to)}


class _MultiInfoSchema(Strict):
    to = fields.List(Text(), required=True, validate=validate.Length(min=1))
    from_ = Text(required=True, data_key="from")

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> MultiDeliveryInformation:
        return MultiDeliveryInformation(to=tuple(data["to"]), from_=data["from_"])


@dataclass(frozen=True)
class MultiEnvelope:
    """A submitted ``ensign-multi-v1`` envelope (module docstring)."""

    message: str
    delivery_information: str
    keys: tuple[str, ...]
    encrypted_message_hash: str
    signature: str
    encryption_scheme: str = ENCRYPTION_SCHEME
    version: str = MULTI_VERSION

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> MultiEnvelope:
        """Validate and load a submitted multi-recipient envelope (:class:`SchemaError`)."""
        return load(_MULTI_ENVELOPE, obj, "multi-recipient envelope")  # type: ignore[no-any-return]

    def unsigned_metadata(self) -> dict[str, Any]:
        """The metadata without ``signature`` — what the signature covers."""
        return {
            "version": self.version,
            "encryptionScheme": self.encryption_scheme,
            "encryptedMessageHash": self.encrypted_message_hash,
            "deliveryInformation": self.delivery_information,
            "keys": list(self.keys),
        }

    def to_json(self) -> dict[str, Any]:
        return {"message": self.message, "metadata": {**self.unsigned_metadata(), "signature": self.signature}}


class _MultiMetadataSchema(Strict):
    version = Text(required=True, validate=validate.Equal(MULTI_VERSION))
    encryption_scheme = Text(required=True, data_key="encryptionScheme", validate=validate.Equal(ENCRYPTION_SCHEME))
    encrypted_message_hash = _hash("encryptedMessageHash", required=True)
    delivery_information = Text(required=True, data_key="deliveryInformation")
    keys = fields.List(Text(), required=True, validate=validate.Length(min=1))
    signature = _ed25519_signature()


class _MultiEnvelopeSchema(Strict):
    message = Text(required=True)
    metadata = fields.Nested(_MultiMetadataSchema, required=True)

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> MultiEnvelope:
        meta = data["metadata"]
        return MultiEnvelope(message=data["message"], keys=tuple(meta.pop("keys")), **meta)


@dataclass(frozen=True)
class MultiCopy:
    """One receiver's stored copy of a multi-recipient envelope (module docstring)."""

    message: str
    delivery_information: DeliveryInformation
    key: str
    encrypted_message_hash: str
    postmark: str | None = None
    encryption_scheme: str = ENCRYPTION_SCHEME
    version: str = MULTI_VERSION

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> MultiCopy:
        """Validate and load a stored copy (:class:`SchemaError`)."""
        return load(_MULTI_COPY, obj, "multi-recipient copy")  # type: ignore[no-any-return]

    def to_json(self) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "message": self.message,
            "metadata": {
                "version": self.version,
                "encryptionScheme": self.encryption_scheme,
                "encryptedMessageHash": self.encrypted_message_hash,
                "deliveryInformation": self.delivery_information.to_json(),
                "key": self.key,
            },
        }
        if self.postmark is not None:
            obj["postmark"] = self.postmark
        return obj


class _CopyInfoSchema(Strict):
    to = Text(required=True)
    from_ = Text(required=True, data_key="from")

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> DeliveryInformation:
        return DeliveryInformation(to=data["to"], from_=data["from_"])


class _CopyMetadataSchema(Strict):
    version = Text(required=True, validate=validate.Equal(MULTI_VERSION))
    encryption_scheme = Text(required=True, data_key="encryptionScheme", validate=validate.Equal(ENCRYPTION_SCHEME))
    encrypted_message_hash = _hash("encryptedMessageHash", required=True)
    delivery_information = fields.Nested(_CopyInfoSchema, required=True, data_key="deliveryInformation")
    key = Text(required=True)


class _MultiCopySchema(Strict):
    message = Text(required=True)
    metadata = fields.Nested(_CopyMetadataSchema, required=True)
    postmark = Text()

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> MultiCopy:
        return MultiCopy(message=data["message"], postmark=data.get("postmark"), **data["metadata"])


_MULTI_INFO = _MultiInfoSchema()
_MULTI_ENVELOPE = _MultiEnvelopeSchema()
_MULTI_COPY = _MultiCopySchema()


# --- sender --------------------------------------------------------------------------------------


def deterministic_bytes(seed: bytes) -> Callable[[int], bytes]:
    """A byte source for test vectors only: ``SHA-256(seed ‖ counter)`` blocks, counter from 0 as
    a 4-byte big-endian integer, each draw taking whole blocks. Never use it for real messages."""
    counter = 0

    def draw(n: int) -> bytes:
        nonlocal counter
        out = b""
        while len(out) < n:
            out += hashlib.sha256(seed + counter.to_bytes(4, "big")).digest()
            counter += 1
        return out[:n]

    return draw


def build_multi_envelope(
    message: Message,
    sender_signing_secret_key: str,
    receivers: Mapping[str, str],
    delivery_service_public_encryption_key: str,
    *,
    random_bytes: Callable[[int], bytes] = sodium.randombytes,
) -> MultiEnvelope:
    """Encrypt ``message`` once and wrap its key to each receiver (sender side).

    ``message`` comes from :func:`create_multi_message`; ``receivers`` maps names it lists to their
    public encryption keys, in the order of the envelope: all of them, or the ones one delivery
    service hosts (every receiver still sees the whole list in the message). ``random_bytes`` is
    drawn, in order, for the content key (32), the content nonce (12), then for the delivery
    information and each wrapped key an ephemeral seed (32) and a nonce (12); replace it only to
    reproduce test vectors.
    """
    names = tuple(receivers)
    _check_names(names, "the receivers")
    listed = {_same(name) for name in recipients_of(message)}
    unlisted = [name for name in names if _same(name) not in listed]
    if unlisted:
        raise SchemaError(f"the message does not list {', '.join(unlisted)}")
    content_key = random_bytes(_KEY_BYTES)
    sealed = encrypt_symmetric(content_key, stringify(message.to_json()), nonce=random_bytes(12)).to_wire()
    info = MultiDeliveryInformation(to=names, from_=message.metadata.from_)
    encrypted_info = encrypt_asymmetric(
        delivery_service_public_encryption_key,
        stringify(info.to_json()),
        ephemeral_seed=random_bytes(_KEY_BYTES),
        nonce=random_bytes(12),
    ).to_wire()
    wrapped = tuple(
        wrap_key(key, content_key, ephemeral_seed=random_bytes(_KEY_BYTES), nonce=random_bytes(12))
        for key in receivers.values()
    )
    unsigned = MultiEnvelope(
        message=sealed,
        delivery_information=encrypted_info,
        keys=wrapped,
        encrypted_message_hash=encrypted_message_hash(sealed),
        signature="",
    )
    signature = sign(sender_signing_secret_key, multi_signature_payload(unsigned))
    return MultiEnvelope(
        message=sealed,
        delivery_information=encrypted_info,
        keys=wrapped,
        encrypted_message_hash=unsigned.encrypted_message_hash,
        signature=signature,
    )


def multi_signature_payload(envelope: MultiEnvelope) -> str:
    """``stringify(metadata minus signature)`` — the string the sender signs."""
    return stringify(envelope.unsigned_metadata())


# --- delivery service ----------------------------------------------------------------------------


def open_multi_delivery_information(
    envelope: MultiEnvelope, ds_encryption_key_pair: EncryptionKeyPair
) -> MultiDeliveryInformation:
    """Decrypt the delivery information with the DS's key and check it pairs with ``keys``.

    :class:`DecryptionError` if it was not encrypted to this DS; :class:`SchemaError` if it is
    malformed, names a receiver twice, or names another number of receivers than there are keys.
    """
    payload = EncryptedPayload.from_wire(envelope.delivery_information, what="metadata.deliveryInformation")
    return multi_delivery_information(envelope, decrypt_asymmetric(ds_encryption_key_pair, payload))


def multi_delivery_information(envelope: MultiEnvelope, plaintext: str) -> MultiDeliveryInformation:
    """The decrypted delivery information ``plaintext`` of ``envelope``, checked as
    :func:`open_multi_delivery_information` says (also for a forwarded envelope, whose payload the
    next service opens with the key of the forwarding note)."""
    info = MultiDeliveryInformation.from_json(parse_json(plaintext, what="decrypted deliveryInformation"))
    if len(info.to) != len(envelope.keys):
        raise SchemaError(f"deliveryInformation names {len(info.to)} receivers for {len(envelope.keys)} keys")
    _check_names(info.to, "deliveryInformation.to")
    return info


def pick_recipients(info: MultiDeliveryInformation, names: Sequence[str]) -> tuple[int, ...]:
    """The places in ``info.to`` of ``names`` (a forwarding note's receivers), in their order;
    :class:`SchemaError` naming one that is not in the list, or one named twice."""
    _check_names(names, "the forwarding note's recipients")
    places = {_same(name): index for index, name in enumerate(info.to)}
    unlisted = [name for name in names if _same(name) not in places]
    if unlisted:
        raise SchemaError(f"the envelope's receiver list does not name {', '.join(unlisted)}")
    return tuple(places[_same(name)] for name in names)


def verify_multi_envelope(envelope: MultiEnvelope, sender_public_signing_key: str) -> None:
    """The sender's signature over the whole metadata (every wrapped key, the encrypted receiver
    list) and ``encryptedMessageHash`` against ``message``. :class:`SignatureError` naming what failed."""
    if not verify(sender_public_signing_key, multi_signature_payload(envelope), envelope.signature):
        raise SignatureError("envelope metadata signature does not verify with the sender's signing key")
    if encrypted_message_hash(envelope.message) != envelope.encrypted_message_hash:
        raise SignatureError("encryptedMessageHash does not match the envelope's message")


def copy_for(envelope: MultiEnvelope, info: MultiDeliveryInformation, index: int, postmark: str | None) -> MultiCopy:
    """Receiver ``info.to[index]``'s copy: the shared message, its own key, ``{to, from}``."""
    return MultiCopy(
        message=envelope.message,
        delivery_information=DeliveryInformation(to=info.to[index], from_=info.from_),
        key=envelope.keys[index],
        encrypted_message_hash=envelope.encrypted_message_hash,
        postmark=postmark,
    )


# --- receiver ------------------------------------------------------------------------------------


def open_copy(copy: MultiCopy, receiver_encryption_key_pair: EncryptionKeyPair, sender_public_signing_key: str) -> Message:
    """Receiver side: unwrap the key, decrypt the message and check everything the receiver can.

    * ``encryptedMessageHash`` against the shared message;
    * the key unwraps with the receiver's encryption key (:class:`DecryptionError` otherwise) and
      opens the message (:class:`DecryptionError` for a key of another message);
    * the message's signature, against ``sender_public_signing_key``;
    * ``deliveryInformation.from`` is the message's sender and ``deliveryInformation.to`` one of
      the receivers its (signed) ``metadata.to`` lists.

    Whether ``deliveryInformation.to`` is this receiver's name is the caller's check (a name may
    be an alias). :class:`SignatureError` naming the failed check.
    """
    if encrypted_message_hash(copy.message) != copy.encrypted_message_hash:
        raise SignatureError("encryptedMessageHash does not match the envelope's message")
    content_key = unwrap_key(receiver_encryption_key_pair, copy.key)
    payload = EncryptedPayload.from_wire(copy.message, what="envelope message")
    message = Message.from_json(parse_json(decrypt_symmetric(content_key, payload), what="decrypted message"))
    if not verify_message_signature(message, sender_public_signing_key):
        raise SignatureError("message signature does not verify with the sender's signing key")
    info = copy.delivery_information
    if _same(info.from_) != _same(message.metadata.from_):
        raise SignatureError("deliveryInformation does not name the message's sender")
    if _same(info.to) not in {_same(name) for name in recipients_of(message)}:
        raise SignatureError("the message does not list the receiver this copy is for")
    return message
