"""dm3's wire types as frozen dataclasses, each with a marshmallow schema for loading.

``Model.from_json(obj)`` validates a parsed JSON object and returns the dataclass; ``to_json()``
gives back the wire object with dm3's field names (camelCase, including the ``incommingTimestamp``
typo), leaving absent optional fields out — never ``None``/``null``. For any valid input,
``Model.from_json(obj).to_json() == obj``, so signatures over the canonical JSON survive a round
trip.

Validation follows dm3's generated JSON schemas (``additionalProperties: false``: unknown fields
are refused) and adds what dm3 leaves unchecked: public keys must be base64 of exactly 32 bytes,
Ed25519 signatures base64 of 64 bytes, hashes ``0x`` + 64 lowercase hex, integers within
JavaScript's safe range, strings free of lone surrogates. Failures raise :class:`SchemaError` whose
message names every offending field by its wire path (``metadata.timestamp``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from ensign.errors import EncodingError, SchemaError
from ensign.protocol.canonical import MAX_SAFE_INTEGER
from ensign.protocol.encoding import b64decode
from ensign.protocol.schema import SURROGATE as _SURROGATE
from ensign.protocol.schema import Strict as _Strict
from ensign.protocol.schema import Base64 as _Base64
from ensign.protocol.schema import Pattern as _Pattern
from ensign.protocol.schema import SafeInt as _Int
from ensign.protocol.schema import Text as _Text
from ensign.protocol.schema import load as _load

__all__ = [
    "MESSAGE_TYPES",
    "UserProfile",
    "SignedUserProfile",
    "DeliveryServiceProfile",
    "Attachment",
    "MessageMetadata",
    "Message",
    "DeliveryInformation",
    "EnvelopeMetadata",
    "EncryptionEnvelop",
    "Postmark",
]

#: dm3's ``MessageType`` enum.
MESSAGE_TYPES = (
    "NEW",
    "DELETE_REQUEST",
    "EDIT",
    "REPLY",
    "REACTION",
    "READ_OPENED",
    "READ_RECEIVED",
    "RESEND_REQUEST",
)

_HASH = re.compile(r"0x[0-9a-f]{64}")
_WALLET_SIGNATURE = re.compile(r"0x[0-9a-fA-F]{130}")


# --- fields ------------------------------------------------------------------------------------


def _key(name: str) -> _Base64:
    return _Base64(32, required=True, data_key=name)


def _hash(name: str, *, required: bool = False) -> _Pattern:
    return _Pattern(_HASH, "0x followed by 64 lowercase hex digits", required=required, data_key=name)


def _ed25519_signature() -> _Base64:
    return _Base64(64, required=True)


# --- profiles -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UserProfile:
    """A user's public keys and delivery-service names (index 0 is the primary DS)."""

    public_encryption_key: str
    public_signing_key: str
    delivery_services: tuple[str, ...]

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> UserProfile:
        """Validate and load a ``UserProfile`` object; :class:`SchemaError` naming the fields."""
        return _load(_USER_PROFILE, obj, "UserProfile")  # type: ignore[no-any-return]

    def to_json(self) -> dict[str, Any]:
        return {
            "publicEncryptionKey": self.public_encryption_key,
            "publicSigningKey": self.public_signing_key,
            "deliveryServices": list(self.delivery_services),
        }


class _UserProfileSchema(_Strict):
    public_encryption_key = _key("publicEncryptionKey")
    public_signing_key = _key("publicSigningKey")
    delivery_services = fields.List(_Text(), required=True, data_key="deliveryServices")

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> UserProfile:
        return UserProfile(
            public_encryption_key=data["public_encryption_key"],
            public_signing_key=data["public_signing_key"],
            delivery_services=tuple(data["delivery_services"]),
        )


@dataclass(frozen=True)
class SignedUserProfile:
    """A profile with the owner wallet's EIP-191 signature (0x-hex, 65 bytes)."""

    profile: UserProfile
    signature: str

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> SignedUserProfile:
        """Validate and load a ``SignedUserProfile`` object."""
        return _load(_SIGNED_USER_PROFILE, obj, "SignedUserProfile")  # type: ignore[no-any-return]

    def to_json(self) -> dict[str, Any]:
        return {"profile": self.profile.to_json(), "signature": self.signature}


class _SignedUserProfileSchema(_Strict):
    profile = fields.Nested(_UserProfileSchema, required=True)
    signature = _Pattern(_WALLET_SIGNATURE, "a 0x-hex 65-byte wallet signature", required=True)

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> SignedUserProfile:
        return SignedUserProfile(profile=data["profile"], signature=data["signature"])


@dataclass(frozen=True)
class DeliveryServiceProfile:
    """A delivery service's public keys and base URL (ENS ``network.dm3.deliveryService``)."""

    public_encryption_key: str
    public_signing_key: str
    url: str

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> DeliveryServiceProfile:
        """Validate and load a ``DeliveryServiceProfile`` object."""
        return _load(_DS_PROFILE, obj, "DeliveryServiceProfile")  # type: ignore[no-any-return]

    def to_json(self) -> dict[str, Any]:
        return {
            "publicEncryptionKey": self.public_encryption_key,
            "publicSigningKey": self.public_signing_key,
            "url": self.url,
        }


class _DeliveryServiceProfileSchema(_Strict):
    public_encryption_key = _key("publicEncryptionKey")
    public_signing_key = _key("publicSigningKey")
    url = _Text(required=True)

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> DeliveryServiceProfile:
        return DeliveryServiceProfile(**data)


# --- messages -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attachment:
    """``{name?, data}`` — dm3's code uses objects, not the spec's bare URI strings."""

    data: str
    name: str | None = None

    def to_json(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"data": self.data}
        if self.name is not None:
            obj["name"] = self.name
        return obj


class _AttachmentSchema(_Strict):
    data = _Text(required=True)
    name = _Text()

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> Attachment:
        return Attachment(**data)


@dataclass(frozen=True)
class MessageMetadata:
    """Who, when (ms since epoch) and what kind; ``from_`` is the wire field ``from``."""

    to: str
    from_: str
    timestamp: int
    type: str
    reference_message_hash: str | None = None
    reply_delivery_instruction: str | None = None

    def to_json(self) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "to": self.to,
            "from": self.from_,
            "timestamp": self.timestamp,
            "type": self.type,
        }
        if self.reference_message_hash is not None:
            obj["referenceMessageHash"] = self.reference_message_hash
        if self.reply_delivery_instruction is not None:
            obj["replyDeliveryInstruction"] = self.reply_delivery_instruction
        return obj


class _MessageMetadataSchema(_Strict):
    to = _Text(required=True)
    from_ = _Text(required=True, data_key="from")
    timestamp = _Int(required=True)
    type = _Text(required=True, validate=validate.OneOf(MESSAGE_TYPES))
    reference_message_hash = _Text(data_key="referenceMessageHash")
    reply_delivery_instruction = _Text(data_key="replyDeliveryInstruction")

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> MessageMetadata:
        return MessageMetadata(**data)


@dataclass(frozen=True)
class Message:
    """The end-to-end encrypted message, signed (Ed25519, base64) by the sender.

    ``attachments`` is ``None`` when absent and a tuple (possibly empty — dm3 sends ``[]`` for
    reactions and read receipts, and it is signed) when present.
    """

    metadata: MessageMetadata
    signature: str
    message: str | None = None
    attachments: tuple[Attachment, ...] | None = None

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Message:
        """Validate and load a ``Message`` object."""
        return _load(_MESSAGE, obj, "Message")  # type: ignore[no-any-return]

    def unsigned_json(self) -> dict[str, Any]:
        """The wire object without ``signature`` — what the signature covers."""
        obj: dict[str, Any] = {"metadata": self.metadata.to_json()}
        if self.message is not None:
            obj["message"] = self.message
        if self.attachments is not None:
            obj["attachments"] = [a.to_json() for a in self.attachments]
        return obj

    def to_json(self) -> dict[str, Any]:
        obj = self.unsigned_json()
        obj["signature"] = self.signature
        return obj


class _MessageSchema(_Strict):
    metadata = fields.Nested(_MessageMetadataSchema, required=True)
    signature = _ed25519_signature()
    message = _Text()
    attachments = fields.List(fields.Nested(_AttachmentSchema))

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> Message:
        attachments = data.get("attachments")
        return Message(
            metadata=data["metadata"],
            signature=data["signature"],
            message=data.get("message"),
            attachments=None if attachments is None else tuple(attachments),
        )


# --- envelopes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryInformation:
    """``{to, from, deliveryInstruction?}`` — encrypted to the DS by the sender."""

    to: str
    from_: str
    delivery_instruction: str | None = None

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> DeliveryInformation:
        """Validate and load a ``DeliveryInformation`` object.

        The DS decrypts one of these per submitted message, so well-formed input takes a direct
        path; anything else goes through the schema for its field-by-field error message.
        """
        if isinstance(obj, dict) and obj.keys() <= _DELIVERY_INFORMATION_KEYS:
            to, from_ = obj.get("to"), obj.get("from")
            instruction = obj.get("deliveryInstruction")
            if (
                _plain_text(to)
                and _plain_text(from_)
                and (instruction is None and "deliveryInstruction" not in obj or _plain_text(instruction))
            ):
                return cls(to=to, from_=from_, delivery_instruction=instruction)
        return _load(_DELIVERY_INFORMATION, obj, "DeliveryInformation")  # type: ignore[no-any-return]

    def to_json(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"to": self.to, "from": self.from_}
        if self.delivery_instruction is not None:
            obj["deliveryInstruction"] = self.delivery_instruction
        return obj


_DELIVERY_INFORMATION_KEYS = frozenset({"to", "from", "deliveryInstruction"})


def _plain_text(value: Any) -> TypeGuard[str]:
    """What :class:`_Text` accepts: a string without lone surrogates."""
    return isinstance(value, str) and (value.isascii() or not _SURROGATE.search(value))


class _DeliveryInformationSchema(_Strict):
    to = _Text(required=True)
    from_ = _Text(required=True, data_key="from")
    delivery_instruction = _Text(data_key="deliveryInstruction")

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> DeliveryInformation:
        return DeliveryInformation(**data)


class _DeliveryInformationField(fields.Field[Any]):
    """``string | DeliveryInformation``: encrypted as sent, or the object a dm3 DS stores."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str):
            return _Text()._deserialize(value, attr, data)
        if isinstance(value, Mapping):
            return _DeliveryInformationSchema().load(value)
        raise ValidationError("must be a string (encrypted) or a DeliveryInformation object")


@dataclass(frozen=True)
class EnvelopeMetadata:
    """Envelope metadata, signed by the sender. Carries exactly one of ``encrypted_message_hash``
    (npm 1.7.1 form) and ``message_hash`` (source form)."""

    version: str
    delivery_information: str | DeliveryInformation
    signature: str
    encryption_scheme: str | None = None
    message_hash: str | None = None
    encrypted_message_hash: str | None = None

    def __post_init__(self) -> None:
        if (self.message_hash is None) == (self.encrypted_message_hash is None):
            raise SchemaError(
                "envelope metadata must carry exactly one of encryptedMessageHash and messageHash"
            )

    @property
    def form(self) -> str:
        """``"npm"`` (encryptedMessageHash) or ``"source"`` (messageHash)."""
        return "npm" if self.encrypted_message_hash is not None else "source"

    def unsigned_json(self) -> dict[str, Any]:
        """The wire object without ``signature`` — what the metadata signature covers."""
        info = self.delivery_information
        obj: dict[str, Any] = {
            "version": self.version,
            "deliveryInformation": info if isinstance(info, str) else info.to_json(),
        }
        if self.encryption_scheme is not None:
            obj["encryptionScheme"] = self.encryption_scheme
        if self.message_hash is not None:
            obj["messageHash"] = self.message_hash
        if self.encrypted_message_hash is not None:
            obj["encryptedMessageHash"] = self.encrypted_message_hash
        return obj

    def to_json(self) -> dict[str, Any]:
        obj = self.unsigned_json()
        obj["signature"] = self.signature
        return obj


class _EnvelopeMetadataSchema(_Strict):
    version = _Text(required=True)
    delivery_information = _DeliveryInformationField(required=True, data_key="deliveryInformation")
    signature = _ed25519_signature()
    encryption_scheme = _Text(data_key="encryptionScheme")
    message_hash = _hash("messageHash")
    encrypted_message_hash = _hash("encryptedMessageHash")

    @validates_schema
    def _one_hash(self, data: dict[str, Any], **_: Any) -> None:
        has_plain = "message_hash" in data
        has_encrypted = "encrypted_message_hash" in data
        if has_plain and has_encrypted:
            raise ValidationError(
                "carries both encryptedMessageHash and messageHash; exactly one is allowed"
            )
        if not has_plain and not has_encrypted:
            raise ValidationError("carries neither encryptedMessageHash nor messageHash")

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> EnvelopeMetadata:
        return EnvelopeMetadata(**data)


@dataclass(frozen=True)
class EncryptionEnvelop:
    """What is submitted to a DS (dm3's spelling): the encrypted message (EncryptedPayload JSON
    text), the signed metadata, and the DS's encrypted postmark once stamped."""

    message: str
    metadata: EnvelopeMetadata
    postmark: str | None = None

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> EncryptionEnvelop:
        """Validate and load an ``EncryptionEnvelop`` object.

        The DS loads one of these per submitted message, so a well-formed envelope with encrypted
        delivery information takes a direct path that checks exactly what the schema checks;
        anything else goes through the schema, for its field-by-field error message.
        """
        direct = _direct_envelope(obj)
        if direct is not None:
            return direct
        return _load(_ENVELOPE, obj, "EncryptionEnvelop")  # type: ignore[no-any-return]

    def to_json(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"message": self.message, "metadata": self.metadata.to_json()}
        if self.postmark is not None:
            obj["postmark"] = self.postmark
        return obj


_ENVELOPE_KEYS = frozenset({"message", "metadata", "postmark"})
_METADATA_KEYS = frozenset(
    {"version", "deliveryInformation", "signature", "encryptionScheme", "messageHash", "encryptedMessageHash"}
)


def _direct_envelope(obj: Any) -> EncryptionEnvelop | None:
    """The envelope the schema would load from ``obj``, or ``None`` to let the schema decide.

    Accepts only what the schemas accept (no unknown keys, strings without lone surrogates, a
    64-byte base64 signature, exactly one well-formed hash), for the common case: encrypted
    delivery information, as clients submit it. ``None`` is not a verdict, only "not this path".
    """
    if not isinstance(obj, dict) or not obj.keys() <= _ENVELOPE_KEYS:
        return None
    message, metadata, postmark = obj.get("message"), obj.get("metadata"), obj.get("postmark")
    if not _plain_text(message) or ("postmark" in obj and not _plain_text(postmark)):
        return None
    if not isinstance(metadata, dict) or not metadata.keys() <= _METADATA_KEYS:
        return None
    version, info, signature = metadata.get("version"), metadata.get("deliveryInformation"), metadata.get("signature")
    if not (_plain_text(version) and _plain_text(info) and _plain_text(signature)):
        return None
    scheme = metadata.get("encryptionScheme")
    if "encryptionScheme" in metadata and not _plain_text(scheme):
        return None
    plain_hash, encrypted_hash = metadata.get("messageHash"), metadata.get("encryptedMessageHash")
    if ("messageHash" in metadata) == ("encryptedMessageHash" in metadata):
        return None
    digest = plain_hash if "messageHash" in metadata else encrypted_hash
    if not isinstance(digest, str) or not _HASH.fullmatch(digest):
        return None
    try:
        b64decode(signature, length=64)
    except EncodingError:
        return None
    return EncryptionEnvelop(
        message=message,
        metadata=EnvelopeMetadata(
            version=version,
            delivery_information=info,
            signature=signature,
            encryption_scheme=scheme,
            message_hash=plain_hash,
            encrypted_message_hash=encrypted_hash,
        ),
        postmark=postmark,
    )


class _EncryptionEnvelopSchema(_Strict):
    message = _Text(required=True)
    metadata = fields.Nested(_EnvelopeMetadataSchema, required=True)
    postmark = _Text()

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> EncryptionEnvelop:
        return EncryptionEnvelop(**data)


@dataclass(frozen=True)
class Postmark:
    """The DS's receipt: EIP-191 hash of the envelope message, receive time (ms), Ed25519 signature."""

    message_hash: str
    incomming_timestamp: int
    signature: str

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Postmark:
        """Validate and load a ``Postmark`` object."""
        return _load(_POSTMARK, obj, "Postmark")  # type: ignore[no-any-return]

    def to_json(self) -> dict[str, Any]:
        return {
            "messageHash": self.message_hash,
            "incommingTimestamp": self.incomming_timestamp,
            "signature": self.signature,
        }


class _PostmarkSchema(_Strict):
    message_hash = _hash("messageHash", required=True)
    incomming_timestamp = _Int(required=True, data_key="incommingTimestamp")
    signature = _ed25519_signature()

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> Postmark:
        return Postmark(**data)


# Schema instances are stateless between loads; build each once.
_USER_PROFILE = _UserProfileSchema()
_SIGNED_USER_PROFILE = _SignedUserProfileSchema()
_DS_PROFILE = _DeliveryServiceProfileSchema()
_MESSAGE = _MessageSchema()
_DELIVERY_INFORMATION = _DeliveryInformationSchema()
_ENVELOPE = _EncryptionEnvelopSchema()
_POSTMARK = _PostmarkSchema()
