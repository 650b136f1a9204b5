"""``EncryptionEnvelop.from_json`` loads well-formed envelopes without the schema (the delivery
service loads one per submitted message); it must accept exactly what the schema accepts and give
the same envelope, and every malformed envelope must still get the schema's own error."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from ensign.errors import SchemaError
from ensign.protocol.envelope import build_envelope
from ensign.protocol.keys import random_encryption_key_pair, random_signing_key_pair
from ensign.protocol.message import create_message
from ensign.protocol.models import _ENVELOPE, EncryptionEnvelop, _direct_envelope, _load


def _envelope(form: str) -> dict[str, Any]:
    sender, receiver, ds = random_signing_key_pair(), random_encryption_key_pair(), random_encryption_key_pair()
    message = create_message("bob.eth", "alice.eth", "hello", sender.secret_key, timestamp=1_700_000_000_000)
    return build_envelope(message, sender.secret_key, receiver.public_key, ds.public_key, form=form).to_json()


def _schema(obj: Any) -> EncryptionEnvelop:
    return _load(_ENVELOPE, obj, "EncryptionEnvelop")  # type: ignore[no-any-return]


@pytest.mark.parametrize("form", ["npm", "source"])
def test_well_formed_envelopes_load_directly_as_the_schema_loads_them(form: str) -> None:
    submitted = _envelope(form)
    postmarked = {**submitted, "postmark": '{"ciphertext":"AA==","nonce":"0x00"}'}
    no_scheme = copy.deepcopy(submitted)
    del no_scheme["metadata"]["encryptionScheme"]
    for obj in (submitted, postmarked, no_scheme):
        assert _direct_envelope(obj) is not None
        assert EncryptionEnvelop.from_json(obj) == _schema(obj)


def test_stored_form_with_decrypted_delivery_information_goes_through_the_schema() -> None:
    stored = _envelope("npm")
    stored["metadata"]["deliveryInformation"] = {"to": "bob.eth", "from": "alice.eth"}
    assert _direct_envelope(stored) is None
    assert EncryptionEnvelop.from_json(stored) == _schema(stored)


def _set(path: tuple[str, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(obj: dict[str, Any]) -> None:
        for key in path[:-1]:
            obj = obj[key]
        obj[path[-1]] = value

    return change


def _drop(path: tuple[str, ...]) -> Callable[[dict[str, Any]], None]:
    def change(obj: dict[str, Any]) -> None:
        for key in path[:-1]:
            obj = obj[key]
        del obj[path[-1]]

    return change


MALFORMED: dict[str, Callable[[dict[str, Any]], None]] = {
    "unknown envelope key": _set(("extra",), "x"),
    "message missing": _drop(("message",)),
    "message not a string": _set(("message",), 5),
    "message with a lone surrogate": _set(("message",), "a\ud800"),
    "postmark null": _set(("postmark",), None),
    "metadata not an object": _set(("metadata",), "text"),
    "unknown metadata key": _set(("metadata", "extra"), "x"),
    "version missing": _drop(("metadata", "version")),
    "version not a string": _set(("metadata", "version"), 1),
    "delivery information null": _set(("metadata", "deliveryInformation"), None),
    "signature missing": _drop(("metadata", "signature")),
    "signature not base64": _set(("metadata", "signature"), "not base64!"),
    "signature of 32 bytes": _set(("metadata", "signature"), "A" * 43 + "="),
    "encryption scheme null": _set(("metadata", "encryptionScheme"), None),
    "hash in upper case": _set(("metadata", "encryptedMessageHash"), "0x" + "AB" * 32),
    "hash null": _set(("metadata", "encryptedMessageHash"), None),
    "both hashes": _set(("metadata", "messageHash"), "0x" + "ab" * 32),
    "no hash": _drop(("metadata", "encryptedMessageHash")),
    "hash under the attribute name": _set(("metadata", "encrypted_message_hash"), "0x" + "ab" * 32),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_envelopes_get_the_schemas_error(name: str) -> None:
    obj = _envelope("npm")
    MALFORMED[name](obj)
    assert _direct_envelope(obj) is None
    with pytest.raises(SchemaError) as expected:
        _schema(obj)
    with pytest.raises(SchemaError) as refused:
        EncryptionEnvelop.from_json(obj)
    assert (refused.value.message, refused.value.details) == (expected.value.message, expected.value.details)
