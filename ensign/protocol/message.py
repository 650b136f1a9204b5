"""The plaintext dm3 message: creation, its Ed25519 signature, and its hash.

The sender signs ``stringify(message without "signature")`` — the canonical JSON string itself,
not a digest of it — with its Ed25519 key. Absent optional fields are left out, never ``null``;
an empty ``attachments`` list is kept (dm3 sends ``[]`` for reactions and read receipts).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from ensign.errors import EncodingError, ProtocolError, SchemaError
from ensign.protocol.canonical import MAX_SAFE_INTEGER, stringify
from ensign.protocol.crypto import sign, verify
from ensign.protocol.encoding import normalize_name, sha256_hex
from ensign.protocol.models import MESSAGE_TYPES, Attachment, Message, MessageMetadata

__all__ = [
    "create_message",
    "message_signature_payload",
    "verify_message_signature",
    "message_hash",
]


def create_message(
    to: str,
    from_: str,
    text: str | None,
    signing_secret_key: str,
    *,
    type: str = "NEW",
    timestamp: int | None = None,
    reference_message_hash: str | None = None,
    reply_delivery_instruction: str | None = None,
    attachments: Iterable[Attachment] | None = None,
) -> Message:
    """Build and sign a message from ``from_`` to ``to`` (ENS names as the sender uses them).

    :param text: the message text; ``None`` leaves ``message`` out (dm3's DELETE_REQUEST).
    :param signing_secret_key: the sender's 64-byte Ed25519 secret key, base64.
    :param type: one of :data:`~ensign.protocol.models.MESSAGE_TYPES` (default ``"NEW"``).
    :param timestamp: creation time in ms since the epoch (default: now).
    :param attachments: ``None`` (absent) or attachments; an empty iterable is kept as ``[]``.
    """
    if type not in MESSAGE_TYPES:
        raise SchemaError(f"message type must be one of {', '.join(MESSAGE_TYPES)}")
    if timestamp is None:
        timestamp = time.time_ns() // 1_000_000
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or not 0 <= timestamp <= MAX_SAFE_INTEGER:
        raise SchemaError("timestamp must be a non-negative integer of milliseconds")
    unsigned = Message(
        metadata=MessageMetadata(
            to=to,
            from_=from_,
            timestamp=timestamp,
            type=type,
            reference_message_hash=reference_message_hash,
            reply_delivery_instruction=reply_delivery_instruction,
        ),
        signature="",
        message=text,
        attachments=None if attachments is None else tuple(attachments),
    )
    signature = sign(signing_secret_key, message_signature_payload(unsigned))
    return Message(
        metadata=unsigned.metadata,
        signature=signature,
        message=unsigned.message,
        attachments=unsigned.attachments,
    )


def message_signature_payload(message: Message) -> str:
    """``stringify(message minus signature)`` — the exact string the sender signs."""
    return stringify(message.unsigned_json())


def verify_message_signature(
    message: Message, public_signing_key: str, expected_sender: str | None = None
) -> bool:
    """dm3 ``checkMessageSignature``: the Ed25519 signature verifies under ``public_signing_key``
    and, when ``expected_sender`` is given, it names the same account as ``metadata.from`` after
    :func:`~ensign.protocol.encoding.normalize_name`. Never raises for bad input; returns False."""
    try:
        payload = message_signature_payload(message)
    except ProtocolError:  # a hand-built Message holding something canonical JSON refuses
        return False
    if not verify(public_signing_key, payload, message.signature):
        return False
    if expected_sender is None:
        return True
    try:
        return normalize_name(expected_sender) == normalize_name(message.metadata.from_)
    except EncodingError:
        return False


def message_hash(message: Message) -> str:
    """``sha256_hex(stringify(message))`` including the signature — the source-form envelope's
    ``metadata.messageHash`` and dm3's ``referenceMessageHash`` target."""
    return sha256_hex(stringify(message.to_json()))
