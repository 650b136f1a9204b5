"""Every dm3 test vector in specs/vectors/dm3-source.json, reproduced by ensign.protocol."""

from __future__ import annotations

import pytest

from ensign.errors import DecryptionError
from ensign.protocol.crypto import (
    EncryptedPayload,
    EncryptionKeyPair,
    decrypt_asymmetric,
    decrypt_symmetric,
    encrypt_symmetric,
    encryption_key_pair_from_seed,
    receiver_session_keys,
    sender_session_keys,
    sign,
    signing_key_pair_from_seed,
    verify,
)
from ensign.protocol.encoding import b64decode, b64encode, hex_to_bytes, sha256_hex
from ensign.protocol.keys import (
    DEFAULT_NONCE,
    address_of_private_key,
    personal_sign,
    profile_keys_from_storage_key,
    profile_keys_from_wallet,
    recover_personal_sign,
    storage_key_creation_message,
    storage_key_from_signature,
)

EXPECTED_VECTORS = {
    "default_nonce",
    "create_profile_keys",
    "create_storage_key",
    "seed_key_pairs",
    "session_keys",
    "sign",
    "encryption",
}


def test_vector_file_holds_every_listed_vector(dm3_vectors):
    assert set(dm3_vectors) == EXPECTED_VECTORS


def test_default_nonce(dm3_vector):
    v = dm3_vector("default_nonce")
    assert sha256_hex(v["input"]) == v["nonce"]
    assert DEFAULT_NONCE == v["nonce"]


def test_create_profile_keys_from_wallet(dm3_vector):
    v = dm3_vector("create_profile_keys")
    keys = profile_keys_from_wallet(v["walletPrivateKey"], v["nonce"])
    assert keys.storage_key == v["storageEncryptionKey"]
    assert keys.nonce == v["storageEncryptionNonce"]
    assert keys.encryption.public_key == v["encryptionKeyPair"]["publicKey"]
    assert keys.encryption.secret_key == v["encryptionKeyPair"]["privateKey"]
    assert keys.signing.public_key == v["signingKeyPair"]["publicKey"]
    assert keys.signing.secret_key == v["signingKeyPair"]["privateKey"]
    assert keys.public_keys() == {
        "publicEncryptionKey": v["encryptionKeyPair"]["publicKey"],
        "publicSigningKey": v["signingKeyPair"]["publicKey"],
    }


def test_create_profile_keys_step_by_step(dm3_vector):
    """The chain of the test, one step at a time: message → personal_sign → storage key → keys."""
    v = dm3_vector("create_profile_keys")
    address = address_of_private_key(v["walletPrivateKey"])
    message = storage_key_creation_message(address, v["nonce"])
    signature = personal_sign(v["walletPrivateKey"], message)
    assert recover_personal_sign(message, signature) == address
    storage_key = storage_key_from_signature(signature)
    assert storage_key == v["storageEncryptionKey"]
    keys = profile_keys_from_storage_key(storage_key, v["nonce"])
    assert keys.encryption.public_key == v["encryptionKeyPair"]["publicKey"]
    assert keys.signing.secret_key == v["signingKeyPair"]["privateKey"]


def test_default_nonce_is_the_default_of_the_chain(dm3_vector):
    v = dm3_vector("create_profile_keys")
    assert profile_keys_from_wallet(v["walletPrivateKey"]).storage_key == v["storageEncryptionKey"]


def test_create_storage_key(dm3_vector):
    v = dm3_vector("create_storage_key")
    assert storage_key_from_signature(v["signature"]) == v["storageKey"]


def test_seed_key_pairs(dm3_vector):
    v = dm3_vector("seed_key_pairs")
    seed = b64decode(v["seed"], length=32)
    enc = encryption_key_pair_from_seed(seed)
    assert (enc.public_key, enc.secret_key) == (
        v["encryptionKeyPair"]["publicKey"],
        v["encryptionKeyPair"]["privateKey"],
    )
    sig = signing_key_pair_from_seed(seed)
    assert (sig.public_key, sig.secret_key) == (
        v["signingKeyPair"]["publicKey"],
        v["signingKeyPair"]["privateKey"],
    )


def test_session_keys(dm3_vector):
    v = dm3_vector("session_keys")
    a = EncryptionKeyPair(v["keyPairA"]["publicKey"], v["keyPairA"]["privateKey"])
    b = EncryptionKeyPair(v["keyPairB"]["publicKey"], v["keyPairB"]["privateKey"])
    rx, tx = sender_session_keys(a, b.public_key)
    assert {"sharedRx": b64encode(rx), "sharedTx": b64encode(tx)} == v["senderSessionKeyA"]
    rx, tx = receiver_session_keys(b, a.public_key)
    assert {"sharedRx": b64encode(rx), "sharedTx": b64encode(tx)} == v["receiverSessionKeyB"]


def test_sign(dm3_vector):
    v = dm3_vector("sign")
    assert sign(v["keyPair"]["privateKey"], v["payload"]) == v["signature"]
    assert verify(v["keyPair"]["publicKey"], v["payload"], v["signature"]) is True
    assert verify(v["keyPair"]["publicKey"], v["manipulatedPayload"], v["signature"]) is False


def test_symmetric_decryption_of_test_data_a(dm3_vector):
    v = dm3_vector("encryption")
    key = b64decode(v["symmetricKey"], length=32)
    payload = EncryptedPayload.from_wire(v["testDataA"])
    assert decrypt_symmetric(key, payload, block=v["padding"]) == v["plaintext"]


def test_asymmetric_decryption_of_test_data_b(dm3_vector):
    v = dm3_vector("encryption")
    pair = EncryptionKeyPair(v["asymmetricKeyPair"]["publicKey"], v["asymmetricKeyPair"]["privateKey"])
    payload = EncryptedPayload.from_wire(v["testDataB"])
    assert decrypt_asymmetric(pair, payload, block=v["padding"]) == v["plaintext"]


def test_test_data_a_ciphertext_has_padded_length(dm3_vector):
    v = dm3_vector("encryption")
    assert len(b64decode(v["testDataA"]["ciphertext"])) == v["padding"] + 16


def test_fixed_nonce_encrypts_deterministically_and_decrypts(dm3_vector):
    v = dm3_vector("encryption")
    key = b64decode(v["symmetricKey"], length=32)
    nonce = hex_to_bytes(v["fixedNonce"], length=12)
    first = encrypt_symmetric(key, v["plaintext"], nonce=nonce)
    assert first == encrypt_symmetric(key, v["plaintext"], nonce=nonce)
    assert first.nonce == v["fixedNonce"]
    assert decrypt_symmetric(key, first) == v["plaintext"]


def test_test_data_b_needs_its_ephemeral_key(dm3_vector):
    v = dm3_vector("encryption")
    pair = EncryptionKeyPair(v["asymmetricKeyPair"]["publicKey"], v["asymmetricKeyPair"]["privateKey"])
    stripped = {k: val for k, val in v["testDataB"].items() if k != "ephemPublicKey"}
    with pytest.raises(DecryptionError, match="ephemPublicKey is missing"):
        decrypt_asymmetric(pair, EncryptedPayload.from_wire(stripped))
