"""Ed25519 signing, padding, symmetric and asymmetric encryption, EncryptedPayload parsing."""

from __future__ import annotations

import json

import nacl.bindings as sodium
import pytest

from ensign.errors import DecryptionError, EncodingError, SchemaError
from ensign.protocol.crypto import (
    EncryptedPayload,
    EncryptionKeyPair,
    SigningKeyPair,
    decrypt_asymmetric,
    decrypt_symmetric,
    encrypt_asymmetric,
    encrypt_symmetric,
    pad,
    sign,
    unpad,
    verify,
)
from ensign.protocol.encoding import b64decode, b64encode
from ensign.protocol.keys import random_encryption_key_pair, random_signing_key_pair


@pytest.fixture
def receiver() -> EncryptionKeyPair:
    return random_encryption_key_pair()


# --- padding ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "padded"), [(0, 2048), (1, 2048), (2047, 2048), (2048, 4096), (2049, 4096)])
def test_pad_always_adds_at_least_one_byte(size, padded):
    data = b"\x01" * size
    out = pad(data)
    assert len(out) == padded
    assert out[:size] == data and out[size] == 0x80 and set(out[size + 1 :]) <= {0}
    assert unpad(out) == data


def test_pad_with_block_one_adds_exactly_the_marker():
    assert pad(b"ab", 1) == b"ab\x80"


def test_unpad_refuses_missing_marker():
    with pytest.raises(DecryptionError, match="padding"):
        unpad(bytes(2048))


@pytest.mark.parametrize("size", [2047, 2048, 2049])
def test_ciphertext_length_at_padding_boundaries(size):
    key = bytes(range(32))
    payload = encrypt_symmetric(key, "a" * size)
    expected_padded = 2048 if size < 2048 else 4096
    assert len(b64decode(payload.ciphertext)) == expected_padded + 16
    assert decrypt_symmetric(key, payload) == "a" * size


# --- symmetric ---------------------------------------------------------------------------------


def test_symmetric_round_trip_with_unicode():
    key = bytes(range(32))
    text = "héllo 😀 \u2028"
    payload = encrypt_symmetric(key, text)
    assert payload.ephem_public_key is None
    assert payload.nonce.startswith("0x") and len(payload.nonce) == 26
    assert payload.nonce == payload.nonce.lower()
    assert decrypt_symmetric(key, payload) == text


def test_random_nonces_differ():
    key = bytes(32)
    assert encrypt_symmetric(key, "x").nonce != encrypt_symmetric(key, "x").nonce


def test_symmetric_wrong_key_is_decryption_error():
    payload = encrypt_symmetric(bytes(32), "secret")
    with pytest.raises(DecryptionError, match="wrong key or tampered"):
        decrypt_symmetric(b"\x01" * 32, payload)


def test_symmetric_key_length_is_checked():
    with pytest.raises(EncodingError, match="32 bytes"):
        encrypt_symmetric(bytes(31), "x")
    with pytest.raises(EncodingError, match="nonce must be 12 bytes"):
        encrypt_symmetric(bytes(32), "x", nonce=bytes(8))


def test_symmetric_refuses_lone_surrogate_plaintext():
    with pytest.raises(EncodingError, match="surrogate"):
        encrypt_symmetric(bytes(32), "\ud800")


def test_plaintext_is_chacha20_poly1305_ietf_over_padded_utf8_without_aad():
    """Open our ciphertext with libsodium directly: no AAD, 12-byte nonce, sodium_pad'ded."""
    key = bytes(range(32))
    payload = encrypt_symmetric(key, "test")
    nonce = bytes.fromhex(payload.nonce[2:])
    opened = sodium.crypto_aead_chacha20poly1305_ietf_decrypt(b64decode(payload.ciphertext), None, nonce, key)
    assert opened == sodium.sodium_pad(b"test", 2048)


# --- asymmetric --------------------------------------------------------------------------------


def test_asymmetric_round_trip(receiver):
    payload = encrypt_asymmetric(receiver.public_key, '{"to":"bob.eth"}')
    assert payload.ephem_public_key is not None
    assert decrypt_asymmetric(receiver, payload) == '{"to":"bob.eth"}'


def test_asymmetric_key_is_client_tx_equal_to_server_rx(receiver):
    """The sender's ephemeral key is the crypto_kx client; the message key is k[32:64]."""
    payload = encrypt_asymmetric(receiver.public_key, "hello")
    server_rx, _ = sodium.crypto_kx_server_session_keys(
        b64decode(receiver.public_key), b64decode(receiver.secret_key), b64decode(payload.ephem_public_key)
    )
    assert decrypt_symmetric(server_rx, payload) == "hello"


def test_asymmetric_wrong_receiver_is_decryption_error(receiver):
    payload = encrypt_asymmetric(receiver.public_key, "hello")
    with pytest.raises(DecryptionError):
        decrypt_asymmetric(random_encryption_key_pair(), payload)


@pytest.mark.parametrize("field", ["ciphertext", "nonce", "ephem_public_key"])
def test_asymmetric_tamper_is_detected(receiver, field):
    payload = encrypt_asymmetric(receiver.public_key, "hello")
    raw = bytearray(b64decode(getattr(payload, field)) if field != "nonce" else bytes.fromhex(payload.nonce[2:]))
    raw[0] ^= 1
    value = b64encode(bytes(raw)) if field != "nonce" else "0x" + raw.hex()
    tampered = EncryptedPayload(**{**payload.__dict__, field: value})
    with pytest.raises(DecryptionError):
        decrypt_asymmetric(receiver, tampered)


def test_asymmetric_receiver_key_length_is_checked():
    with pytest.raises(EncodingError, match="exactly 32 bytes"):
        encrypt_asymmetric(b64encode(bytes(33)), "x")


# --- EncryptedPayload on the wire --------------------------------------------------------------


def test_wire_form_has_sorted_keys(receiver):
    payload = encrypt_asymmetric(receiver.public_key, "x")
    wire = payload.to_wire()
    assert list(json.loads(wire)) == ["ciphertext", "ephemPublicKey", "nonce"]
    assert wire == (
        f'{{"ciphertext":"{payload.ciphertext}","ephemPublicKey":"{payload.ephem_public_key}",'
        f'"nonce":"{payload.nonce}"}}'
    )
    assert EncryptedPayload.from_wire(wire) == payload


def test_wire_form_omits_missing_ephemeral_key():
    payload = encrypt_symmetric(bytes(32), "x")
    assert "ephemPublicKey" not in payload.to_wire()
    assert EncryptedPayload.from_wire(payload.to_json()) == payload


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"extra": "x"}, SchemaError, "unknown field"),
        ({"nonce": None}, SchemaError, "nonce must be a string"),
        ({"nonce": "0x00"}, EncodingError, "12 bytes"),
        ({"ciphertext": "@@@@"}, EncodingError, "ciphertext"),
        ({"ciphertext": "AAAA"}, EncodingError, "tag"),
        ({"ephemPublicKey": "AAAA"}, EncodingError, "32 bytes"),
    ],
)
def test_from_wire_refusals(receiver, change, error, match):
    obj = {**encrypt_asymmetric(receiver.public_key, "x").to_json(), **change}
    with pytest.raises(error, match=match):
        EncryptedPayload.from_wire(obj)


def test_from_wire_missing_field_and_non_object():
    with pytest.raises(SchemaError, match="missing field"):
        EncryptedPayload.from_wire({"nonce": "0x" + "00" * 12})
    with pytest.raises(SchemaError, match="JSON object"):
        EncryptedPayload.from_wire("[]")
    with pytest.raises(EncodingError, match="not valid JSON"):
        EncryptedPayload.from_wire("{")


# --- Ed25519 -----------------------------------------------------------------------------------


def test_sign_and_verify_utf8_payload():
    pair = random_signing_key_pair()
    signature = sign(pair.secret_key, "héllo")
    assert len(b64decode(signature)) == 64
    assert verify(pair.public_key, "héllo", signature)
    assert not verify(pair.public_key, "hello", signature)
    assert not verify(random_signing_key_pair().public_key, "héllo", signature)


@pytest.mark.parametrize("bad", ["", "!!!!", b64encode(bytes(63)), b64encode(bytes(64))])
def test_verify_never_raises_on_bad_signatures(bad):
    pair = random_signing_key_pair()
    assert verify(pair.public_key, "x", bad) is False
    assert verify(bad, "x", sign(pair.secret_key, "x")) is False


def test_sign_requires_the_64_byte_secret_key():
    pair = random_signing_key_pair()
    seed_only = b64encode(b64decode(pair.secret_key)[:32])
    with pytest.raises(EncodingError, match="64 bytes"):
        sign(seed_only, "x")


# --- key pair checks ---------------------------------------------------------------------------


def test_key_pairs_check_lengths_and_consistency():
    enc = random_encryption_key_pair()
    with pytest.raises(EncodingError, match="32 bytes"):
        EncryptionKeyPair(b64encode(bytes(31)), enc.secret_key)
    with pytest.raises(EncodingError, match="does not belong"):
        EncryptionKeyPair(random_encryption_key_pair().public_key, enc.secret_key)
    sig = random_signing_key_pair()
    with pytest.raises(EncodingError, match="64 bytes"):
        SigningKeyPair(sig.public_key, b64encode(b64decode(sig.secret_key)[:32]))
    with pytest.raises(EncodingError, match="does not belong"):
        SigningKeyPair(random_signing_key_pair().public_key, sig.secret_key)


def test_key_pair_repr_hides_the_secret():
    enc, sig = random_encryption_key_pair(), random_signing_key_pair()
    assert enc.secret_key not in repr(enc) and sig.secret_key not in repr(sig)


def test_wire_form_of_unusual_text_is_still_canonical():
    # Only base64/hex take the direct path; anything else goes through stringify.
    odd = EncryptedPayload(ciphertext='a"b\\c\u2028é', nonce="0x00")
    assert odd.to_wire() == '{"ciphertext":"a\\"b\\\\c\u2028é","nonce":"0x00"}'
    assert json.loads(odd.to_wire())["ciphertext"] == 'a"b\\c\u2028é'


def test_parsed_and_constructed_payloads_decrypt_alike(receiver):
    payload = encrypt_asymmetric(receiver.public_key, "same")
    parsed = EncryptedPayload.from_wire(payload.to_wire())
    rebuilt = EncryptedPayload(payload.ciphertext, payload.nonce, payload.ephem_public_key)
    assert parsed == rebuilt == payload
    assert decrypt_asymmetric(receiver, parsed) == decrypt_asymmetric(receiver, rebuilt) == "same"
