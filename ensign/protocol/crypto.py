"""dm3's libsodium constructions: Ed25519 signatures, crypto_kx, padded ChaCha20-Poly1305.

* ``sign``/``verify``: detached Ed25519 over the UTF-8 bytes of a *string* payload (dm3 never
  signs raw digests; it signs canonical JSON or a ``0x…`` hex string).
* Symmetric encryption: ISO/IEC 7816-4 padding to a 2048-byte block (libsodium ``sodium_pad``:
  always at least one byte, a full block when already aligned), then ChaCha20-Poly1305-IETF with a
  12-byte nonce and no associated data. The result is an :class:`EncryptedPayload`: base64
  ciphertext (tag included) and ``0x``-hex nonce.
* Asymmetric encryption: a fresh ``crypto_kx`` key pair acts as *client* against the receiver's
  public key; the message key is the client's transmit key (``k[32:64]`` of
  ``BLAKE2b-512(q ‖ client_pk ‖ server_pk)``), which is the receiver's (server's) receive key.

The functions take base64 keys as dm3 stores them and call ``nacl.bindings`` directly; schema
validation happens once at the boundary (:mod:`ensign.protocol.models`), not here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, TypeVar

import nacl.bindings as sodium
from nacl.exceptions import CryptoError

from ensign.errors import DecryptionError, EncodingError, EnsignError, SchemaError
from ensign.protocol.canonical import parse_json, stringify
from ensign.protocol.encoding import b64decode, b64encode, hex_to_bytes, utf8

__all__ = [
    "ENCRYPTION_SCHEME",
    "PAD_BLOCK",
    "EncryptionKeyPair",
    "SigningKeyPair",
    "EncryptedPayload",
    "sign",
    "verify",
    "pad",
    "unpad",
    "encrypt_symmetric",
    "decrypt_symmetric",
    "encrypt_asymmetric",
    "decrypt_asymmetric",
    "encryption_key_pair_from_seed",
    "signing_key_pair_from_seed",
    "sender_session_keys",
    "receiver_session_keys",
    "open_with_any",
]

T = TypeVar("T")
K = TypeVar("K")

#: ``metadata.encryptionScheme`` of every dm3 envelope.
ENCRYPTION_SCHEME = "x25519-chacha20-poly1305"
#: dm3's padding block (``2 ** 11``).
PAD_BLOCK = 2048

_KEY_BYTES = 32
_NONCE_BYTES = sodium.crypto_aead_chacha20poly1305_ietf_NPUBBYTES  # 12
_TAG_BYTES = sodium.crypto_aead_chacha20poly1305_ietf_ABYTES  # 16
_SIG_BYTES = 64


@dataclass(frozen=True)
class EncryptionKeyPair:
    """An X25519 ``crypto_kx`` key pair, both halves base64 of 32 bytes.

    Construction checks the lengths and that the public key belongs to the secret key.
    """

    public_key: str
    secret_key: str

    def __post_init__(self) -> None:
        pk = b64decode(self.public_key, length=_KEY_BYTES, what="encryption public key")
        sk = b64decode(self.secret_key, length=_KEY_BYTES, what="encryption secret key")
        if sodium.crypto_scalarmult_base(sk) != pk:
            raise EncodingError("encryption public key does not belong to the secret key")

    @cached_property
    def public_key_bytes(self) -> bytes:
        return b64decode(self.public_key, length=_KEY_BYTES)

    @cached_property
    def secret_key_bytes(self) -> bytes:
        return b64decode(self.secret_key, length=_KEY_BYTES)

    def __repr__(self) -> str:  # never print the secret half
        return f"EncryptionKeyPair(public_key={self.public_key!r}, secret_key=<hidden>)"


@dataclass(frozen=True)
class SigningKeyPair:
    """An Ed25519 key pair: public key base64 of 32 bytes, secret key base64 of libsodium's 64-byte
    form (``seed ‖ public key``). Construction checks the lengths and that the halves match."""

    public_key: str
    secret_key: str

    def __post_init__(self) -> None:
        pk = b64decode(self.public_key, length=_KEY_BYTES, what="signing public key")
        sk = b64decode(self.secret_key, length=64, what="signing secret key")
        if sk[32:] != pk:
            raise EncodingError("signing public key does not belong to the secret key")

    def __repr__(self) -> str:
        return f"SigningKeyPair(public_key={self.public_key!r}, secret_key=<hidden>)"


@dataclass(frozen=True)
class EncryptedPayload:
    """dm3's ``EncryptedPayload``: base64 ciphertext, ``0x``-hex 12-byte nonce and, for asymmetric
    encryption, the sender's ephemeral X25519 public key (base64)."""

    ciphertext: str
    nonce: str
    ephem_public_key: str | None = None

    def to_json(self) -> dict[str, str]:
        """The wire object; ``ephemPublicKey`` is left out when there is none."""
        obj = {"ciphertext": self.ciphertext, "nonce": self.nonce}
        if self.ephem_public_key is not None:
            obj["ephemPublicKey"] = self.ephem_public_key
        return obj

    def to_wire(self) -> str:
        """Canonical JSON ``{"ciphertext":…,"ephemPublicKey":…,"nonce":…}``."""
        parts = (self.ciphertext, self.nonce, self.ephem_public_key or "")
        if all(_writes_verbatim(part) for part in parts):
            # base64 and hex need no escaping, so the canonical form can be written directly —
            # this runs once per stored message and postmark.
            if self.ephem_public_key is None:
                return f'{{"ciphertext":"{self.ciphertext}","nonce":"{self.nonce}"}}'
            return (
                f'{{"ciphertext":"{self.ciphertext}","ephemPublicKey":"{self.ephem_public_key}",'
                f'"nonce":"{self.nonce}"}}'
            )
        return stringify(self.to_json())

    @cached_property
    def ciphertext_bytes(self) -> bytes:
        """The decoded ciphertext (tag included); :class:`EncodingError` if not base64."""
        return b64decode(self.ciphertext, what="ciphertext")

    @classmethod
    def from_wire(cls, text: str | dict[str, Any], *, what: str = "encrypted payload") -> EncryptedPayload:
        """Parse and check a payload given as JSON text or an already-parsed dict.

        Exactly the fields ``ciphertext``, ``nonce`` and optionally ``ephemPublicKey`` (strings);
        the nonce must be 12 bytes of ``0x``-hex, the ciphertext valid base64 holding at least the
        16-byte tag, the ephemeral key base64 of 32 bytes. :class:`SchemaError` for the shape,
        :class:`EncodingError` for the encodings.
        """
        obj = parse_json(text, what=what) if isinstance(text, (str, bytes)) else text
        if not isinstance(obj, dict):
            raise SchemaError(f"{what} must be a JSON object")
        unknown = sorted(set(obj) - {"ciphertext", "nonce", "ephemPublicKey"})
        if unknown:
            raise SchemaError(f"{what} has unknown field(s): {', '.join(unknown)}")
        missing = [name for name in ("ciphertext", "nonce") if name not in obj]
        if missing:
            raise SchemaError(f"{what} is missing field(s): {', '.join(missing)}")
        for name, value in obj.items():
            if not isinstance(value, str):
                raise SchemaError(f"{what}.{name} must be a string")
        hex_to_bytes(obj["nonce"], length=_NONCE_BYTES, what=f"{what}.nonce")
        ciphertext = b64decode(obj["ciphertext"], what=f"{what}.ciphertext")
        if len(ciphertext) < _TAG_BYTES:
            raise EncodingError(f"{what}.ciphertext is shorter than the authentication tag")
        ephem = obj.get("ephemPublicKey")
        if ephem is not None:
            b64decode(ephem, length=_KEY_BYTES, what=f"{what}.ephemPublicKey")
        payload = cls(ciphertext=obj["ciphertext"], nonce=obj["nonce"], ephem_public_key=ephem)
        # Decrypting right after parsing is the common case: keep the bytes already decoded.
        payload.__dict__["ciphertext_bytes"] = ciphertext
        return payload


def _writes_verbatim(text: str) -> bool:
    """True when JSON writes ``text`` between quotes unchanged (printable ASCII, no quote or
    backslash) — always so for base64 and hex. All C-level scans: cheaper than encoding."""
    return text.isascii() and text.isprintable() and '"' not in text and "\\" not in text


# --- Ed25519 ---------------------------------------------------------------------------------


def sign(secret_key_b64: str, payload: str) -> str:
    """Base64 detached Ed25519 signature over the UTF-8 bytes of ``payload`` (dm3 ``sign``)."""
    sk = b64decode(secret_key_b64, length=64, what="signing secret key")
    message = utf8(payload, what="signed payload")
    # libsodium's combined form is signature ‖ message; PyNaCl has no detached binding.
    return b64encode(sodium.crypto_sign(message, sk)[:_SIG_BYTES])


def verify(public_key_b64: str, payload: str, signature_b64: str) -> bool:
    """True iff ``signature_b64`` is a valid Ed25519 signature of UTF-8 ``payload``.

    Never raises for bad signatures, wrong lengths or malformed base64: those are all ``False``.
    """
    try:
        pk = b64decode(public_key_b64, length=_KEY_BYTES)
        sig = b64decode(signature_b64, length=_SIG_BYTES)
        message = utf8(payload)
        sodium.crypto_sign_open(sig + message, pk)
    except (EncodingError, CryptoError, ValueError, TypeError):
        return False
    return True


def signing_key_pair_from_seed(seed: bytes) -> SigningKeyPair:
    """``crypto_sign_seed_keypair``: the standard Ed25519 key pair of a 32-byte seed."""
    if len(seed) != 32:
        raise EncodingError(f"signing seed must be 32 bytes, got {len(seed)}")
    pk, sk = sodium.crypto_sign_seed_keypair(seed)
    return SigningKeyPair(public_key=b64encode(pk), secret_key=b64encode(sk))


# --- crypto_kx ---------------------------------------------------------------------------------


def encryption_key_pair_from_seed(seed: bytes) -> EncryptionKeyPair:
    """``crypto_kx_seed_keypair``: ``sk = BLAKE2b-256(seed)``, ``pk = X25519(sk, 9)``."""
    if len(seed) != 32:
        raise EncodingError(f"encryption seed must be 32 bytes, got {len(seed)}")
    pk, sk = sodium.crypto_kx_seed_keypair(seed)
    return EncryptionKeyPair(public_key=b64encode(pk), secret_key=b64encode(sk))


def sender_session_keys(key_pair: EncryptionKeyPair, other_public_key_b64: str) -> tuple[bytes, bytes]:
    """``crypto_kx_client_session_keys`` (dm3 ``createSenderSessionKey``): ``(rx, tx)``."""
    other = b64decode(other_public_key_b64, length=_KEY_BYTES, what="public encryption key")
    try:
        rx, tx = sodium.crypto_kx_client_session_keys(
            key_pair.public_key_bytes, key_pair.secret_key_bytes, other
        )
    except CryptoError:
        raise EncodingError("public encryption key is not a usable X25519 point") from None
    return rx, tx


def receiver_session_keys(key_pair: EncryptionKeyPair, other_public_key_b64: str) -> tuple[bytes, bytes]:
    """``crypto_kx_server_session_keys`` (dm3 ``createReceiverSessionKey``): ``(rx, tx)``."""
    other = b64decode(other_public_key_b64, length=_KEY_BYTES, what="public encryption key")
    try:
        rx, tx = sodium.crypto_kx_server_session_keys(
            key_pair.public_key_bytes, key_pair.secret_key_bytes, other
        )
    except CryptoError:
        raise EncodingError("public encryption key is not a usable X25519 point") from None
    return rx, tx


# --- padding and AEAD ----------------------------------------------------------------------------


def pad(data: bytes, block: int = PAD_BLOCK) -> bytes:
    """ISO/IEC 7816-4 padding (``sodium_pad``): ``0x80`` then zeros up to the next multiple of
    ``block`` strictly above ``len(data)`` — an aligned input gains a whole block."""
    if block < 1:
        raise ValueError("padding block size must be positive")
    return sodium.sodium_pad(data, block)


def unpad(data: bytes, block: int = PAD_BLOCK) -> bytes:
    """Reverse :func:`pad`; :class:`DecryptionError` if the padding is malformed."""
    if block < 1:
        raise ValueError("padding block size must be positive")
    try:
        return sodium.sodium_unpad(data, block)
    except (CryptoError, ValueError):
        raise DecryptionError("decrypted data has invalid padding") from None


def encrypt_symmetric(
    key: bytes, plaintext: str, *, nonce: bytes | None = None, block: int = PAD_BLOCK
) -> EncryptedPayload:
    """dm3 ``encrypt``: pad UTF-8 ``plaintext`` to ``block``, seal with ChaCha20-Poly1305-IETF.

    ``nonce`` defaults to 12 random bytes; pass one only for deterministic tests (reusing a nonce
    with the same key breaks confidentiality). The payload has no ``ephemPublicKey``.
    """
    if len(key) != _KEY_BYTES:
        raise EncodingError(f"symmetric key must be {_KEY_BYTES} bytes, got {len(key)}")
    if nonce is None:
        nonce = sodium.randombytes(_NONCE_BYTES)
    elif len(nonce) != _NONCE_BYTES:
        raise EncodingError(f"nonce must be {_NONCE_BYTES} bytes, got {len(nonce)}")
    padded = sodium.sodium_pad(utf8(plaintext, what="plaintext"), block)
    sealed = sodium.crypto_aead_chacha20poly1305_ietf_encrypt(padded, None, nonce, key)
    return EncryptedPayload(ciphertext=b64encode(sealed), nonce="0x" + nonce.hex())


def decrypt_symmetric(key: bytes, payload: EncryptedPayload, *, block: int = PAD_BLOCK) -> str:
    """dm3 ``decrypt``: open the AEAD, strip the padding, decode UTF-8.

    :class:`DecryptionError` for a wrong key, tampered ciphertext or nonce, bad padding or
    non-UTF-8 plaintext; :class:`EncodingError` for malformed base64/hex.
    """
    if len(key) != _KEY_BYTES:
        raise EncodingError(f"symmetric key must be {_KEY_BYTES} bytes, got {len(key)}")
    nonce = hex_to_bytes(payload.nonce, length=_NONCE_BYTES, what="nonce")
    sealed = payload.ciphertext_bytes
    try:
        padded = sodium.crypto_aead_chacha20poly1305_ietf_decrypt(sealed, None, nonce, key)
    except CryptoError:
        raise DecryptionError("decryption failed: wrong key or tampered ciphertext") from None
    try:
        return unpad(padded, block).decode("utf-8")
    except UnicodeDecodeError:
        raise DecryptionError("decrypted data is not valid UTF-8") from None


def encrypt_asymmetric(
    receiver_public_key_b64: str,
    plaintext: str,
    *,
    block: int = PAD_BLOCK,
    ephemeral_seed: bytes | None = None,
    nonce: bytes | None = None,
) -> EncryptedPayload:
    """dm3 ``encryptAsymmetric``: encrypt to an X25519 public key with a fresh ephemeral key.

    ``ephemeral_seed`` (32 bytes, the ephemeral pair is ``crypto_kx_seed_keypair`` of it) and
    ``nonce`` default to fresh random values; pass them only to reproduce test vectors.
    """
    receiver = b64decode(receiver_public_key_b64, length=_KEY_BYTES, what="receiver public encryption key")
    if ephemeral_seed is None:
        eph_pk, eph_sk = sodium.crypto_kx_keypair()
    elif len(ephemeral_seed) != _KEY_BYTES:
        raise EncodingError(f"ephemeral seed must be {_KEY_BYTES} bytes, got {len(ephemeral_seed)}")
    else:
        eph_pk, eph_sk = sodium.crypto_kx_seed_keypair(ephemeral_seed)
    try:
        _rx, tx = sodium.crypto_kx_client_session_keys(eph_pk, eph_sk, receiver)
    except CryptoError:
        raise EncodingError("receiver public encryption key is not a usable X25519 point") from None
    sealed = encrypt_symmetric(tx, plaintext, block=block, nonce=nonce)
    return EncryptedPayload(
        ciphertext=sealed.ciphertext, nonce=sealed.nonce, ephem_public_key=b64encode(eph_pk)
    )


def decrypt_asymmetric(
    key_pair: EncryptionKeyPair, payload: EncryptedPayload, *, block: int = PAD_BLOCK
) -> str:
    """dm3 ``decryptAsymmetric``: receive key of the server side of ``crypto_kx``, then decrypt.

    :class:`DecryptionError` when ``ephemPublicKey`` is missing, the key is wrong or the data was
    tampered with.
    """
    if payload.ephem_public_key is None:
        raise DecryptionError("ephemPublicKey is missing")
    ephem = b64decode(payload.ephem_public_key, length=_KEY_BYTES, what="ephemPublicKey")
    try:
        rx, _tx = sodium.crypto_kx_server_session_keys(
            key_pair.public_key_bytes, key_pair.secret_key_bytes, ephem
        )
    except CryptoError:
        raise DecryptionError("ephemPublicKey is not a usable X25519 point") from None
    return decrypt_symmetric(rx, payload, block=block)


def open_with_any(
    keys: Iterable[K], attempt: Callable[[K], T], errors: tuple[type[EnsignError], ...] = (DecryptionError,)
) -> T:
    """``attempt(key)`` with each of ``keys`` in turn until one does not raise one of ``errors``
    (a key rotation: the current key, then the others); the first key's error when none opens.

    :raises ValueError: when ``keys`` is empty.
    """
    first: EnsignError | None = None
    for key in keys:
        try:
            return attempt(key)
        except errors as exc:
            first = first or exc
    if first is None:
        raise ValueError("no key to open with")
    raise first
