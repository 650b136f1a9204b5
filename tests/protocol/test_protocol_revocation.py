"""The wallet-signed list of revoked signing keys and the delivery service's other-keys record."""

from __future__ import annotations

import base64
import secrets

import pytest
from eth_account import Account

from ensign.errors import EncodingError, SchemaError
from ensign.protocol.ds_keys import delivery_service_keys_record, parse_delivery_service_keys_record
from ensign.protocol.revocation import (
    KeyRevokedError,
    RevocationList,
    RevokedKey,
    check_not_revoked,
    extends,
    merge_revocations,
    parse_revocation_record,
    revocation_message,
    revocation_record,
    sign_revocations,
    verify_revocations,
)

WALLET = "0x" + "11" * 32
ADDRESS = Account.from_key(WALLET).address


def key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def test_a_signed_list_verifies_for_its_address_only_and_survives_its_record() -> None:
    signed = sign_revocations(WALLET, [RevokedKey(key(), 1000), RevokedKey(key(), 2000)])
    assert signed.address == ADDRESS and verify_revocations(signed, ADDRESS)
    assert not verify_revocations(signed, Account.create().address)
    assert parse_revocation_record(revocation_record(signed)) == signed
    assert revocation_message(ADDRESS, signed.revoked).startswith("Ensign: revoke dm3 profile signing keys\nAddress: ")
    # Any change of an entry breaks the signature: nobody but the wallet edits the list.
    changed = RevocationList(signed.address, (RevokedKey(signed.revoked[0].public_signing_key, 999), signed.revoked[1]), signed.signature)
    assert not verify_revocations(changed, ADDRESS)
    # Another wallet's list claiming this address does not verify either.
    forged = sign_revocations("0x" + "22" * 32, signed.revoked)
    assert not verify_revocations(RevocationList(ADDRESS, forged.revoked, forged.signature), ADDRESS)


def test_a_key_is_refused_from_its_revocation_time_on() -> None:
    revoked_key = key()
    revoked = {revoked_key: 5000}
    check_not_revoked(revoked, revoked_key, 4999)
    check_not_revoked(revoked, key(), 10**13)
    for at in (5000, 5001):
        with pytest.raises(KeyRevokedError) as refused:
            check_not_revoked(revoked, revoked_key, at)
        assert refused.value.code == "key_revoked" and refused.value.status == 400


def test_lists_merge_with_the_earliest_time_and_a_newer_list_must_keep_every_entry() -> None:
    a, b = key(), key()
    older = sign_revocations(WALLET, [RevokedKey(a, 3000)])
    newer = sign_revocations(WALLET, [RevokedKey(a, 3000), RevokedKey(b, 4000)])
    assert merge_revocations([newer, sign_revocations(WALLET, [RevokedKey(a, 1000)])]) == {a: 1000, b: 4000}
    assert extends(older, newer)
    assert not extends(newer, older)
    assert not extends(older, sign_revocations(WALLET, [RevokedKey(a, 3001), RevokedKey(b, 4000)]))


@pytest.mark.parametrize(
    "obj",
    [
        [],
        {"address": ADDRESS, "revoked": [], "signature": "0x"},
        {"address": ADDRESS, "revoked": [{"publicSigningKey": "AA==", "revokedAt": 1}], "signature": "0x"},
        {"address": ADDRESS, "revoked": [{"publicSigningKey": "A" * 43 + "=", "revokedAt": -1}], "signature": "0x"},
        {"address": ADDRESS, "revoked": [{"publicSigningKey": "A" * 43 + "=", "revokedAt": True}], "signature": "0x"},
        {"address": ADDRESS, "revoked": [{"publicSigningKey": "A" * 43 + "=", "revokedAt": 1}] * 2, "signature": "0x"},
        {"address": ADDRESS, "revoked": [{"publicSigningKey": "A" * 43 + "=", "revokedAt": 1}], "signature": "0x", "x": 1},
        {"address": ADDRESS, "revoked": [{"publicSigningKey": key(), "revokedAt": 1}] * 101, "signature": "0x"},
    ],
)
def test_malformed_lists_are_refused_naming_the_problem(obj: object) -> None:
    with pytest.raises((SchemaError, EncodingError)):
        RevocationList.from_json(obj)


def test_a_revocation_record_holds_its_list_not_a_link() -> None:
    with pytest.raises(EncodingError):
        parse_revocation_record("https://example.com/list.json?dm3Hash=0x00")


def test_the_delivery_service_keys_record() -> None:
    keys = (key(), key())
    assert parse_delivery_service_keys_record(delivery_service_keys_record(keys)) == keys
    assert parse_delivery_service_keys_record('{"publicSigningKeys":[]}') == ()
    for bad in ('{"publicSigningKeys":["AA=="]}', '{"keys":[]}', '{"publicSigningKeys":[1]}', "ipfs://x"):
        with pytest.raises((SchemaError, EncodingError)):
            parse_delivery_service_keys_record(bad)
