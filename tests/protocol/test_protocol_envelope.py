"""Messages, envelopes in both forms, and postmarks: round trips, tampering, spoofing."""

from __future__ import annotations

import dataclasses
import json

import pytest

from ensign.errors import DecryptionError, ProtocolError, SchemaError, SignatureError
from ensign.protocol.canonical import parse_json, stringify
from ensign.protocol.crypto import EncryptedPayload, decrypt_asymmetric, encrypt_asymmetric, sign, verify
from ensign.protocol.encoding import b64encode, eip191_hash, sha256_hex
from ensign.protocol.envelope import (
    ENVELOPE_FORMS,
    build_envelope,
    encrypted_message_hash,
    envelope_id,
    metadata_signature_payload,
    open_delivery_information,
    open_envelope,
    verify_envelope,
)
from ensign.protocol.keys import ProfileKeys, profile_keys_from_storage_key
from ensign.protocol.message import (
    create_message,
    message_hash,
    message_signature_payload,
    verify_message_signature,
)
from ensign.protocol.models import Attachment, DeliveryInformation, EncryptionEnvelop, Message
from ensign.protocol.postmark import (
    create_postmark,
    open_postmark,
    postmark_message_hash,
    postmark_signature_payload,
    verify_postmark,
)


def _keys(label: str) -> ProfileKeys:
    """Deterministic keys per party: the storage key is 32 bytes derived from the label."""
    return profile_keys_from_storage_key(b64encode(sha256_hex(label).encode()[2:34]))


ALICE, BOB, DS, MALLORY = _keys("alice"), _keys("bob"), _keys("ds"), _keys("mallory")
TS = 1_700_000_000_000


def _message(text: str = "hello ✓ \u2028 \"q\"", **kw) -> Message:
    return create_message("bob.eth", "alice.eth", text, ALICE.signing.secret_key, timestamp=TS, **kw)


def _envelope(form: str = "npm", message: Message | None = None) -> EncryptionEnvelop:
    return build_envelope(
        message or _message(), ALICE.signing.secret_key, BOB.encryption.public_key, DS.encryption.public_key,
        form=form,
    )


# --- messages ------------------------------------------------------------------------------------


def test_message_signature_covers_canonical_json_without_signature():
    message = _message()
    payload = message_signature_payload(message)
    assert payload == stringify({k: v for k, v in message.to_json().items() if k != "signature"})
    assert '"signature"' not in payload and "null" not in payload
    assert verify(ALICE.signing.public_key, payload, message.signature)


def test_message_fields_and_defaults():
    message = _message()
    assert message.to_json()["metadata"] == {"to": "bob.eth", "from": "alice.eth", "timestamp": TS, "type": "NEW"}
    assert "attachments" not in message.to_json()
    delete = create_message("bob.eth", "alice.eth", None, ALICE.signing.secret_key, type="DELETE_REQUEST",
                            reference_message_hash="0x" + "12" * 32)
    assert "message" not in delete.to_json()
    assert verify_message_signature(delete, ALICE.signing.public_key)
    reaction = _message("👍", type="REACTION", attachments=[])
    assert reaction.to_json()["attachments"] == []
    with_file = _message(attachments=[Attachment(data="data:,x", name="x.txt")])
    assert with_file.to_json()["attachments"] == [{"data": "data:,x", "name": "x.txt"}]


def test_message_refuses_bad_type_and_timestamp():
    with pytest.raises(SchemaError):
        _message(type="READ_RECEIPT")
    with pytest.raises(SchemaError):
        create_message("b", "a", "x", ALICE.signing.secret_key, timestamp=1.5)  # type: ignore[arg-type]


def test_verify_message_signature_checks_key_content_and_sender():
    message = _message()
    assert verify_message_signature(message, ALICE.signing.public_key, "Alice.ETH")
    assert not verify_message_signature(message, ALICE.signing.public_key, "mallory.eth")
    assert not verify_message_signature(message, MALLORY.signing.public_key)
    edited = dataclasses.replace(message, message="changed")
    assert not verify_message_signature(edited, ALICE.signing.public_key)
    later = dataclasses.replace(message, metadata=dataclasses.replace(message.metadata, timestamp=TS + 1))
    assert not verify_message_signature(later, ALICE.signing.public_key)


def test_message_hash_is_sha256_of_signed_canonical_json():
    message = _message()
    assert message_hash(message) == sha256_hex(stringify(message.to_json()))


# --- envelopes: both forms -----------------------------------------------------------------------


def test_npm_form_fields_and_hash():
    envelope = _envelope("npm")
    metadata = envelope.to_json()["metadata"]
    assert set(metadata) == {"deliveryInformation", "encryptedMessageHash", "encryptionScheme", "signature", "version"}
    assert metadata["version"] == "v1" and metadata["encryptionScheme"] == "x25519-chacha20-poly1305"
    # The hash is over the quoted JSON string literal of the ciphertext text.
    assert metadata["encryptedMessageHash"] == sha256_hex(json.dumps(envelope.message, separators=(",", ":")))
    assert envelope_id(envelope) == metadata["encryptedMessageHash"]
    assert metadata_signature_payload(envelope.metadata) == stringify(
        {k: metadata[k] for k in ("deliveryInformation", "encryptedMessageHash", "encryptionScheme", "version")}
    )


def test_source_form_fields_and_hash():
    message = _message()
    envelope = _envelope("source", message)
    metadata = envelope.to_json()["metadata"]
    assert set(metadata) == {"deliveryInformation", "messageHash", "encryptionScheme", "signature", "version"}
    assert metadata["messageHash"] == message_hash(message)
    assert envelope_id(envelope) == metadata["messageHash"]
    assert metadata_signature_payload(envelope.metadata) == stringify(
        {k: metadata[k] for k in ("deliveryInformation", "encryptionScheme", "messageHash", "version")}
    )


def test_unknown_form_is_refused():
    with pytest.raises(SchemaError, match="form"):
        _envelope("json")


@pytest.mark.parametrize("form", ENVELOPE_FORMS)
def test_round_trip_through_the_wire(form):
    message = _message()
    envelope = _envelope(form, message)
    wire = json.dumps(envelope.to_json())  # what a client POSTs (plain JSON.stringify)
    received = EncryptionEnvelop.from_json(json.loads(wire))
    assert received == envelope

    verify_envelope(received, ALICE.signing.public_key)  # the DS's check
    assert open_delivery_information(received, DS.encryption) == DeliveryInformation("bob.eth", "alice.eth")
    assert open_envelope(received, BOB.encryption, ALICE.signing.public_key) == message


@pytest.mark.parametrize("form", ENVELOPE_FORMS)
def test_envelope_parts_are_encrypted_to_the_right_parties(form):
    envelope = _envelope(form)
    message_payload = EncryptedPayload.from_wire(envelope.message)
    info_payload = EncryptedPayload.from_wire(envelope.metadata.delivery_information)
    assert json.loads(decrypt_asymmetric(BOB.encryption, message_payload))["message"].startswith("hello")
    with pytest.raises(DecryptionError):
        decrypt_asymmetric(DS.encryption, message_payload)  # the DS cannot read the message
    with pytest.raises(DecryptionError):
        decrypt_asymmetric(BOB.encryption, info_payload)
    with pytest.raises(DecryptionError):
        open_delivery_information(envelope, BOB.encryption)
    with pytest.raises(DecryptionError):
        open_envelope(envelope, DS.encryption, ALICE.signing.public_key)


@pytest.mark.parametrize("form", ENVELOPE_FORMS)
def test_spoofed_sender_is_detected(form):
    """Mallory signs with her own key but names alice.eth as sender: the DS checks against Alice's
    published key and refuses; so does the receiver."""
    forged_message = create_message("bob.eth", "alice.eth", "I am Alice", MALLORY.signing.secret_key, timestamp=TS)
    forged = build_envelope(forged_message, MALLORY.signing.secret_key, BOB.encryption.public_key,
                            DS.encryption.public_key, form=form)
    assert open_delivery_information(forged, DS.encryption).from_ == "alice.eth"
    with pytest.raises(SignatureError, match="metadata signature"):
        verify_envelope(forged, ALICE.signing.public_key)
    with pytest.raises(SignatureError):
        open_envelope(forged, BOB.encryption, ALICE.signing.public_key)


def test_metadata_signed_by_sender_but_message_signed_by_someone_else():
    forged_message = create_message("bob.eth", "alice.eth", "x", MALLORY.signing.secret_key, timestamp=TS)
    envelope = build_envelope(forged_message, ALICE.signing.secret_key, BOB.encryption.public_key,
                              DS.encryption.public_key)
    verify_envelope(envelope, ALICE.signing.public_key)
    with pytest.raises(SignatureError, match="message signature"):
        open_envelope(envelope, BOB.encryption, ALICE.signing.public_key)


def _replace_metadata(envelope: EncryptionEnvelop, **changes) -> EncryptionEnvelop:
    return dataclasses.replace(envelope, metadata=dataclasses.replace(envelope.metadata, **changes))


@pytest.mark.parametrize("form", ENVELOPE_FORMS)
def test_tampering_is_detected(form):
    envelope, other = _envelope(form), _envelope(form, _message("other"))
    swapped_message = dataclasses.replace(envelope, message=other.message)
    swapped_info = _replace_metadata(envelope, delivery_information=other.metadata.delivery_information)
    flipped = _replace_metadata(envelope, signature=other.metadata.signature)
    for tampered in (swapped_info, flipped):
        with pytest.raises(SignatureError):
            verify_envelope(tampered, ALICE.signing.public_key)
    if form == "npm":
        with pytest.raises(SignatureError, match="encryptedMessageHash"):
            verify_envelope(swapped_message, ALICE.signing.public_key)
    else:  # the DS cannot see the swap; the receiver can
        verify_envelope(swapped_message, ALICE.signing.public_key)
        with pytest.raises(SignatureError, match="messageHash"):
            open_envelope(swapped_message, BOB.encryption, ALICE.signing.public_key)
    for tampered in (swapped_message, swapped_info, flipped):
        with pytest.raises(ProtocolError):
            open_envelope(tampered, BOB.encryption, ALICE.signing.public_key)


def test_stored_envelope_with_decrypted_delivery_information():
    """A dm3 DS replaces deliveryInformation with the decrypted object: the metadata signature is
    then unverifiable, but the receiver can still check the hash, the message and the names."""
    envelope = _envelope("npm")
    stored = _replace_metadata(envelope, delivery_information=open_delivery_information(envelope, DS.encryption))
    assert EncryptionEnvelop.from_json(stored.to_json()) == stored
    with pytest.raises(SchemaError, match="decrypted object"):
        metadata_signature_payload(stored.metadata)
    with pytest.raises(SignatureError, match="cannot be checked"):
        verify_envelope(stored, ALICE.signing.public_key)
    assert open_envelope(stored, BOB.encryption, ALICE.signing.public_key).message.startswith("hello")
    relabelled = _replace_metadata(envelope, delivery_information=DeliveryInformation("bob.eth", "carol.eth"))
    with pytest.raises(SignatureError, match="deliveryInformation"):
        open_envelope(relabelled, BOB.encryption, ALICE.signing.public_key)
    swapped = dataclasses.replace(stored, message=_envelope("npm").message)
    with pytest.raises(SignatureError, match="encryptedMessageHash"):
        open_envelope(swapped, BOB.encryption, ALICE.signing.public_key)


def test_encrypted_message_hash_of_a_string_literal():
    assert encrypted_message_hash('{"a":"b"}') == sha256_hex('"{\\"a\\":\\"b\\"}"')


def test_garbage_plaintext_inside_a_valid_envelope_is_schema_error():
    not_a_message = encrypt_asymmetric(BOB.encryption.public_key, '{"hello":1}').to_wire()
    tampered = dataclasses.replace(_envelope("npm"), message=not_a_message)
    tampered = _replace_metadata(tampered, encrypted_message_hash=encrypted_message_hash(not_a_message))
    # Re-sign, so that the metadata is genuine and only the plaintext is wrong.
    tampered = _replace_metadata(
        tampered, signature=sign(ALICE.signing.secret_key, metadata_signature_payload(tampered.metadata))
    )
    verify_envelope(tampered, ALICE.signing.public_key)
    with pytest.raises(SchemaError, match="Message"):
        open_envelope(tampered, BOB.encryption, ALICE.signing.public_key)


# --- postmarks -----------------------------------------------------------------------------------


def test_postmark_round_trip():
    envelope = _envelope()
    wire = create_postmark(envelope.message, DS.signing.secret_key, BOB.encryption.public_key, TS + 5)
    assert list(json.loads(wire)) == ["ciphertext", "ephemPublicKey", "nonce"]
    postmark = open_postmark(wire, BOB.encryption)
    assert postmark.incomming_timestamp == TS + 5
    assert postmark.message_hash == eip191_hash(stringify(envelope.message))
    assert postmark.message_hash == postmark_message_hash(envelope.message)
    assert verify_postmark(postmark, envelope.message, DS.signing.public_key)
    # The signed string is the 0x-hex sha256 text of the canonical {incommingTimestamp, messageHash}.
    payload = postmark_signature_payload(postmark.message_hash, postmark.incomming_timestamp)
    assert payload == sha256_hex(f'{{"incommingTimestamp":{TS + 5},"messageHash":"{postmark.message_hash}"}}')
    assert verify(DS.signing.public_key, payload, postmark.signature)
    stamped = dataclasses.replace(envelope, postmark=wire)
    assert EncryptionEnvelop.from_json(stamped.to_json()).postmark == wire


def test_postmark_plaintext_is_canonical_json():
    wire = create_postmark("m", DS.signing.secret_key, BOB.encryption.public_key, 7)
    plain = decrypt_asymmetric(BOB.encryption, EncryptedPayload.from_wire(wire))
    assert list(parse_json(plain)) == ["incommingTimestamp", "messageHash", "signature"]
    assert plain == stringify(parse_json(plain))


def test_postmark_tamper_and_wrong_parties():
    envelope, other = _envelope(), _envelope(message=_message("other"))
    postmark = open_postmark(create_postmark(envelope.message, DS.signing.secret_key, BOB.encryption.public_key, TS),
                             BOB.encryption)
    assert not verify_postmark(postmark, other.message, DS.signing.public_key)
    assert not verify_postmark(postmark, envelope.message, MALLORY.signing.public_key)
    later = dataclasses.replace(postmark, incomming_timestamp=TS + 1)
    assert not verify_postmark(later, envelope.message, DS.signing.public_key)
    wire = create_postmark(envelope.message, DS.signing.secret_key, BOB.encryption.public_key, TS)
    with pytest.raises(DecryptionError):
        open_postmark(wire, ALICE.encryption)
    with pytest.raises(SchemaError):
        create_postmark(envelope.message, DS.signing.secret_key, BOB.encryption.public_key, 1.0)  # type: ignore[arg-type]
