"""Wire models: round trips, dm3 field names, refusals that name the field."""

from __future__ import annotations

import copy

import pytest

from ensign.errors import SchemaError
from ensign.protocol.encoding import b64encode
from ensign.protocol.keys import random_encryption_key_pair, random_signing_key_pair
from ensign.protocol.models import (
    DeliveryInformation,
    DeliveryServiceProfile,
    EncryptionEnvelop,
    EnvelopeMetadata,
    Message,
    Postmark,
    SignedUserProfile,
    UserProfile,
)

ENC = random_encryption_key_pair().public_key
SIG = random_signing_key_pair().public_key
ED_SIG = b64encode(bytes(range(64)))
HASH = "0x" + "ab" * 32

PROFILE = {"publicEncryptionKey": ENC, "publicSigningKey": SIG, "deliveryServices": ["ds.eth", "backup.eth"]}
SIGNED = {"profile": PROFILE, "signature": "0x" + "11" * 65}
DS_PROFILE = {"publicEncryptionKey": ENC, "publicSigningKey": SIG, "url": "https://ds.example"}
MESSAGE = {
    "message": "hi é",
    "metadata": {
        "to": "bob.eth",
        "from": "alice.eth",
        "timestamp": 1_700_000_000_000,
        "type": "REPLY",
        "referenceMessageHash": HASH,
        "replyDeliveryInstruction": "x",
    },
    "attachments": [{"name": "a.txt", "data": "data:text/plain,hi"}, {"data": "d"}],
    "signature": ED_SIG,
}
ENVELOPE = {
    "message": '{"ciphertext":"AA==","nonce":"0x00"}',
    "metadata": {
        "version": "v1",
        "encryptionScheme": "x25519-chacha20-poly1305",
        "deliveryInformation": "encrypted",
        "encryptedMessageHash": HASH,
        "signature": ED_SIG,
    },
    "postmark": "{}",
}
POSTMARK = {"messageHash": HASH, "incommingTimestamp": 1_700_000_000_123, "signature": ED_SIG}


@pytest.mark.parametrize(
    ("model", "obj"),
    [
        (UserProfile, PROFILE),
        (SignedUserProfile, SIGNED),
        (DeliveryServiceProfile, DS_PROFILE),
        (Message, MESSAGE),
        (EncryptionEnvelop, ENVELOPE),
        (Postmark, POSTMARK),
        (DeliveryInformation, {"to": "b", "from": "a", "deliveryInstruction": "i"}),
    ],
    ids=lambda x: x.__name__ if isinstance(x, type) else "",
)
def test_round_trip_is_exact(model, obj):
    assert model.from_json(copy.deepcopy(obj)).to_json() == obj


def test_python_names_and_wire_names():
    message = Message.from_json(MESSAGE)
    assert message.metadata.from_ == "alice.eth"
    assert message.metadata.reference_message_hash == HASH
    assert message.attachments is not None and message.attachments[1].name is None
    postmark = Postmark.from_json(POSTMARK)
    assert postmark.incomming_timestamp == POSTMARK["incommingTimestamp"]
    assert "incommingTimestamp" in postmark.to_json()


def test_absent_optionals_are_omitted_not_null():
    minimal = {"metadata": {"to": "b", "from": "a", "timestamp": 1, "type": "DELETE_REQUEST"}, "signature": ED_SIG}
    loaded = Message.from_json(minimal)
    assert loaded.message is None and loaded.attachments is None
    assert loaded.to_json() == minimal
    assert None not in loaded.to_json()["metadata"].values()


def test_empty_attachments_are_kept():
    obj = {**MESSAGE, "attachments": []}
    assert Message.from_json(obj).to_json()["attachments"] == []


def test_stored_envelope_with_decrypted_delivery_information():
    obj = copy.deepcopy(ENVELOPE)
    obj["metadata"]["deliveryInformation"] = {"to": "bob.eth", "from": "alice.eth"}
    envelope = EncryptionEnvelop.from_json(obj)
    assert envelope.metadata.delivery_information == DeliveryInformation(to="bob.eth", from_="alice.eth")
    assert envelope.to_json() == obj


def _with(obj, path, value):
    out = copy.deepcopy(obj)
    target = out
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return out


_DELETE = object()


@pytest.mark.parametrize(
    ("model", "obj", "path", "value", "field"),
    [
        (UserProfile, PROFILE, ("extra",), 1, "extra"),
        (UserProfile, PROFILE, ("publicEncryptionKey",), b64encode(bytes(31)), "publicEncryptionKey"),
        (UserProfile, PROFILE, ("publicSigningKey",), "not base64", "publicSigningKey"),
        (UserProfile, PROFILE, ("deliveryServices",), "ds.eth", "deliveryServices"),
        (UserProfile, PROFILE, ("deliveryServices",), _DELETE, "deliveryServices"),
        (SignedUserProfile, SIGNED, ("signature",), "0x1234", "signature"),
        (SignedUserProfile, SIGNED, ("profile", "extra"), "x", "profile.extra"),
        (DeliveryServiceProfile, DS_PROFILE, ("url",), None, "url"),
        (Message, MESSAGE, ("metadata", "timestamp"), 1.0, "metadata.timestamp"),
        (Message, MESSAGE, ("metadata", "timestamp"), True, "metadata.timestamp"),
        (Message, MESSAGE, ("metadata", "timestamp"), 2**53, "metadata.timestamp"),
        (Message, MESSAGE, ("metadata", "type"), "READ_RECEIPT", "metadata.type"),
        (Message, MESSAGE, ("metadata", "referenceMessageHash"), None, "metadata.referenceMessageHash"),
        (Message, MESSAGE, ("message",), "\ud800", "message"),
        (Message, MESSAGE, ("signature",), b64encode(bytes(63)), "signature"),
        (Message, MESSAGE, ("attachments", 0, "size"), 1, "attachments[0].size"),
        (EncryptionEnvelop, ENVELOPE, ("metadata", "messageHash"), HASH, "metadata"),
        (EncryptionEnvelop, ENVELOPE, ("metadata", "encryptedMessageHash"), _DELETE, "metadata"),
        (EncryptionEnvelop, ENVELOPE, ("metadata", "encryptedMessageHash"), HASH.upper(), "metadata.encryptedMessageHash"),
        (EncryptionEnvelop, ENVELOPE, ("metadata", "deliveryInformation"), {"to": "b"}, "metadata.deliveryInformation.from"),
        (EncryptionEnvelop, ENVELOPE, ("metadata", "deliveryInformation"), 7, "metadata.deliveryInformation"),
        (EncryptionEnvelop, ENVELOPE, ("id",), "x", "id"),
        (DeliveryInformation, {"to": "b", "from": "a"}, ("from",), _DELETE, "from"),
        (DeliveryInformation, {"to": "b", "from": "a"}, ("from",), 1, "from"),
        (DeliveryInformation, {"to": "b", "from": "a"}, ("deliveryInstruction",), None, "deliveryInstruction"),
        (DeliveryInformation, {"to": "b", "from": "a"}, ("to",), "\udc00", "to"),
        (DeliveryInformation, {"to": "b", "from": "a"}, ("cc",), "c", "cc"),
        (Postmark, POSTMARK, ("incomingTimestamp",), 1, "incomingTimestamp"),
        (Postmark, POSTMARK, ("incommingTimestamp",), -1, "incommingTimestamp"),
    ],
)
def test_refusals_name_the_field(model, obj, path, value, field):
    with pytest.raises(SchemaError) as caught:
        model.from_json(_with(obj, path, value))
    assert field in caught.value.details["fields"], caught.value.message
    assert field in caught.value.message


def test_both_hash_fields_message_says_so():
    with pytest.raises(SchemaError, match="exactly one"):
        EncryptionEnvelop.from_json(_with(ENVELOPE, ("metadata", "messageHash"), HASH))


def test_non_object_input():
    with pytest.raises(SchemaError, match="must be a JSON object"):
        Message.from_json([])  # type: ignore[arg-type]


def test_envelope_metadata_dataclass_also_enforces_one_hash():
    with pytest.raises(SchemaError):
        EnvelopeMetadata(version="v1", delivery_information="x", signature=ED_SIG)
    with pytest.raises(SchemaError):
        EnvelopeMetadata(version="v1", delivery_information="x", signature=ED_SIG, message_hash=HASH,
                         encrypted_message_hash=HASH)


def test_envelope_form():
    npm = EncryptionEnvelop.from_json(ENVELOPE)
    assert npm.metadata.form == "npm"
    source = _with(ENVELOPE, ("metadata", "encryptedMessageHash"), _DELETE)
    source["metadata"]["messageHash"] = HASH
    assert EncryptionEnvelop.from_json(source).metadata.form == "source"
