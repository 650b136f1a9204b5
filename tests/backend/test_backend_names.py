"""Name sorting (backend.names) and the signed claim texts and time window (backend.claims)."""

from __future__ import annotations

import pytest

from backend.claims import (
    WINDOW_MS,
    check_timestamp,
    claim_digest,
    claim_text,
    release_text,
    timestamped_claim_text,
    timestamped_release_text,
)
from backend.names import AddressName, AliasName, Domains
from ensign.errors import InvalidRequest
from ensign.protocol.encoding import checksum_address

ADDRESS = "0x" + "ab" * 20
DOMAINS = Domains(("addr.ensign.eth",), ("user.ensign.eth", "team.example.eth"))


def test_parse_address_names_and_aliases():
    parsed = DOMAINS.parse(f"{ADDRESS}.addr.ensign.eth")
    assert isinstance(parsed, AddressName)
    assert parsed.address == checksum_address(ADDRESS)
    assert parsed.domain == "addr.ensign.eth"
    alias = DOMAINS.parse("bob.team.example.eth")
    assert alias == AliasName("bob.team.example.eth", "bob", "team.example.eth")


@pytest.mark.parametrize(
    "name",
    ["addr.ensign.eth", "alice.addr.ensign.eth", "0x1234.addr.ensign.eth", "bob.eth", "a.b.user.ensign.eth", ".user.ensign.eth"],
)
def test_parse_refuses_what_is_neither(name):
    assert DOMAINS.parse(name) is None


def test_addr_domain_accepts_dm3_spellings_and_names_the_unsupported_one():
    assert DOMAINS.addr_domain("addr.ensign.eth") == "addr.ensign.eth"
    assert DOMAINS.addr_domain(".ADDR.ensign.eth") == "addr.ensign.eth"
    with pytest.raises(InvalidRequest, match="addr.dm3.eth") as info:
        DOMAINS.addr_domain("addr.dm3.eth")
    assert info.value.code == "unsupported_domain"


def test_alias_validation():
    assert DOMAINS.alias("Alice.user.ensign.eth").name == "alice.user.ensign.eth"
    with pytest.raises(InvalidRequest) as info:
        DOMAINS.alias("x.y.user.ensign.eth")
    assert info.value.code == "invalid_name" and "user.ensign.eth" in info.value.message
    with pytest.raises(InvalidRequest) as info:
        DOMAINS.alias("alice.eth")
    assert info.value.code == "unsupported_domain"


def test_alias_that_looks_like_an_address_name_is_refused_when_domains_overlap():
    shared = Domains(("names.eth",), ("names.eth",))
    assert isinstance(shared.parse(f"{ADDRESS}.names.eth"), AddressName)
    with pytest.raises(InvalidRequest, match="address name"):
        shared.alias(f"{ADDRESS}.names.eth")
    assert shared.alias("alice.names.eth").label == "alice"


def test_claim_texts_are_exact():
    assert claim_text("a.user.ensign.eth", "n", None, 0).text == "alias: a.user.ensign.eth"
    assert release_text("a.user.ensign.eth", None, 0).text == "remove: a.user.ensign.eth"
    assert timestamped_claim_text("a.user.ensign.eth", "0xab.addr.ensign.eth", 1700000000000) == (
        "Ensign alias claim\nName: a.user.ensign.eth\nAddress name: 0xab.addr.ensign.eth\nTimestamp: 1700000000000"
    )
    assert timestamped_release_text("a.user.ensign.eth", 5) == "Ensign alias release\nName: a.user.ensign.eth\nTimestamp: 5"


def test_dm3_form_is_remembered_for_ever_and_timestamped_form_until_its_window_ends():
    now = 1_700_000_000_000
    dm3 = claim_text("a.u.eth", "n", None, now)
    assert (dm3.timestamped, dm3.remember_ms) == (False, 0)
    timed = claim_text("a.u.eth", "n", now - 1000, now)
    assert timed.timestamped and timed.remember_ms == WINDOW_MS - 1000 + 1000
    assert release_text("a.u.eth", now + WINDOW_MS, now).remember_ms == 2 * WINDOW_MS + 1000


@pytest.mark.parametrize("offset", [WINDOW_MS + 1, -(WINDOW_MS + 1)])
def test_timestamps_outside_the_window_are_refused(offset):
    now = 1_700_000_000_000
    with pytest.raises(InvalidRequest) as info:
        check_timestamp(now + offset, now)
    assert info.value.code == "stale_timestamp"
    assert check_timestamp(now + offset - (1 if offset > 0 else -1), now) > 0


def test_claim_digest_depends_on_key_and_text_only():
    assert claim_digest("k", "t") == claim_digest("k", "t")
    assert claim_digest("k", "t") != claim_digest("k2", "t")
    assert claim_digest("k", "t") != claim_digest("k", "t2")
