"""Encodings and hashes dm3 uses on the wire: base64, 0x-hex SHA-256, keccak, EIP-191, EIP-55, names.

Every function here is pure and raises :class:`EncodingError` for malformed input, naming what was
wrong (never echoing secret material).
"""

from __future__ import annotations

import binascii
import hashlib
import re
import stringprep
import unicodedata

from sha3 import keccak_256

from ensign.errors import EncodingError

__all__ = [
    "b64encode",
    "b64decode",
    "utf8",
    "sha256_hex",
    "keccak_hex",
    "eip191_hash",
    "eip191_digest",
    "checksum_address",
    "is_address",
    "normalize_name",
    "hex_to_bytes",
]

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_HEX_DIGITS = re.compile(r"[0-9a-fA-F]*")
_B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_BEFORE_ONE_PAD = frozenset(_B64_ALPHABET[::4])  # low 2 bits clear
_BEFORE_TWO_PADS = frozenset(_B64_ALPHABET[::16])  # low 4 bits clear


def b64encode(data: bytes) -> str:
    """Standard base64 with ``=`` padding (what ethers' ``base64.encode`` writes)."""
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def b64decode(text: str, *, length: int | None = None, what: str = "value") -> bytes:
    """Decode strict, canonical, padded standard base64.

    Refuses whitespace, the URL-safe alphabet, missing or misplaced padding, and encodings whose
    unused trailing bits are set (so each byte string has exactly one accepted text form). With
    ``length``, the decoded value must be exactly that many bytes. ``what`` names the value in the
    error message.
    """
    if not isinstance(text, str):
        raise EncodingError(f"{what} must be a base64 string, got {type(text).__name__}")
    # The length check refuses unpadded text; strict_mode refuses characters outside the
    # alphabet (whitespace, URL-safe), leading or inner padding, and data after the padding.
    if len(text) % 4 or not text.isascii():
        raise EncodingError(f"{what} is not valid padded standard base64")
    try:
        data = binascii.a2b_base64(text, strict_mode=True)
    except binascii.Error:
        raise EncodingError(f"{what} is not valid padded standard base64") from None
    if length is not None and len(data) != length:
        raise EncodingError(f"{what} must be base64 of exactly {length} bytes, got {len(data)}")
    # Non-zero unused bits in the last quantum decode fine but are not the canonical text. Before
    # "=" the last character carries 2 unused bits, before "==" 4: it must be one whose alphabet
    # index is a multiple of 4 (of 16). A set lookup: this runs on every key and signature read.
    if text.endswith("=") and (
        text[-3] not in _BEFORE_TWO_PADS if text[-2] == "=" else text[-2] not in _BEFORE_ONE_PAD
    ):
        raise EncodingError(f"{what} is not canonical base64 (unused bits are set)")
    return data


def utf8(text: str, *, what: str = "text") -> bytes:
    """UTF-8 bytes of ``text``; :class:`EncodingError` if it holds lone surrogates."""
    if not isinstance(text, str):
        raise EncodingError(f"{what} must be a string, got {type(text).__name__}")
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise EncodingError(f"{what} contains a lone UTF-16 surrogate and has no UTF-8 form") from None


def hex_to_bytes(text: str, *, length: int | None = None, what: str = "value") -> bytes:
    """Decode ``0x``-prefixed hex (either case), as ethers' ``arrayify`` does for strings."""
    if not isinstance(text, str) or not text.startswith("0x"):
        raise EncodingError(f"{what} must be a 0x-prefixed hex string")
    digits = text[2:]
    if len(digits) % 2 or not _HEX_DIGITS.fullmatch(digits):
        raise EncodingError(f"{what} is not valid even-length hex")
    data = bytes.fromhex(digits)
    if length is not None and len(data) != length:
        raise EncodingError(f"{what} must be exactly {length} bytes of hex, got {len(data)}")
    return data


def sha256_hex(text: str) -> str:
    """``"0x"`` + lowercase hex SHA-256 of the UTF-8 of ``text`` (dm3 lib-shared ``sha256``)."""
    return "0x" + hashlib.sha256(utf8(text)).hexdigest()


def _keccak(data: bytes) -> bytes:
    # safe-pysha3's keccak_256 in C: 0.7 µs per postmark hash against 5.3 µs through eth-hash's
    # pycryptodome backend (whose Python and ctypes layers cost most of it); the same digests.
    digest: bytes = keccak_256(data).digest()
    return digest


def keccak_hex(data: bytes | str) -> str:
    """``"0x"`` + hex keccak-256. A ``str`` is hashed as UTF-8 (ethers ``id``)."""
    raw = utf8(data) if isinstance(data, str) else bytes(data)
    return "0x" + _keccak(raw).hex()


def eip191_digest(text: str) -> bytes:
    """The 32-byte EIP-191 ``personal_sign`` digest of UTF-8 ``text``."""
    body = utf8(text)
    return _keccak(b"\x19Ethereum Signed Message:\n" + str(len(body)).encode("ascii") + body)


def eip191_hash(text: str) -> str:
    """ethers ``utils.hashMessage(text)``: EIP-191 digest of the UTF-8 text, as 0x-hex."""
    return "0x" + eip191_digest(text).hex()


def checksum_address(address: str) -> str:
    """EIP-55 checksummed form of a 20-byte hex address (ethers ``getAddress``).

    Accepts all-lowercase or all-uppercase hex, or mixed case that already carries a correct
    checksum; mixed case with a wrong checksum is an :class:`EncodingError`, as in ethers.
    """
    if not isinstance(address, str) or not _ADDRESS.fullmatch(address):
        raise EncodingError("address must be 0x followed by 40 hex digits")
    digits = address[2:]
    lower = digits.lower()
    digest = _keccak(lower.encode("ascii")).hex()
    checksummed = "0x" + "".join(
        ch.upper() if ch.isalpha() and int(digest[i], 16) >= 8 else ch for i, ch in enumerate(lower)
    )
    if digits != lower and digits != digits.upper() and address != checksummed:
        raise EncodingError("address has a mixed-case EIP-55 checksum that does not match")
    return checksummed


def is_address(text: object) -> bool:
    """True when :func:`checksum_address` would accept ``text``."""
    try:
        checksum_address(text)  # type: ignore[arg-type]
    except EncodingError:
        return False
    return True


# ethers' nameprep shortcut: short plain-ASCII labels skip stringprep and are only lowercased.
_ASCII_NAME = re.compile(r"[a-zA-Z0-9-]*")


def normalize_name(name: str) -> str:
    """dm3's ``normalizeEnsName``: ethers 5 ``nameprep`` (RFC 3491 over the whole string).

    * A string of ASCII letters, digits and hyphens of at most 59 characters is lowercased, nothing
      else (ethers' shortcut; note the hyphen rule is not applied on that path).
    * Otherwise: drop table B.1 characters, case-fold with table B.2, NFKC, refuse prohibited (C.*)
      and unassigned (A.1) code points, then refuse a leading or trailing ``-`` or ``--`` at
      positions 3–4 (``invalid hyphen``). Names with dots, such as ``alice.eth``, take this path.

    It is not ENSIP-15. Raises :class:`EncodingError` for empty names and every refusal above.
    """
    if not isinstance(name, str):
        raise EncodingError(f"name must be a string, got {type(name).__name__}")
    if not name:
        raise EncodingError("name is empty")
    # ethers measures length in UTF-16 code units; for ASCII that equals len().
    if len(name) <= 59 and _ASCII_NAME.fullmatch(name):
        return name.lower()
    utf8(name, what="name")
    mapped = "".join(
        stringprep.map_table_b2(ch)
        for ch in name
        if not stringprep.in_table_b1(ch) and not "\ufe00" <= ch <= "\ufe0f"
    )
    result = unicodedata.normalize("NFKC", mapped)
    for ch in result:
        if _prohibited(ch):
            raise EncodingError(f"name contains a prohibited character U+{ord(ch):04X}")
    for ch in result:
        if stringprep.in_table_a1(ch):
            raise EncodingError(f"name contains an unassigned code point U+{ord(ch):04X}")
    if result.startswith("-") or result.endswith("-") or result[2:4] == "--":
        raise EncodingError("name has an invalid hyphen (leading, trailing, or '--' at 3-4)")
    if not result:
        raise EncodingError("name is empty after normalisation")
    return result


def _prohibited(ch: str) -> bool:
    return (
        stringprep.in_table_c12(ch)
        or stringprep.in_table_c22(ch)
        or stringprep.in_table_c3(ch)
        or stringprep.in_table_c4(ch)
        or stringprep.in_table_c5(ch)
        or stringprep.in_table_c6(ch)
        or stringprep.in_table_c7(ch)
        or stringprep.in_table_c8(ch)
        or stringprep.in_table_c9(ch)
    )
