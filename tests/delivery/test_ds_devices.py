"""The device routes of the delivery service (issue 14, point 4): a wallet-signed device list
(``PUT /account/<name>/devices``), login per device, the rules of the list, and sessions that end
with their device."""

from __future__ import annotations

from typing import Any

import jwt

from tests.delivery.ds_helpers import (  # noqa: F401  (fixtures)
    DS_URL,
    User,
    bearer,
    chain,
    clock,
    directory,
    ds_client,
    ds_settings,
    login,
    signup,
    users,
)

from delivery.schemas import MAX_DEVICES
from ensign.protocol.canonical import stringify
from ensign.protocol.crypto import SigningKeyPair, sign
from ensign.protocol.keys import personal_sign, random_signing_key_pair


def device_list(user: User, timestamp: int, devices: dict[str, str], *, wallet_key: str | None = None,
                name: str | None = None) -> dict[str, Any]:
    """A device list message signed by the wallet (EIP-191)."""
    message = {"deliveryService": DS_URL, "ensName": name or user.name, "timestamp": timestamp,
               "topic": "setDevices", "devices": [{"id": i, "publicSigningKey": k} for i, k in devices.items()]}
    return {"message": message, "signature": personal_sign(wallet_key or user.private_key, stringify(message))}


async def device_login(client: Any, user: User, device: str, key: SigningKeyPair) -> Any:
    challenge = await (await client.get(f"/auth/{user.name}")).json()
    return await client.post(
        f"/auth/{user.name}", json={"challenge": challenge, "signature": sign(key.secret_key, challenge), "device": device}
    )


async def test_a_device_logs_in_with_its_own_key_and_the_profile_key_only_when_listed(ds_client, users, clock) -> None:
    alice = users[0]
    await signup(ds_client, alice)
    profile_token = await login(ds_client, alice)
    laptop = random_signing_key_pair()
    clock.advance(1)
    resp = await ds_client.put(f"/account/{alice.name}/devices", json=device_list(alice, clock.ms, {"laptop": laptop.public_key}))
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["devices"] == [{"id": "laptop", "publicSigningKey": laptop.public_key, "since": clock.ms}]

    # The session made before the list ends; the profile key is not listed, so it cannot log in.
    resp = await ds_client.get(f"/account/{alice.name}", headers=bearer(profile_token))
    assert (resp.status, (await resp.json())["error"]) == (401, "session_stale")
    challenge = await (await ds_client.get(f"/auth/{alice.name}")).json()
    resp = await ds_client.post(
        f"/auth/{alice.name}", json={"challenge": challenge, "signature": sign(alice.keys.signing.secret_key, challenge)}
    )
    assert (resp.status, (await resp.json())["error"]) == (403, "device_not_listed")

    # The device logs in with its key; another key, or an unlisted id, does not.
    resp = await device_login(ds_client, alice, "laptop", random_signing_key_pair())
    assert (resp.status, (await resp.json())["error"]) == (401, "invalid_signature")
    resp = await device_login(ds_client, alice, "phone", laptop)
    assert (resp.status, (await resp.json())["error"]) == (403, "device_not_listed")
    resp = await device_login(ds_client, alice, "laptop", laptop)
    assert resp.status == 200
    token = await resp.json()
    resp = await ds_client.get(f"/account/{alice.name}/devices", headers=bearer(token))
    assert (await resp.json())["device"] == "laptop"

    # Listing the profile key lets it log in again, as that device; the laptop keeps its session.
    clock.advance(1)
    devices = {"laptop": laptop.public_key, "profile": alice.keys.signing.public_key}
    assert (await ds_client.put(f"/account/{alice.name}/devices", json=device_list(alice, clock.ms, devices))).status == 200
    assert (await ds_client.get(f"/account/{alice.name}", headers=bearer(token))).status == 200
    profile_token = await login(ds_client, alice)
    resp = await ds_client.get(f"/account/{alice.name}/devices", headers=bearer(profile_token))
    assert (await resp.json())["device"] == "profile"

    # Re-keying the laptop's id ends its session; removing the list ends every device's session
    # and the profile key logs in as before.
    clock.advance(1)
    devices["laptop"] = random_signing_key_pair().public_key
    assert (await ds_client.put(f"/account/{alice.name}/devices", json=device_list(alice, clock.ms, devices))).status == 200
    assert (await ds_client.get(f"/account/{alice.name}", headers=bearer(token))).status == 401
    assert (await ds_client.get(f"/account/{alice.name}", headers=bearer(profile_token))).status == 200
    clock.advance(1)
    assert (await ds_client.put(f"/account/{alice.name}/devices", json=device_list(alice, clock.ms, {}))).status == 200
    assert (await ds_client.get(f"/account/{alice.name}", headers=bearer(profile_token))).status == 401
    token = await login(ds_client, alice)
    assert (await (await ds_client.get(f"/account/{alice.name}/devices", headers=bearer(token))).json()) == {
        "updatedAt": 0, "devices": [], "device": None,
    }


async def test_device_list_rules(ds_client, users, clock) -> None:
    alice, bob = users[0], users[1]
    await signup(ds_client, alice)
    key = random_signing_key_pair().public_key
    clock.advance(1)
    too_many = {f"d{i}": random_signing_key_pair().public_key for i in range(MAX_DEVICES + 1)}
    cases = [
        (device_list(alice, clock.ms, {"laptop": key}, wallet_key=bob.private_key), 400, "invalid_signature"),
        (device_list(alice, clock.ms, too_many), 400, "invalid_message"),
        (device_list(alice, clock.ms, {"laptop": key, "phone": key}), 400, "invalid_message"),
        (device_list(alice, clock.ms, {"a,b": key}), 400, "invalid_message"),
        (device_list(alice, clock.ms, {"laptop": "AAAA"}), 400, "invalid_message"),
        (device_list(alice, clock.ms - 301_000, {"laptop": key}), 403, "stale_message"),
        (device_list(alice, clock.ms, {"laptop": key}, name=bob.name), 403, "wrong_account"),
        (device_list(alice, clock.ms - 2000, {"laptop": key}), 409, "stale_message"),  # before the account
    ]
    for body, status, code in cases:
        resp = await ds_client.put(f"/account/{alice.name}/devices", json=body)
        assert (resp.status, (await resp.json())["error"]) == (status, code), body
    body = device_list(alice, clock.ms, {"laptop": key})
    assert (await ds_client.put(f"/account/{alice.name}/devices", json=body)).status == 200
    # A replay, or an older list, is refused.
    resp = await ds_client.put(f"/account/{alice.name}/devices", json=body)
    assert (resp.status, (await resp.json())["error"]) == (409, "stale_message")
    resp = await ds_client.put(f"/account/{bob.name}/devices", json=device_list(bob, clock.ms, {"laptop": key}))
    assert (resp.status, (await resp.json())["error"]) == (404, "no_account")
    # Reading the list needs a session.
    assert (await ds_client.get(f"/account/{alice.name}/devices")).status == 401


async def test_device_claims_and_fields_must_be_whole(ds_client, users, ds_settings, clock) -> None:
    alice = users[0]
    await signup(ds_client, alice)
    now = int(clock.now)
    claims = {"account": alice.name, "addr": alice.address, "gen": clock.ms, "iat": now, "nbf": now,
              "exp": now + 60, "kind": "session"}
    for extra in ({"dev": "laptop"}, {"dev": "", "dgen": 1}, {"dev": "laptop", "dgen": "1"}, {"dgen": 1}):
        token = jwt.encode({**claims, **extra}, ds_settings.jwt_secret, algorithm="HS256")
        resp = await ds_client.get(f"/account/{alice.name}", headers=bearer(token))
        assert (resp.status, (await resp.json())["error"]) == (401, "session_invalid"), extra
    challenge = await (await ds_client.get(f"/auth/{alice.name}")).json()
    for device in ("", "a" * 33, "lap top", 7):
        resp = await ds_client.post(
            f"/auth/{alice.name}", json={"challenge": challenge, "signature": "x", "device": device}
        )
        assert (resp.status, (await resp.json())["error"]) == (400, "invalid_schema"), device
