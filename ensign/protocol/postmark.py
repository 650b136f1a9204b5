"""The delivery service's postmark: a signed, encrypted receipt attached to each stored envelope.

Exactly as dm3-lib-delivery 1.7.1 ``addPostmark`` makes it:

* ``messageHash = eip191_hash(stringify(envelope.message))`` — ethers ``hashMessage`` of the quoted
  JSON string literal of the encrypted message text;
* ``incommingTimestamp`` — receive time in ms (dm3's spelling, double "m");
* ``signature = sign(ds_signing_key, sha256_hex(stringify({incommingTimestamp, messageHash})))`` —
  Ed25519 over the UTF-8 of the 66-character ``0x`` hex string;
* the postmark JSON ``{"incommingTimestamp","messageHash","signature"}`` is encrypted to the
  receiver (:func:`~ensign.protocol.crypto.encrypt_asymmetric`), and the envelope's ``postmark``
  field holds the canonical JSON of that ``EncryptedPayload``.
"""

from __future__ import annotations

from ensign.errors import ProtocolError, SchemaError
from ensign.protocol.canonical import MAX_SAFE_INTEGER, parse_json, stringify
from ensign.protocol.crypto import (
    EncryptedPayload,
    EncryptionKeyPair,
    decrypt_asymmetric,
    encrypt_asymmetric,
    sign,
    verify,
)
from ensign.protocol.encoding import eip191_hash, sha256_hex
from ensign.protocol.models import Postmark

__all__ = [
    "postmark_message_hash",
    "postmark_signature_payload",
    "create_postmark",
    "postmark_plaintext",
    "seal_postmark",
    "open_postmark",
    "verify_postmark",
]


def postmark_message_hash(envelope_message: str) -> str:
    """``eip191_hash(stringify(envelope.message))``."""
    return eip191_hash(stringify(envelope_message))


def postmark_signature_payload(message_hash: str, incomming_timestamp: int) -> str:
    """The string the DS signs: ``sha256_hex(stringify({incommingTimestamp, messageHash}))``."""
    return sha256_hex(stringify({"incommingTimestamp": incomming_timestamp, "messageHash": message_hash}))


def create_postmark(
    envelope_message: str,
    ds_signing_secret_key: str,
    receiver_public_encryption_key: str,
    incomming_timestamp: int,
) -> str:
    """Stamp an envelope: return the wire value of its ``postmark`` field (canonical JSON of the
    encrypted payload). ``incomming_timestamp`` is the receive time in ms."""
    if (
        isinstance(incomming_timestamp, bool)
        or not isinstance(incomming_timestamp, int)
        or not 0 <= incomming_timestamp <= MAX_SAFE_INTEGER
    ):
        raise SchemaError("incommingTimestamp must be a non-negative integer of milliseconds")
    plain = postmark_plaintext(envelope_message, ds_signing_secret_key, incomming_timestamp)
    return seal_postmark(plain, receiver_public_encryption_key)


def postmark_plaintext(envelope_message: str, ds_signing_secret_key: str, incomming_timestamp: int) -> str:
    """The signed postmark JSON before encryption: one serves every receiver of the same
    ``envelope_message`` stamped at the same time (multi-recipient envelopes)."""
    digest = postmark_message_hash(envelope_message)
    signature = sign(ds_signing_secret_key, postmark_signature_payload(digest, incomming_timestamp))
    return stringify({"incommingTimestamp": incomming_timestamp, "messageHash": digest, "signature": signature})


def seal_postmark(plaintext: str, receiver_public_encryption_key: str) -> str:
    """The ``postmark`` field's wire value: :func:`postmark_plaintext` encrypted to one receiver."""
    return encrypt_asymmetric(receiver_public_encryption_key, plaintext).to_wire()


def open_postmark(postmark_wire: str, receiver_encryption_key_pair: EncryptionKeyPair) -> Postmark:
    """Receiver side: decrypt and validate a postmark (:class:`DecryptionError`,
    :class:`SchemaError`). Check it with :func:`verify_postmark`."""
    payload = EncryptedPayload.from_wire(postmark_wire, what="postmark")
    plaintext = decrypt_asymmetric(receiver_encryption_key_pair, payload)
    return Postmark.from_json(parse_json(plaintext, what="decrypted postmark"))


def verify_postmark(postmark: Postmark, envelope_message: str, ds_public_signing_key: str) -> bool:
    """True iff the postmark is for ``envelope_message`` and signed by the DS's signing key."""
    try:
        if postmark.message_hash != postmark_message_hash(envelope_message):
            return False
    except ProtocolError:  # an envelope message canonical JSON refuses has no valid postmark
        return False
    payload = postmark_signature_payload(postmark.message_hash, postmark.incomming_timestamp)
    return verify(ds_public_signing_key, payload, postmark.signature)
