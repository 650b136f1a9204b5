"""The forwarding note: the next service reads the sender's own delivery information, and the note
binds one envelope, one forwarder and one next service."""

from __future__ import annotations

import pytest

from ensign.errors import DecryptionError, SchemaError, SignatureError
from ensign.protocol.keys import random_encryption_key_pair, random_signing_key_pair
from ensign.protocol.envelope import build_envelope, verify_envelope
from ensign.protocol.forwarding import (
    Forwarding,
    build_forwarding,
    build_multi_forwarding,
    open_forwarded_delivery_information,
    open_forwarded_multi_delivery_information,
    verify_forwarding,
)
from ensign.protocol.message import create_message
from ensign.protocol.models import EncryptionEnvelop
from ensign.protocol.multi import MultiEnvelope, build_multi_envelope, create_multi_message, pick_recipients, verify_multi_envelope


def _envelope(sender_signing: str, receiver_public: str, ds_public: str, text: str = "hi") -> EncryptionEnvelop:
    message = create_message("bob.eth", "alice.eth", text, sender_signing, timestamp=1_700_000_000_000)
    return build_envelope(message, sender_signing, receiver_public, ds_public)


@pytest.fixture
def parties() -> dict[str, object]:
    return {
        "sender": random_signing_key_pair(),
        "receiver": random_encryption_key_pair(),
        "ds1_enc": random_encryption_key_pair(),
        "ds1_sig": random_signing_key_pair(),
        "ds2_enc": random_encryption_key_pair(),
    }


def _note(p: dict[str, object], envelope: EncryptionEnvelop, *, signing: str | None = None) -> Forwarding:
    return build_forwarding(
        envelope,
        p["ds1_enc"],  # type: ignore[arg-type]
        signing or p["ds1_sig"].secret_key,  # type: ignore[attr-defined]
        path=("DS1.eth",),
        to="ds2.eth",
        to_public_encryption_key=p["ds2_enc"].public_key,  # type: ignore[attr-defined]
    )


def test_the_next_service_opens_the_senders_delivery_information_and_the_sender_still_verifies(parties) -> None:
    p = parties
    envelope = _envelope(p["sender"].secret_key, p["receiver"].public_key, p["ds1_enc"].public_key)
    note = Forwarding.from_json(_note(p, envelope).to_json())
    assert (note.path, note.to, note.forwarder) == (("ds1.eth",), "ds2.eth", "ds1.eth")

    verify_forwarding(note, envelope, p["ds1_sig"].public_key)
    info = open_forwarded_delivery_information(envelope, note, p["ds2_enc"])
    assert (info.to, info.from_) == ("bob.eth", "alice.eth")
    # The envelope is the sender's, unchanged: its metadata signature still verifies.
    verify_envelope(envelope, p["sender"].public_key)


def test_only_the_next_service_can_open_the_delivery_key(parties) -> None:
    p = parties
    envelope = _envelope(p["sender"].secret_key, p["receiver"].public_key, p["ds1_enc"].public_key)
    with pytest.raises(DecryptionError):
        open_forwarded_delivery_information(envelope, _note(p, envelope), random_encryption_key_pair())


def test_the_key_of_one_envelope_does_not_open_another(parties) -> None:
    p = parties
    first = _envelope(p["sender"].secret_key, p["receiver"].public_key, p["ds1_enc"].public_key, "one")
    second = _envelope(p["sender"].secret_key, p["receiver"].public_key, p["ds1_enc"].public_key, "two")
    note = _note(p, first)
    with pytest.raises(DecryptionError):
        open_forwarded_delivery_information(second, note, p["ds2_enc"])
    with pytest.raises(SignatureError, match="another envelope"):
        verify_forwarding(note, second, p["ds1_sig"].public_key)


def test_a_note_not_signed_by_the_forwarder_or_changed_after_signing_is_refused(parties) -> None:
    p = parties
    envelope = _envelope(p["sender"].secret_key, p["receiver"].public_key, p["ds1_enc"].public_key)
    forged = _note(p, envelope, signing=random_signing_key_pair().secret_key)
    with pytest.raises(SignatureError, match="not signed"):
        verify_forwarding(forged, envelope, p["ds1_sig"].public_key)
    changed = Forwarding.from_json({**_note(p, envelope).to_json(), "path": ["ds0.eth"]})
    with pytest.raises(SignatureError, match="not signed"):
        verify_forwarding(changed, envelope, p["ds1_sig"].public_key)


def test_a_service_can_only_forward_what_was_encrypted_to_it(parties) -> None:
    p = parties
    envelope = _envelope(p["sender"].secret_key, p["receiver"].public_key, random_encryption_key_pair().public_key)
    with pytest.raises(DecryptionError):
        _note(p, envelope)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"extra": 1}, "unknown field"),
        ({"signature": None}, "signature must be"),
        ({"version": "v2"}, "version"),
        ({"path": []}, "path must be"),
        ({"path": ["a.eth"] * 9}, "path must be"),
        ({"path": [1]}, "path must be"),
    ],
)
def test_malformed_notes_are_refused_with_what_is_wrong(parties, change: dict[str, object], expected: str) -> None:
    p = parties
    envelope = _envelope(p["sender"].secret_key, p["receiver"].public_key, p["ds1_enc"].public_key)
    obj = {**_note(p, envelope).to_json(), **change}
    with pytest.raises(SchemaError, match=expected):
        Forwarding.from_json(obj)
    with pytest.raises(SchemaError, match="missing field"):
        Forwarding.from_json({k: v for k, v in _note(p, envelope).to_json().items() if k != "to"})


# --- multi-recipient envelopes -------------------------------------------------------------------

_NAMES = ("bob.eth", "carol.eth", "dave.eth")


def _multi(p: dict[str, object]) -> MultiEnvelope:
    sender = p["sender"].secret_key  # type: ignore[attr-defined]
    message = create_multi_message(_NAMES, "alice.eth", "hi all", sender, timestamp=1_700_000_000_000)
    keys = {name: random_encryption_key_pair().public_key for name in _NAMES}
    return build_multi_envelope(message, sender, keys, p["ds1_enc"].public_key)  # type: ignore[attr-defined]


def _multi_note(p: dict[str, object], envelope: MultiEnvelope, recipients: tuple[str, ...] = ("dave.eth",)) -> Forwarding:
    return build_multi_forwarding(
        envelope,
        p["ds1_enc"],  # type: ignore[arg-type]
        p["ds1_sig"].secret_key,  # type: ignore[attr-defined]
        path=("ds1.eth",),
        to="ds2.eth",
        to_public_encryption_key=p["ds2_enc"].public_key,  # type: ignore[attr-defined]
        recipients=recipients,
    )


def test_a_multi_note_names_its_recipients_under_the_signature_and_opens_the_receiver_list(parties) -> None:
    p = parties
    envelope = _multi(p)
    wire = _multi_note(p, envelope, ("carol.eth", "dave.eth")).to_json()
    assert wire["recipients"] == ["carol.eth", "dave.eth"] and wire["envelopeId"] == envelope.encrypted_message_hash
    note = Forwarding.from_json(wire)
    verify_forwarding(note, envelope, p["ds1_sig"].public_key)
    info = open_forwarded_multi_delivery_information(envelope, note, p["ds2_enc"])
    assert (info.to, info.from_) == (_NAMES, "alice.eth")
    assert pick_recipients(info, note.recipients or ()) == (1, 2)
    verify_multi_envelope(envelope, p["sender"].public_key)  # handed on unchanged
    # The recipients are signed: adding one (or any change) breaks the note.
    widened = Forwarding.from_json({**wire, "recipients": ["bob.eth", "carol.eth", "dave.eth"]})
    with pytest.raises(SignatureError, match="not signed"):
        verify_forwarding(widened, envelope, p["ds1_sig"].public_key)
    # So is their absence: a multi note cannot pass as a note for every receiver.
    dropped = Forwarding.from_json({k: v for k, v in wire.items() if k != "recipients"})
    with pytest.raises(SignatureError, match="not signed"):
        verify_forwarding(dropped, envelope, p["ds1_sig"].public_key)
    # A dm3 envelope's note carries no recipients field at all (its wire form is unchanged).
    single = _envelope(p["sender"].secret_key, p["receiver"].public_key, p["ds1_enc"].public_key)
    assert "recipients" not in _note(p, single).to_json()


def test_a_multi_note_is_bound_to_its_envelope(parties) -> None:
    p = parties
    note = _multi_note(p, _multi(p))
    with pytest.raises(SignatureError, match="another envelope"):
        verify_forwarding(note, _multi(p), p["ds1_sig"].public_key)


def test_recipients_must_be_in_the_receiver_list_once(parties) -> None:
    p = parties
    envelope = _multi(p)
    info = open_forwarded_multi_delivery_information(envelope, _multi_note(p, envelope), p["ds2_enc"])
    with pytest.raises(SchemaError, match="does not name mallory.eth"):
        pick_recipients(info, ["dave.eth", "mallory.eth"])
    with pytest.raises(SchemaError, match="twice"):
        pick_recipients(info, ["dave.eth", "dave.eth"])
    with pytest.raises(SchemaError, match="at least one"):
        _multi_note(p, envelope, ())


@pytest.mark.parametrize("recipients", [[], "dave.eth", [""], [1]])
def test_malformed_recipients_are_refused(parties, recipients: object) -> None:
    p = parties
    obj = {**_multi_note(p, _multi(p)).to_json(), "recipients": recipients}
    with pytest.raises(SchemaError, match="recipients must be"):
        Forwarding.from_json(obj)
