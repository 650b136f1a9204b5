"""The gateway feed ``GET /records/{name}``: the contract in /work/notes/profiles-design.md."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from ensign.protocol.canonical import stringify
from ensign.protocol.profile import parse_profile_record, profile_json_data_uri, verify_profile

ALIAS = "alice.user.ensign.eth"


async def register(client, wallet, signed=None):
    signed = signed or wallet.profile()
    response = await client.post("/profile/address", json=wallet.register_body(signed))
    assert response.status == 200
    return signed


async def test_records_of_an_address_name(client, alice):
    signed = await register(client, alice)
    response = await client.get(f"/records/{alice.address_name}")
    assert response.status == 200
    body = await response.json()
    assert body == {
        "name": alice.address_name,
        "address": alice.address,
        "texts": {"network.dm3.profile": "data:application/json," + stringify(signed.to_json())},
        "contenthash": None,
    }
    assert body["texts"]["network.dm3.profile"] == profile_json_data_uri(signed)


async def test_published_profile_verifies_against_the_published_address(client, alice):
    await register(client, alice)
    body = await (await client.get(f"/records/{alice.address_name}")).json()
    record = parse_profile_record(body["texts"]["network.dm3.profile"])
    from ensign.protocol.models import SignedUserProfile

    assert verify_profile(SignedUserProfile.from_json(record.value), body["address"])


async def test_records_of_an_alias_carry_the_owners_current_profile(client, alice):
    await register(client, alice, alice.profile("ds1.ensign.eth"))
    assert (await client.post("/profile/name", json=alice.dm3_claim(ALIAS))).status == 200
    newer = await register(client, alice, alice.profile("ds2.ensign.eth"))
    response = await client.get(f"/records/{ALIAS}")
    assert response.status == 200
    body = await response.json()
    assert body["name"] == ALIAS
    assert body["address"] == alice.address
    assert body["texts"] == {"network.dm3.profile": profile_json_data_uri(newer)}
    assert body["contenthash"] is None


async def test_records_normalise_the_name(client, alice):
    await register(client, alice)
    response = await client.get(f"/records/{alice.address.upper().replace('0X', '0x')}.ADDR.ensign.eth")
    assert response.status == 200
    assert (await response.json())["name"] == alice.address_name


@pytest.mark.parametrize(
    "name",
    [
        "nobody.user.ensign.eth",
        "0x" + "1" * 40 + ".addr.ensign.eth",
        "addr.ensign.eth",
        "user.ensign.eth",
        "vitalik.eth",
        "0x1234.addr.ensign.eth",
        quote("a\U0001f44d.user.ensign.eth"),
        quote("--.user.ensign.eth"),
    ],
)
async def test_unknown_or_invalid_names_are_404(client, alice, name):
    await register(client, alice)
    response = await client.get(f"/records/{name}")
    assert response.status == 404
    body = await response.json()
    assert body["error"] == "not_found"
    assert body["message"]


async def test_released_alias_is_404(client, alice):
    await register(client, alice)
    await client.post("/profile/name", json=alice.dm3_claim(ALIAS))
    assert (await client.get(f"/records/{ALIAS}")).status == 200
    await client.post("/profile/deleteName", json=alice.dm3_release(ALIAS))
    assert (await client.get(f"/records/{ALIAS}")).status == 404


async def test_address_name_under_an_unregistered_domain_is_404(client, alice):
    await register(client, alice)
    # A user domain never holds address names, even for a registered address.
    assert (await client.get(f"/records/{alice.address.lower()}.user.ensign.eth")).status == 404


async def test_the_gateways_record_source_reads_the_feed(client, alice):
    # The reader the gateway uses, against the real backend: the contract seen from both sides.
    from resolver.records import BackendRecordSource

    signed = await register(client, alice)
    await client.post("/profile/name", json=alice.dm3_claim(ALIAS))
    source = BackendRecordSource(str(client.server.make_url("/")))
    try:
        for name in (alice.address_name, ALIAS):
            records = await source.records(name)
            assert records is not None
            assert records.name == name
            assert records.address == alice.address
            assert dict(records.texts) == {"network.dm3.profile": profile_json_data_uri(signed)}
            assert records.contenthash is None
        assert await source.records("nobody.user.ensign.eth") is None
    finally:
        await source.close()
