"""Profile signature, data URIs, link hashes and the text-record matrix."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

import pytest
from eth_account import Account

from ensign.errors import EncodingError, SchemaError, SignatureError
from ensign.protocol.canonical import stringify
from ensign.protocol.encoding import sha256_hex
from ensign.protocol.keys import profile_keys_from_wallet, recover_personal_sign
from ensign.protocol.models import DeliveryServiceProfile, SignedUserProfile, UserProfile
from ensign.protocol.profile import (
    IPFS_GATEWAY,
    ParsedProfile,
    ProfileLink,
    check_linked_delivery_service_profile,
    check_linked_profile,
    load_delivery_service_profile,
    load_user_profile,
    parse_profile_record,
    profile_creation_message,
    profile_hash,
    profile_json_data_uri,
    sign_profile,
    verify_profile,
)

WALLET = Account.create()
KEYS = profile_keys_from_wallet(WALLET.key.hex())
PROFILE = UserProfile(KEYS.encryption.public_key, KEYS.signing.public_key, ("ds.eth",))
SIGNED = sign_profile(WALLET.key.hex(), PROFILE)
DS = DeliveryServiceProfile(KEYS.encryption.public_key, KEYS.signing.public_key, "https://ds.example/a%20b")


def test_profile_creation_message_text():
    message = profile_creation_message(WALLET.address.lower(), PROFILE)
    assert message.split("\n") == [
        "dm3.chat wants you register your dm3 profile with your Ethereum account:",
        WALLET.address,
        "",
        "This is required only once!",
        "(There is no paid transaction initiated. The signature is used off-chain only.)",
        "",
        "URI: https://dm3.chat",
        "Version: 1",
        "dm3 Profile: " + stringify(PROFILE.to_json()),
    ]
    assert message.endswith('"publicSigningKey":"' + PROFILE.public_signing_key + '"}')


def test_sign_and_verify_profile():
    assert recover_personal_sign(profile_creation_message(WALLET.address, PROFILE), SIGNED.signature) == WALLET.address
    assert verify_profile(SIGNED, WALLET.address)
    assert verify_profile(SIGNED, WALLET.address.lower())
    assert not verify_profile(SIGNED, Account.create().address)


def test_verify_profile_detects_a_changed_profile():
    moved = SignedUserProfile(UserProfile(PROFILE.public_encryption_key, PROFILE.public_signing_key, ("evil.eth",)),
                              SIGNED.signature)
    assert not verify_profile(moved, WALLET.address)


def test_verify_profile_with_garbage_signature_is_false():
    assert not verify_profile(SignedUserProfile(PROFILE, "0x" + "00" * 65), WALLET.address)


def test_data_uri_and_hash():
    uri = profile_json_data_uri(SIGNED)
    assert uri == "data:application/json," + stringify(SIGNED.to_json())
    assert profile_hash(SIGNED) == sha256_hex(stringify(SIGNED.to_json()))
    assert profile_json_data_uri(DS).endswith('"url":"https://ds.example/a%20b"}')


# --- the record matrix -----------------------------------------------------------------------

SIGNED_JSON = SIGNED.to_json()
SIGNED_TEXT = stringify(SIGNED_JSON)
UNICODE = {"profile": {**SIGNED_JSON["profile"], "deliveryServices": ["dś.eth"]}, "signature": SIGNED.signature}
UNICODE_TEXT = stringify(UNICODE)


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ("data:application/json," + SIGNED_TEXT, SIGNED_JSON),
        ("data:application/json;charset=utf-8," + SIGNED_TEXT, SIGNED_JSON),
        ("DATA:Application/JSON," + SIGNED_TEXT, SIGNED_JSON),
        ("data:application/json," + UNICODE_TEXT, UNICODE),  # raw non-ASCII (dm3 itself breaks here)
        ("data:application/json," + quote(SIGNED_TEXT, safe=""), SIGNED_JSON),
        ("data:application/json," + quote(UNICODE_TEXT, safe=""), UNICODE),
        ("data:application/json;base64," + base64.b64encode(UNICODE_TEXT.encode()).decode(), UNICODE),
        ("data:application/json;charset=utf-8;base64," + base64.b64encode(SIGNED_TEXT.encode()).decode(), SIGNED_JSON),
        ("data:application/json;base64," + quote(base64.b64encode(SIGNED_TEXT.encode()).decode(), safe=""), SIGNED_JSON),
        ("data:application/json;charset=iso-8859-1," + quote(json.dumps({"a": "é"}).encode("latin-1"), safe=""), {"a": "é"}),
        (SIGNED_TEXT, SIGNED_JSON),  # raw JSON, as dm3's DS installers publish
        ("  " + json.dumps(SIGNED_JSON, indent=2) + "\n", SIGNED_JSON),
        ('data:application/json,{"url":"https://x/%41"}', {"url": "https://x/%41"}),  # not decoded
    ],
    ids=["plain", "charset", "case", "raw-unicode", "percent", "percent-unicode", "base64", "charset-base64",
         "percent-base64", "latin1", "raw-json", "raw-json-pretty", "percent-literal-in-json"],
)
def test_record_forms_that_hold_the_json(record, expected):
    parsed = parse_profile_record(record)
    assert parsed == ParsedProfile(expected)


@pytest.mark.parametrize(
    ("record", "match"),
    [
        ("data:text/plain," + SIGNED_TEXT, "mime type text/plain"),
        ("data:application/xml,<a/>", "mime type application/xml"),
        ("data:application/json;base64,@@@", "not base64"),
        ("data:application/json;gzip," + SIGNED_TEXT, "unknown encoding"),
        ("data:application/json;charset=nope," + SIGNED_TEXT, "unknown charset"),
        ("data:application/json,[1,2]", "JSON object"),
        ("data:application/json,{broken", "not valid JSON"),
        ("data:application/json", "well-formed"),
        ("ftp://example.com/profile.json", "neither"),
        ("hello", "neither"),
        ("", "empty"),
        ("{broken", "not valid JSON"),
        ("https:///nohost", "no host"),
        ("ipfs://", "content id"),
    ],
)
def test_record_refusals(record, match):
    with pytest.raises(EncodingError, match=match):
        parse_profile_record(record)


def test_link_records():
    digest = profile_hash(SIGNED)
    link = parse_profile_record(f"https://profiles.example/alice.json?x=1&dm3Hash={digest}")
    assert link == ProfileLink(url=f"https://profiles.example/alice.json?x=1&dm3Hash={digest}", dm3_hash=digest)
    assert parse_profile_record("http://h/p.json") == ProfileLink("http://h/p.json", None)
    assert parse_profile_record("ipfs://bafyabc") == ProfileLink(IPFS_GATEWAY + "bafyabc", None, kind="ipfs")


def test_check_linked_profile():
    link = ProfileLink("https://h/p", profile_hash(SIGNED))
    assert check_linked_profile(SIGNED_JSON, link) == SIGNED
    with pytest.raises(SignatureError, match="dm3Hash"):
        check_linked_profile(UNICODE, link)  # a different (valid) profile
    with pytest.raises(SignatureError, match="no dm3Hash"):
        check_linked_profile(SIGNED_JSON, ProfileLink("https://h/p", None))
    with pytest.raises(SchemaError):
        check_linked_profile({"profile": SIGNED_JSON["profile"]}, link)
    assert check_linked_profile(SIGNED_JSON, ProfileLink(IPFS_GATEWAY + "cid", None, "ipfs")) == SIGNED


def test_check_linked_delivery_service_profile():
    link = ProfileLink("https://h/ds", profile_hash(DS.to_json()))
    assert check_linked_delivery_service_profile(DS.to_json(), link) == DS
    with pytest.raises(SignatureError):
        check_linked_delivery_service_profile({**DS.to_json(), "url": "https://evil"}, link)


def test_loaders_validate():
    assert load_user_profile(SIGNED_JSON) == SIGNED
    assert load_delivery_service_profile(DS.to_json()) == DS
    with pytest.raises(SchemaError, match="publicSigningKey"):
        load_delivery_service_profile({**DS.to_json(), "publicSigningKey": "AAAA"})


def test_data_uri_round_trip_through_the_parser():
    parsed = parse_profile_record(profile_json_data_uri(SIGNED))
    assert isinstance(parsed, ParsedProfile)
    assert load_user_profile(parsed.value) == SIGNED
