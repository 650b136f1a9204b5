"""base64, hex, hashes, EIP-55 addresses and dm3 name normalisation."""

from __future__ import annotations

import binascii
import hashlib

import pytest
from eth_utils import keccak, to_checksum_address

from ensign.errors import EncodingError
from ensign.protocol.encoding import (
    b64decode,
    b64encode,
    checksum_address,
    eip191_hash,
    hex_to_bytes,
    is_address,
    keccak_hex,
    normalize_name,
    sha256_hex,
)


@pytest.mark.parametrize("size", [0, 1, 2, 3, 31, 32, 33, 64])
def test_base64_round_trip(size):
    data = bytes(range(size))
    assert b64decode(b64encode(data)) == data


@pytest.mark.parametrize(
    "text",
    ["AA", "A===", "====", "AA=A", " AAA", "AAAA\n", "AA-_", "AB==", "AAB="],
    ids=["unpadded", "overpadded", "only-padding", "inner-padding", "space", "newline", "urlsafe",
         "unused-bits-1", "unused-bits-2"],
)
def test_base64_is_strict(text):
    with pytest.raises(EncodingError):
        b64decode(text)


@pytest.mark.parametrize("quantum", ["AA{}=", "A{}=="])
def test_base64_accepts_exactly_the_canonical_last_quantum(quantum):
    # Every character in the position that carries unused bits: accepted iff the text is what
    # encoding its bytes writes back.
    for char in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/":
        text = "QUJD" + quantum.format(char)
        canonical = binascii.b2a_base64(binascii.a2b_base64(text), newline=False).decode() == text
        if canonical:
            assert b64encode(b64decode(text)) == text
        else:
            with pytest.raises(EncodingError, match="unused bits"):
                b64decode(text)


def test_base64_length_check_names_the_value():
    with pytest.raises(EncodingError, match="publicSigningKey must be base64 of exactly 32 bytes, got 31"):
        b64decode(b64encode(bytes(31)), length=32, what="publicSigningKey")


def test_base64_refuses_non_strings():
    with pytest.raises(EncodingError, match="must be a base64 string"):
        b64decode(b"AAAA")  # type: ignore[arg-type]


def test_hex_to_bytes():
    assert hex_to_bytes("0x00Ff") == b"\x00\xff"
    for bad in ["00ff", "0x0", "0xzz"]:
        with pytest.raises(EncodingError):
            hex_to_bytes(bad)
    with pytest.raises(EncodingError, match="exactly 12 bytes"):
        hex_to_bytes("0x00", length=12)


def test_sha256_hex_is_0x_lowercase_of_utf8():
    assert sha256_hex("é") == "0x" + hashlib.sha256("é".encode()).hexdigest()
    assert len(sha256_hex("")) == 66


def test_sha256_hex_refuses_lone_surrogates():
    with pytest.raises(EncodingError, match="surrogate"):
        sha256_hex("\ud800")


def test_keccak_hex_of_text_and_bytes():
    assert keccak_hex("abc") == "0x" + keccak(text="abc").hex()
    assert keccak_hex(b"\x00") == "0x" + keccak(b"\x00").hex()


def test_eip191_hash_uses_byte_length_prefix():
    text = "héllo"  # 6 bytes, 5 characters: the prefix must say 6
    body = text.encode()
    assert eip191_hash(text) == "0x" + keccak(b"\x19Ethereum Signed Message:\n6" + body).hex()


def test_checksum_address_matches_eip55():
    lower = "0x652dd52d9431844a0585c83a3ccefac96843bf08"
    assert checksum_address(lower) == to_checksum_address(lower)
    assert checksum_address(lower.upper().replace("0X", "0x")) == to_checksum_address(lower)
    assert checksum_address(to_checksum_address(lower)) == to_checksum_address(lower)


def test_checksum_address_refuses_wrong_mixed_case_and_junk():
    good = to_checksum_address("0x652dd52d9431844a0585c83a3ccefac96843bf08")
    flipped = good[:2] + good[2:].swapcase()
    with pytest.raises(EncodingError, match="checksum"):
        checksum_address(flipped)
    for bad in ["", "0x123", "652dd52d9431844a0585c83a3ccefac96843bf08", "0x" + "g" * 40]:
        with pytest.raises(EncodingError):
            checksum_address(bad)
    assert is_address(good) and not is_address(flipped) and not is_address(None)


@pytest.mark.parametrize(
    ("name", "normal"),
    [
        ("Alice.ETH", "alice.eth"),
        ("0xAbC0", "0xabc0"),
        ("-abc", "-abc"),  # ethers' ASCII shortcut does not apply the hyphen rule
        ("ab--c", "ab--c"),
        ("ÄBC.eth", "äbc.eth"),
        ("a\u200bb.eth", "ab.eth"),  # table B.1: zero-width space maps to nothing
        ("\ufb00.eth", "ff.eth"),  # NFKC
        ("ＡＢＣ.eth", "abc.eth"),  # full-width letters
        ("a" * 60, "a" * 60),
    ],
)
def test_normalize_name_matches_ethers_nameprep(name, normal):
    assert normalize_name(name) == normal


@pytest.mark.parametrize(
    "name",
    ["-abc.eth", "abc.eth-", "xn--a.eth", "-" + "a" * 60, "", "a\ue000b.eth", "a\ud800.eth"],
    ids=["leading-hyphen", "trailing-hyphen", "double-hyphen", "long-leading-hyphen", "empty",
         "private-use", "surrogate"],
)
def test_normalize_name_refusals(name):
    with pytest.raises(EncodingError):
        normalize_name(name)
