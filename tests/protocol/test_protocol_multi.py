"""ensign.protocol.multi against specs/vectors/multi.json (an independent writer), and tampering."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from ensign.errors import DecryptionError, EncodingError, SchemaError, SignatureError
from ensign.protocol.crypto import encryption_key_pair_from_seed, signing_key_pair_from_seed
from ensign.protocol.encoding import hex_to_bytes
from ensign.protocol.models import Message
from ensign.protocol.multi import (
    MultiCopy,
    MultiEnvelope,
    build_multi_envelope,
    copy_for,
    create_multi_message,
    deterministic_bytes,
    multi_signature_payload,
    open_copy,
    open_multi_delivery_information,
    recipients_of,
    verify_multi_envelope,
)

VECTOR: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[2] / "specs" / "vectors" / "multi.json").read_text(encoding="utf-8")
)
SENDER = signing_key_pair_from_seed(hex_to_bytes(VECTOR["senderSigningSeed"]))
DS = encryption_key_pair_from_seed(hex_to_bytes(VECTOR["deliveryServiceEncryptionSeed"]))
RECEIVERS = [encryption_key_pair_from_seed(hex_to_bytes(r["encryptionSeed"])) for r in VECTOR["receivers"]]


def test_the_envelope_is_built_byte_for_byte_as_the_vector() -> None:
    message = Message.from_json(VECTOR["message"])
    envelope = build_multi_envelope(
        message,
        SENDER.secret_key,
        {r["name"]: key.public_key for r, key in zip(VECTOR["receivers"], RECEIVERS)},
        DS.public_key,
        random_bytes=deterministic_bytes(VECTOR["randomSeed"].encode("ascii")),
    )
    assert envelope.to_json() == VECTOR["envelope"]
    assert multi_signature_payload(envelope) == VECTOR["signaturePayload"]


def test_the_delivery_service_opens_and_verifies_the_vector() -> None:
    envelope = MultiEnvelope.from_json(VECTOR["envelope"])
    info = open_multi_delivery_information(envelope, DS)
    assert info.to_json() == VECTOR["deliveryInformation"]
    verify_multi_envelope(envelope, SENDER.public_key)
    assert [copy_for(envelope, info, i, None).to_json() for i in range(3)] == VECTOR["copies"]


@pytest.mark.parametrize("index", [0, 1, 2])
def test_each_receiver_opens_its_copy_of_the_vector(index: int) -> None:
    message = open_copy(MultiCopy.from_json(VECTOR["copies"][index]), RECEIVERS[index], SENDER.public_key)
    assert message.to_json() == VECTOR["message"]
    assert recipients_of(message) == tuple(r["name"] for r in VECTOR["receivers"])


def test_a_receiver_cannot_open_another_receivers_copy() -> None:
    with pytest.raises(DecryptionError):
        open_copy(MultiCopy.from_json(VECTOR["copies"][0]), RECEIVERS[1], SENDER.public_key)


def _flip(wire: str, field: str) -> str:
    """The encrypted payload ``wire`` with one character of ``field`` changed."""
    obj = json.loads(wire)
    value = obj[field]
    i = 10
    obj[field] = value[:i] + ("A" if value[i] != "A" else "B") + value[i + 1 :]
    return json.dumps(obj, separators=(",", ":"), sort_keys=True)


def _tampered(change: Any) -> dict[str, Any]:
    raw = copy.deepcopy(VECTOR["envelope"])
    change(raw)
    return raw


@pytest.mark.parametrize(
    "change",
    [
        lambda e: e["metadata"]["keys"].__setitem__(1, _flip(e["metadata"]["keys"][1], "ciphertext")),
        lambda e: e["metadata"]["keys"].reverse(),
        lambda e: e["metadata"]["keys"].pop(),
        lambda e: e["metadata"]["keys"].append(e["metadata"]["keys"][0]),
        lambda e: e.__setitem__("message", _flip(e["message"], "ciphertext")),
        lambda e: e["metadata"].__setitem__("deliveryInformation", _flip(e["metadata"]["deliveryInformation"], "ciphertext")),
        lambda e: e["metadata"].__setitem__("encryptedMessageHash", "0x" + "0" * 64),
    ],
    ids=["wrapped-key", "keys-reordered", "key-dropped", "key-added", "ciphertext", "recipient-list", "hash"],
)
def test_tampering_with_any_part_is_refused_by_the_delivery_service(change: Any) -> None:
    envelope = MultiEnvelope.from_json(_tampered(change))
    with pytest.raises((SignatureError, DecryptionError, SchemaError)):
        open_multi_delivery_information(envelope, DS)
        verify_multi_envelope(envelope, SENDER.public_key)


def test_a_copy_with_a_tampered_key_or_message_is_refused_by_the_receiver() -> None:
    tampered_key = copy.deepcopy(VECTOR["copies"][0])
    tampered_key["metadata"]["key"] = _flip(tampered_key["metadata"]["key"], "ciphertext")
    with pytest.raises(DecryptionError):
        open_copy(MultiCopy.from_json(tampered_key), RECEIVERS[0], SENDER.public_key)
    tampered_message = copy.deepcopy(VECTOR["copies"][0])
    tampered_message["message"] = _flip(tampered_message["message"], "ciphertext")
    with pytest.raises(SignatureError, match="encryptedMessageHash"):
        open_copy(MultiCopy.from_json(tampered_message), RECEIVERS[0], SENDER.public_key)


def test_a_copy_readdressed_to_someone_the_message_does_not_list_is_refused() -> None:
    readdressed = copy.deepcopy(VECTOR["copies"][0])
    readdressed["metadata"]["deliveryInformation"]["to"] = "mallory.user.ensign.eth"
    with pytest.raises(SignatureError, match="does not list the receiver"):
        open_copy(MultiCopy.from_json(readdressed), RECEIVERS[0], SENDER.public_key)


def test_a_copy_naming_another_sender_is_refused() -> None:
    spoofed = copy.deepcopy(VECTOR["copies"][0])
    spoofed["metadata"]["deliveryInformation"]["from"] = "mallory.user.ensign.eth"
    with pytest.raises(SignatureError, match="sender"):
        open_copy(MultiCopy.from_json(spoofed), RECEIVERS[0], SENDER.public_key)


def test_a_message_signed_by_someone_else_is_refused() -> None:
    other = signing_key_pair_from_seed(bytes([99]) * 32)
    with pytest.raises(SignatureError, match="message signature"):
        open_copy(MultiCopy.from_json(VECTOR["copies"][0]), RECEIVERS[0], other.public_key)


def test_a_receiver_named_twice_is_refused_when_building() -> None:
    with pytest.raises(SchemaError, match="twice"):
        create_multi_message(["a.eth", "A.eth"], "me.eth", "hi", SENDER.secret_key)


def test_a_single_dm3_message_is_not_a_multi_recipient_message() -> None:
    from ensign.protocol.message import create_message

    single = create_message("a.eth", "me.eth", "hi", SENDER.secret_key)
    with pytest.raises(SchemaError, match="JSON array"):
        recipients_of(single)


def test_the_wrong_version_is_refused_by_the_schema() -> None:
    raw = _tampered(lambda e: e["metadata"].__setitem__("version", "v1"))
    with pytest.raises(SchemaError, match="metadata.version"):
        MultiEnvelope.from_json(raw)


def test_an_envelope_may_carry_some_of_the_listed_receivers_but_no_other() -> None:
    message = create_multi_message(["a.eth", "b.eth"], "me.eth", "hi", SENDER.secret_key)
    part = build_multi_envelope(message, SENDER.secret_key, {"b.eth": RECEIVERS[1].public_key}, DS.public_key)
    info = open_multi_delivery_information(part, DS)
    assert info.to == ("b.eth",)
    assert open_copy(copy_for(part, info, 0, None), RECEIVERS[1], SENDER.public_key) == message
    with pytest.raises(SchemaError, match="does not list c.eth"):
        build_multi_envelope(message, SENDER.secret_key, {"c.eth": RECEIVERS[0].public_key}, DS.public_key)
    with pytest.raises(EncodingError):
        build_multi_envelope(message, SENDER.secret_key, {"a.eth": "bad"}, DS.public_key)
