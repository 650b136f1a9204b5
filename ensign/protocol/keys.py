"""Key derivation from a wallet, as dm3 does it, and EIP-191 wallet signatures.

The chain (all byte-exact with dm3):

1. ``storage_key_creation_message(address, nonce)`` — fixed text, LF line ends, no final newline;
2. the wallet ``personal_sign``s it, giving a lowercase ``0x`` hex signature (``v`` 27/28);
3. ``storage_key = base64(SHA-256(UTF-8(signature text)))`` — the *hex text*, ``0x`` included;
4. ``seed = base64decode(storage_key)`` gives the X25519 pair (``crypto_kx_seed_keypair``) and the
   Ed25519 pair (``crypto_sign_seed_keypair``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import nacl.bindings as sodium
from eth_account import Account
from eth_account.messages import encode_defunct

from ensign.errors import EncodingError, SignatureError
from ensign.protocol.crypto import (
    EncryptionKeyPair,
    SigningKeyPair,
    encryption_key_pair_from_seed,
    signing_key_pair_from_seed,
)
from ensign.protocol.encoding import b64decode, b64encode, checksum_address, hex_to_bytes, sha256_hex, utf8

__all__ = [
    "DEFAULT_NONCE",
    "ProfileKeys",
    "storage_key_creation_message",
    "storage_key_from_signature",
    "profile_keys_from_storage_key",
    "profile_keys_from_signature",
    "profile_keys_from_wallet",
    "random_encryption_key_pair",
    "random_signing_key_pair",
    "personal_sign",
    "recover_personal_sign",
    "address_of_private_key",
]

#: ``sha256("dm3_default_nonce")``; dm3's ``createProfile`` always uses it.
DEFAULT_NONCE: str = sha256_hex("dm3_default_nonce")


def storage_key_creation_message(address: str, nonce: str = DEFAULT_NONCE) -> str:
    """The text a wallet signs to derive its dm3 keys (dm3 ``getStorageKeyCreationMessage``).

    ``address`` is written in its EIP-55 form; :class:`EncodingError` if it is not an address.
    """
    return (
        "dm3.chat wants you to sign in with your Ethereum account:\n"
        f"{checksum_address(address)}\n\n"
        "Connect the DM3 MESSENGER with your wallet. "
        "Keys for secure communication are derived from this signature.\n\n"
        "(There is no paid transaction initiated. The signature is used off-chain only.)\n\n"
        "URI: https://dm3.chat\n"
        "Version: 1\n"
        f"Nonce: {nonce}"
    )


def storage_key_from_signature(signature_hex: str) -> str:
    """dm3 ``createStorageKey``: base64 SHA-256 of the signature's *text*, exactly as given.

    The text is hashed verbatim, so a ``v`` of 0/1 or upper-case hex gives a different key than the
    lowercase 27/28 form wallets normally return.
    """
    return b64encode(hashlib.sha256(utf8(signature_hex, what="signature")).digest())


@dataclass(frozen=True)
class ProfileKeys:
    """The keys dm3 derives for an account (``ProfileKeys`` in dm3-lib-profile)."""

    encryption: EncryptionKeyPair
    signing: SigningKeyPair
    storage_key: str
    nonce: str

    def public_keys(self) -> dict[str, str]:
        """``{"publicEncryptionKey", "publicSigningKey"}`` as a profile carries them."""
        return {
            "publicEncryptionKey": self.encryption.public_key,
            "publicSigningKey": self.signing.public_key,
        }

    def __repr__(self) -> str:
        return (
            f"ProfileKeys(encryption={self.encryption!r}, signing={self.signing!r}, "
            f"storage_key=<hidden>, nonce={self.nonce!r})"
        )


def profile_keys_from_storage_key(storage_key_b64: str, nonce: str = DEFAULT_NONCE) -> ProfileKeys:
    """dm3 ``createProfileKeys``: both key pairs from the 32-byte storage key used as seed."""
    seed = b64decode(storage_key_b64, length=32, what="storage key")
    return ProfileKeys(
        encryption=encryption_key_pair_from_seed(seed),
        signing=signing_key_pair_from_seed(seed),
        storage_key=storage_key_b64,
        nonce=nonce,
    )


def profile_keys_from_signature(signature_hex: str, nonce: str = DEFAULT_NONCE) -> ProfileKeys:
    """Keys from the wallet's signature of :func:`storage_key_creation_message`."""
    return profile_keys_from_storage_key(storage_key_from_signature(signature_hex), nonce)


def profile_keys_from_wallet(private_key_hex: str, nonce: str = DEFAULT_NONCE) -> ProfileKeys:
    """The whole chain for a wallet private key: sign the creation message, derive the keys."""
    address = address_of_private_key(private_key_hex)
    signature = personal_sign(private_key_hex, storage_key_creation_message(address, nonce))
    return profile_keys_from_signature(signature, nonce)


def random_encryption_key_pair() -> EncryptionKeyPair:
    """A fresh random X25519 ``crypto_kx`` key pair."""
    pk, sk = sodium.crypto_kx_keypair()
    return EncryptionKeyPair(public_key=b64encode(pk), secret_key=b64encode(sk))


def random_signing_key_pair() -> SigningKeyPair:
    """A fresh random Ed25519 key pair."""
    pk, sk = sodium.crypto_sign_keypair()
    return SigningKeyPair(public_key=b64encode(pk), secret_key=b64encode(sk))


def _private_key_bytes(private_key_hex: str) -> bytes:
    if isinstance(private_key_hex, str) and not private_key_hex.startswith("0x"):
        private_key_hex = "0x" + private_key_hex
    return hex_to_bytes(private_key_hex, length=32, what="wallet private key")


def address_of_private_key(private_key_hex: str) -> str:
    """EIP-55 address of a secp256k1 private key (hex, with or without ``0x``)."""
    try:
        return str(Account.from_key(_private_key_bytes(private_key_hex)).address)
    except (ValueError, TypeError):
        raise EncodingError("wallet private key is not a valid secp256k1 key") from None


def personal_sign(private_key_hex: str, message: str) -> str:
    """EIP-191 ``personal_sign`` of UTF-8 ``message``: lowercase ``0x`` hex ``r‖s‖v``, v ∈ {27, 28}
    (what ethers ``signMessage`` and MetaMask return)."""
    key = _private_key_bytes(private_key_hex)
    utf8(message, what="message")
    try:
        signed = Account.sign_message(encode_defunct(text=message), key)
    except (ValueError, TypeError):
        raise EncodingError("wallet private key is not a valid secp256k1 key") from None
    return "0x" + bytes(signed.signature).hex()


def recover_personal_sign(message: str, signature_hex: str) -> str:
    """The EIP-55 address that ``personal_sign``ed ``message``.

    Accepts ``v`` as 27/28 or 0/1 (as ethers' ``recoverAddress`` does). :class:`SignatureError` if
    the signature is malformed or recovers no key.
    """
    try:
        raw = hex_to_bytes(signature_hex, length=65, what="wallet signature")
    except EncodingError as exc:
        raise SignatureError(exc.message) from None
    if raw[64] in (0, 1):
        raw = raw[:64] + bytes([raw[64] + 27])
    try:
        address = Account.recover_message(encode_defunct(text=message), signature=raw)
    except Exception:  # eth-keys raises several unrelated types for bad r/s/v values
        raise SignatureError("wallet signature does not recover to an address") from None
    return str(address)
