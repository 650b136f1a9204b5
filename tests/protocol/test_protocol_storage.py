"""ensign.protocol.revisions and .grants against specs/vectors/storage.json (an independent writer)."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ensign.errors import DecryptionError, SchemaError, SignatureError
from ensign.protocol.canonical import stringify
from ensign.protocol.crypto import encryption_key_pair_from_seed
from ensign.protocol.grants import Grant, make_grant, unwrap_key, verify_grant, wrap_key
from ensign.protocol.revisions import (
    ChainError,
    CoSignature,
    Revision,
    check_chain,
    cosign,
    make_revision,
    revision_content,
    revision_hash,
    verify_cosignature,
    verify_revision,
)

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[2] / "specs" / "vectors" / "storage.json").read_text(encoding="utf-8")
)
OWNER = VECTORS["keys"]["owner"]
CHAIN = VECTORS["revisions"]["chain"]


@pytest.mark.parametrize("case", CHAIN, ids=["first", "next", "removal"])
def test_revisions_are_made_byte_for_byte_as_the_vectors(case: dict[str, Any]) -> None:
    wire = case["revision"]
    assert stringify(revision_content(wire["owner"], wire["namespace"], wire["key"], wire["data"], wire["links"],
                                      wire["_lastrev"])) == case["canonical"]
    made = make_revision(OWNER["privateKey"], OWNER["publicKey"], wire["owner"], wire["namespace"], wire["key"],
                         wire["data"], lastrev=wire["_lastrev"], links=wire["links"])
    assert made.to_json() == wire
    assert Revision.from_json(wire) == made
    verify_revision(made, signers={OWNER["publicKey"]})


def test_the_vector_chain_checks_and_every_break_is_named() -> None:
    chain = [Revision.from_json(case["revision"]) for case in CHAIN]
    check_chain(chain, signers={OWNER["publicKey"]})
    assert chain[-1].removed
    with pytest.raises(ChainError, match="revision 1 .* does not follow"):
        check_chain([chain[0], chain[2]])
    with pytest.raises(ChainError, match="revision 0 .* not a first revision"):
        check_chain(chain[1:])
    with pytest.raises(ChainError, match="not signed by the owner"):
        check_chain(chain, signers={VECTORS["keys"]["notary"]["publicKey"]})
    forged = replace(chain[1], data="c2VhbGVkIGV2aWw=")
    with pytest.raises(ChainError, match="revision 1 .* not the hash"):
        check_chain([chain[0], forged, chain[2]])


def test_a_revision_names_its_document_so_it_cannot_be_moved() -> None:
    first = Revision.from_json(CHAIN[0]["revision"])
    for field, value in (("key", "other"), ("namespace", "other"), ("owner", "0x" + "11" * 20)):
        with pytest.raises(SignatureError):
            verify_revision(replace(first, **{field: value}))
    assert revision_hash(first.owner, first.namespace, "other", first.data, first.links, None) != first.rev


def test_a_signature_over_another_text_is_refused() -> None:
    first = Revision.from_json(CHAIN[0]["revision"])
    other = make_revision(OWNER["privateKey"], OWNER["publicKey"], first.owner, "notes", "else", "x", lastrev=None)
    with pytest.raises(SignatureError, match="signature"):
        verify_revision(replace(first, signature=other.signature))


def test_cosignature_vector() -> None:
    vector = VECTORS["cosignature"]
    notary = VECTORS["keys"]["notary"]
    rev = CHAIN[0]["revision"]["_rev"]
    made = cosign(notary["privateKey"], notary["publicKey"], rev)
    assert made.to_json() == vector["cosignature"]
    assert verify_cosignature(rev, CoSignature.from_json(vector["cosignature"]))
    assert not verify_cosignature(CHAIN[1]["revision"]["_rev"], made)


def test_grant_vector_and_its_checks() -> None:
    vector = VECTORS["grant"]
    content = vector["content"]
    made = make_grant(OWNER["privateKey"], OWNER["publicKey"], content["owner"], content["reader"], content["namespace"],
                      content["key"], expires=content["expires"], wrapped_key=content["wrappedKey"],
                      nonce=content["nonce"])
    assert stringify(made.content()) == vector["canonical"]
    assert made.to_json() == vector["grant"]
    grant = Grant.from_json(vector["grant"])
    verify_grant(grant, signer=OWNER["publicKey"])
    with pytest.raises(SignatureError):
        verify_grant(replace(grant, expires=grant.expires + 1), signer=OWNER["publicKey"])
    with pytest.raises(SignatureError):
        verify_grant(grant, signer=VECTORS["keys"]["notary"]["publicKey"])
    assert grant.covers("notes", "anything") and grant.covers("notes", None) and not grant.covers("other", None)


def test_the_wrapped_key_opens_only_for_the_reader() -> None:
    reader = encryption_key_pair_from_seed(b"r" * 32)
    stranger = encryption_key_pair_from_seed(b"s" * 32)
    key = os.urandom(32)
    wrapped = wrap_key(reader.public_key, key)
    assert len(wrapped) < 300  # padded to 64-byte blocks, not dm3's 2 KiB
    assert unwrap_key(reader, wrapped) == key
    with pytest.raises(DecryptionError):
        unwrap_key(stranger, wrapped)


@pytest.mark.parametrize(
    "change",
    [{"owner": "0xABC"}, {"namespace": "a:b"}, {"key": ""}, {"data": 5}, {"links": ["0x12"]}, {"_lastrev": "x"},
     {"signer": "AAAA"}, {"signature": None}, {"extra": 1}],
)
def test_malformed_revisions_are_schema_errors(change: dict[str, Any]) -> None:
    with pytest.raises(SchemaError):
        Revision.from_json({**CHAIN[0]["revision"], **change})


@pytest.mark.parametrize(
    "change",
    [{"reader": "0xABC"}, {"key": "a b"}, {"expires": -1}, {"expires": 1.5}, {"wrappedKey": ""}, {"nonce": "0x12"},
     {"id": "nope"}, {"signer": 5}, {"extra": 1}],
)
def test_malformed_grants_are_schema_errors(change: dict[str, Any]) -> None:
    with pytest.raises(SchemaError):
        Grant.from_json({**VECTORS["grant"]["grant"], **change})
