"""Key-derivation messages and EIP-191 wallet signatures."""

from __future__ import annotations

import pytest
from eth_account import Account

from ensign.errors import EncodingError, SignatureError
from ensign.protocol.keys import (
    DEFAULT_NONCE,
    address_of_private_key,
    personal_sign,
    profile_keys_from_signature,
    profile_keys_from_storage_key,
    random_signing_key_pair,
    recover_personal_sign,
    storage_key_creation_message,
    storage_key_from_signature,
)

WALLET = Account.create()


def test_storage_key_creation_message_text():
    address = WALLET.address.lower()
    message = storage_key_creation_message(address, "0xabc")
    assert message.split("\n") == [
        "dm3.chat wants you to sign in with your Ethereum account:",
        WALLET.address,  # EIP-55 form even when given lowercase
        "",
        "Connect the DM3 MESSENGER with your wallet. Keys for secure communication are derived "
        "from this signature.",
        "",
        "(There is no paid transaction initiated. The signature is used off-chain only.)",
        "",
        "URI: https://dm3.chat",
        "Version: 1",
        "Nonce: 0xabc",
    ]
    assert not message.endswith("\n") and "\r" not in message


def test_storage_key_creation_message_defaults_to_default_nonce():
    assert storage_key_creation_message(WALLET.address).endswith(f"Nonce: {DEFAULT_NONCE}")


def test_storage_key_creation_message_refuses_bad_address():
    with pytest.raises(EncodingError):
        storage_key_creation_message("alice.eth")


def test_storage_key_hashes_the_signature_text_verbatim():
    signature = personal_sign(WALLET.key.hex(), "x")
    assert storage_key_from_signature(signature) != storage_key_from_signature(signature.upper())


def test_nonce_changes_the_keys():
    key = WALLET.key.hex()
    a = personal_sign(key, storage_key_creation_message(WALLET.address, DEFAULT_NONCE))
    b = personal_sign(key, storage_key_creation_message(WALLET.address, "0x01"))
    assert profile_keys_from_signature(a).encryption != profile_keys_from_signature(b, "0x01").encryption


def test_storage_key_must_be_32_bytes():
    with pytest.raises(EncodingError, match="storage key"):
        profile_keys_from_storage_key("AAAA")


def test_personal_sign_format_and_recovery():
    signature = personal_sign(WALLET.key.hex(), "héllo")
    assert signature.startswith("0x") and len(signature) == 132 and signature == signature.lower()
    assert int(signature[-2:], 16) in (27, 28)
    assert recover_personal_sign("héllo", signature) == WALLET.address
    assert recover_personal_sign("hello", signature) != WALLET.address


def test_personal_sign_accepts_key_without_0x():
    key = WALLET.key.hex().removeprefix("0x")
    assert address_of_private_key(key) == WALLET.address
    assert recover_personal_sign("m", personal_sign(key, "m")) == WALLET.address


def test_recover_accepts_v_zero_one():
    signature = personal_sign(WALLET.key.hex(), "m")
    v = int(signature[-2:], 16) - 27
    assert recover_personal_sign("m", signature[:-2] + f"{v:02x}") == WALLET.address


@pytest.mark.parametrize("bad", ["", "0x", "0x" + "00" * 64, "0x" + "00" * 65, "zz"])
def test_recover_refuses_malformed_signatures(bad):
    with pytest.raises(SignatureError):
        recover_personal_sign("m", bad)


def test_bad_private_key_is_encoding_error():
    with pytest.raises(EncodingError):
        personal_sign("0x1234", "m")
    with pytest.raises(EncodingError):
        address_of_private_key("0x" + "00" * 32)


def test_profile_keys_repr_hides_secrets():
    keys = profile_keys_from_signature(personal_sign(WALLET.key.hex(), "m"))
    text = repr(keys)
    assert keys.storage_key not in text and keys.signing.secret_key not in text
    assert random_signing_key_pair() != keys.signing
