"""``POST``/``GET /revocations/{address}`` and the records feed's ``eth.ensign.revokedKeys``."""

from __future__ import annotations

import base64
import secrets
from typing import Any

from ensign.protocol.revocation import RevokedKey, revocation_record, sign_revocations
from tests.wallets import Wallet

ALIAS = "alice.user.ensign.eth"


def key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


async def test_a_stored_list_is_served_on_every_name_of_the_address(client: Any, alice: Wallet) -> None:
    assert (await client.post("/profile/address", json=alice.register_body())).status == 200
    assert (await client.post("/profile/name", json=alice.dm3_claim(ALIAS))).status == 200
    assert (await client.get(f"/revocations/{alice.address}")).status == 404
    assert "eth.ensign.revokedKeys" not in (await (await client.get(f"/records/{ALIAS}")).json())["texts"]

    listed = sign_revocations(alice.private_key, [RevokedKey(key(), 1000)])
    response = await client.post(f"/revocations/{alice.address.lower()}", json=listed.to_json())
    assert response.status == 200
    assert await response.json() == {"address": alice.address, "revoked": 1, "status": "stored"}
    again = await client.post(f"/revocations/{alice.address}", json=listed.to_json())
    assert (await again.json())["status"] == "unchanged"
    assert await (await client.get(f"/revocations/{alice.address}")).json() == listed.to_json()
    for name in (alice.address_name, ALIAS):
        texts = (await (await client.get(f"/records/{name}")).json())["texts"]
        assert texts["eth.ensign.revokedKeys"] == revocation_record(listed)

    longer = sign_revocations(alice.private_key, [*listed.revoked, RevokedKey(key(), 2000)])
    assert (await (await client.post(f"/revocations/{alice.address}", json=longer.to_json())).json())["revoked"] == 2


async def test_refusals_change_nothing(client: Any, alice: Wallet, bob: Wallet) -> None:
    listed = sign_revocations(alice.private_key, [RevokedKey(key(), 1000)])
    no_profile = await client.post(f"/revocations/{alice.address}", json=listed.to_json())
    assert (no_profile.status, (await no_profile.json())["error"]) == (404, "not_found")
    assert (await client.post("/profile/address", json=alice.register_body())).status == 200
    cases = [
        (f"/revocations/{bob.address}", listed.to_json(), 400, "invalid_address"),
        ("/revocations/0x12", listed.to_json(), 400, "invalid_address"),
        (f"/revocations/{alice.address}", {**listed.to_json(), "revoked": []}, 400, "invalid_schema"),
        (f"/revocations/{alice.address}", {**listed.to_json(), "signature": "0x" + "00" * 65}, 400, "invalid_signature"),
    ]
    for path, body, status, code in cases:
        response = await client.post(path, json=body)
        assert (response.status, (await response.json())["error"]) == (status, code), path
    assert (await client.get(f"/revocations/{alice.address}")).status == 404
