"""The encryption envelope: building it (sender), checking it (delivery service), opening it
(receiver).

An envelope is ``{message, metadata, postmark?}``:

* ``message`` — ``EncryptedPayload`` JSON text of ``stringify(Message)``, encrypted to the receiver;
* ``metadata.deliveryInformation`` — ``EncryptedPayload`` JSON text of ``stringify({to, from})``,
  encrypted to the delivery service (a dm3 DS later stores the decrypted object instead);
* ``metadata.version`` ``"v1"``, ``metadata.encryptionScheme`` ``"x25519-chacha20-poly1305"``;
* one hash, depending on the form (:data:`ENVELOPE_FORMS`):

  - ``"npm"`` (what the published dm3 1.7.1 libraries send): ``encryptedMessageHash =
    sha256_hex(stringify(envelope.message))`` — the hash of the *ciphertext* string, which the DS
    can check;
  - ``"source"`` (dm3's git source): ``messageHash = sha256_hex(stringify(Message))`` — the hash of
    the plaintext, which only the receiver can check;

* ``metadata.signature`` — the sender's Ed25519 signature of ``stringify(metadata minus
  signature)``, i.e. ``{deliveryInformation, encryptedMessageHash|messageHash, encryptionScheme,
  version}`` with the deliveryInformation still encrypted.
"""

from __future__ import annotations

from ensign.errors import EncodingError, SchemaError, SignatureError
from ensign.protocol.canonical import parse_json, stringify
from ensign.protocol.crypto import (
    ENCRYPTION_SCHEME,
    EncryptedPayload,
    EncryptionKeyPair,
    decrypt_asymmetric,
    encrypt_asymmetric,
    sign,
    verify,
)
from ensign.protocol.encoding import normalize_name, sha256_hex
from ensign.protocol.message import message_hash, verify_message_signature
from ensign.protocol.models import (
    DeliveryInformation,
    EncryptionEnvelop,
    EnvelopeMetadata,
    Message,
)

__all__ = [
    "ENVELOPE_FORMS",
    "ENVELOPE_VERSION",
    "build_envelope",
    "encrypted_message_hash",
    "metadata_signature_payload",
    "envelope_id",
    "open_delivery_information",
    "verify_envelope",
    "open_envelope",
]

#: ``"npm"``: ``metadata.encryptedMessageHash`` (dm3 npm 1.7.1); ``"source"``: ``metadata.messageHash``.
ENVELOPE_FORMS = ("npm", "source")
ENVELOPE_VERSION = "v1"


def encrypted_message_hash(envelope_message: str) -> str:
    """``sha256_hex(stringify(envelope.message))``: the hash of the quoted JSON string literal of
    the encrypted message text (npm 1.7.1 ``encryptedMessageHash``)."""
    return sha256_hex(stringify(envelope_message))


def build_envelope(
    message: Message,
    sender_signing_secret_key: str,
    receiver_public_encryption_key: str,
    delivery_service_public_encryption_key: str,
    *,
    form: str = "npm",
    delivery_instruction: str | None = None,
) -> EncryptionEnvelop:
    """Encrypt and sign ``message`` for submission to the receiver's delivery service (dm3
    ``buildEnvelop``). The delivery information names ``message.metadata.to`` and ``.from``.

    :param form: ``"npm"`` (default; what dm3 clients send and a dm3 1.7.1 DS accepts) or
        ``"source"``.
    :param delivery_instruction: optional ``deliveryInformation.deliveryInstruction``.
    """
    if form not in ENVELOPE_FORMS:
        raise SchemaError(f"envelope form must be one of {', '.join(ENVELOPE_FORMS)}")
    encrypted_message = encrypt_asymmetric(
        receiver_public_encryption_key, stringify(message.to_json())
    ).to_wire()
    info = DeliveryInformation(
        to=message.metadata.to, from_=message.metadata.from_, delivery_instruction=delivery_instruction
    )
    encrypted_info = encrypt_asymmetric(
        delivery_service_public_encryption_key, stringify(info.to_json())
    ).to_wire()
    hashes = (
        {"encrypted_message_hash": encrypted_message_hash(encrypted_message)}
        if form == "npm"
        else {"message_hash": message_hash(message)}
    )
    unsigned = EnvelopeMetadata(
        version=ENVELOPE_VERSION,
        delivery_information=encrypted_info,
        signature="",
        encryption_scheme=ENCRYPTION_SCHEME,
        **hashes,
    )
    signature = sign(sender_signing_secret_key, metadata_signature_payload(unsigned))
    metadata = EnvelopeMetadata(
        version=unsigned.version,
        delivery_information=encrypted_info,
        signature=signature,
        encryption_scheme=unsigned.encryption_scheme,
        **hashes,
    )
    return EncryptionEnvelop(message=encrypted_message, metadata=metadata)


def metadata_signature_payload(metadata: EnvelopeMetadata) -> str:
    """``stringify(metadata minus signature)`` — the string the sender signs.

    :class:`SchemaError` if ``deliveryInformation`` has already been replaced by its decrypted
    object: the signature covers the encrypted string, which is then gone.
    """
    if not isinstance(metadata.delivery_information, str):
        raise SchemaError(
            "the metadata signature covers the encrypted deliveryInformation string; this envelope "
            "carries the decrypted object, so its signature cannot be checked"
        )
    return stringify(metadata.unsigned_json())


def envelope_id(envelope: EncryptionEnvelop) -> str:
    """The hash the envelope carries (``encryptedMessageHash`` or ``messageHash``): the key a
    receiver acknowledges the message by."""
    metadata = envelope.metadata
    digest = metadata.encrypted_message_hash or metadata.message_hash
    assert digest is not None  # EnvelopeMetadata guarantees exactly one
    return digest


def open_delivery_information(
    envelope: EncryptionEnvelop, ds_encryption_key_pair: EncryptionKeyPair
) -> DeliveryInformation:
    """Delivery-service side: decrypt ``metadata.deliveryInformation`` with the DS's key.

    An already-decrypted object is returned as is. :class:`DecryptionError` if it was not
    encrypted to this DS; :class:`SchemaError`/:class:`EncodingError` if it is malformed.
    """
    info = envelope.metadata.delivery_information
    if isinstance(info, DeliveryInformation):
        return info
    payload = EncryptedPayload.from_wire(info, what="metadata.deliveryInformation")
    plaintext = decrypt_asymmetric(ds_encryption_key_pair, payload)
    return DeliveryInformation.from_json(parse_json(plaintext, what="decrypted deliveryInformation"))


def verify_envelope(envelope: EncryptionEnvelop, sender_public_signing_key: str) -> None:
    """Delivery-service side: check what can be checked without the receiver's key.

    * the metadata signature, against the sender's public signing key (from the profile of the
      ``from`` name) — this is what stops a spoofed sender;
    * ``encryptedMessageHash`` against the envelope's message, when the envelope carries it (the
      source form's plaintext ``messageHash`` can only be checked by the receiver).

    Raises :class:`SignatureError` naming what failed; returns ``None`` when all is well.
    """
    try:
        payload = metadata_signature_payload(envelope.metadata)
    except SchemaError as exc:
        raise SignatureError(exc.message) from None
    if not verify(sender_public_signing_key, payload, envelope.metadata.signature):
        raise SignatureError("envelope metadata signature does not verify with the sender's signing key")
    expected = envelope.metadata.encrypted_message_hash
    if expected is not None and encrypted_message_hash(envelope.message) != expected:
        raise SignatureError("encryptedMessageHash does not match the envelope's message")


def open_envelope(
    envelope: EncryptionEnvelop,
    receiver_encryption_key_pair: EncryptionKeyPair,
    sender_public_signing_key: str,
) -> Message:
    """Receiver side: decrypt the message and check everything the receiver can.

    * when ``deliveryInformation`` is still the encrypted string: the metadata signature and
      ``encryptedMessageHash`` (:func:`verify_envelope`); when a DS has replaced it with the
      decrypted object: ``encryptedMessageHash`` and that its ``from``/``to`` match the message's;
    * the message's own signature, against ``sender_public_signing_key``;
    * ``messageHash`` against the decrypted message (source form).

    :class:`SignatureError` naming the failed check; :class:`DecryptionError` if the message was
    not encrypted to this receiver; :class:`SchemaError` if the plaintext is not a valid Message.
    """
    info = envelope.metadata.delivery_information
    if isinstance(info, str):
        verify_envelope(envelope, sender_public_signing_key)
    elif envelope.metadata.encrypted_message_hash is not None and (
        encrypted_message_hash(envelope.message) != envelope.metadata.encrypted_message_hash
    ):
        raise SignatureError("encryptedMessageHash does not match the envelope's message")

    payload = EncryptedPayload.from_wire(envelope.message, what="envelope message")
    plaintext = decrypt_asymmetric(receiver_encryption_key_pair, payload)
    message = Message.from_json(parse_json(plaintext, what="decrypted message"))

    if not verify_message_signature(message, sender_public_signing_key):
        raise SignatureError("message signature does not verify with the sender's signing key")
    expected = envelope.metadata.message_hash
    if expected is not None and message_hash(message) != expected:
        raise SignatureError("messageHash does not match the decrypted message")
    if isinstance(info, DeliveryInformation) and not (
        _same_name(info.from_, message.metadata.from_) and _same_name(info.to, message.metadata.to)
    ):
        raise SignatureError("deliveryInformation does not name the message's sender and receiver")
    return message


def _same_name(a: str, b: str) -> bool:
    try:
        return normalize_name(a) == normalize_name(b)
    except EncodingError:
        return a == b
