"""dm3's conversation storage (``/storage/new/{ensName}/…``) with the bodies dm3's BackendConnector sends."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.backend.backend_helpers import Wallet
from tests.backend.storage_helpers import login, register

from backend.conversations import stored_message_id
from ensign.protocol.crypto import sign


def base(wallet: Wallet) -> str:
    return f"/storage/new/{wallet.address_name}"


def record(message_id: str, created_at: int, container: str = "Y29udGFpbmVy", halted: bool = False) -> dict[str, Any]:
    return {"messageId": message_id, "createdAt": created_at, "encryptedEnvelopContainer": container, "isHalted": halted}


async def test_dm3_sign_up_and_login_as_its_client_does(client: Any, alice: Wallet) -> None:
    await register(client, alice)
    # ServerSideConnector: GET /profile/<name> says whether the account exists; POST signs up.
    exists = await client.get(f"/profile/{alice.address_name}")
    assert exists.status == 200 and (await exists.json()) == alice.profile().to_json()
    signed_up = await client.post(f"/profile/{alice.address_name}", json=alice.profile().to_json())
    assert signed_up.status == 200 and isinstance(await signed_up.json(), str)
    # reAuth: GET /auth → challenge string, POST {signature, challenge} → token string.
    url = f"/auth/{alice.address_name}"
    challenge = await (await client.get(url)).json()
    signature = sign(alice.keys.signing.secret_key, challenge)
    token = await (await client.post(url, json={"signature": signature, "challenge": challenge})).json()
    assert isinstance(token, str)
    replay = await client.post(url, json={"signature": signature, "challenge": challenge})
    assert replay.status == 401 and (await replay.json())["error"] == "challenge_replayed"
    count = await client.get(base(alice) + "/getNumberOfConversations", headers={"Authorization": f"Bearer {token}"})
    assert (await count.json()) == 0
    # The sign-up answer is a challenge, not a session: dm3's interceptor then logs in.
    as_token = {"Authorization": f"Bearer {await signed_up.json()}"}
    assert (await client.get(base(alice) + "/getNumberOfConversations", headers=as_token)).status == 401


async def test_sign_up_with_another_profile_is_refused(client: Any, alice: Wallet, bob: Wallet) -> None:
    await register(client, alice)
    answer = await client.post(f"/profile/{alice.address_name}", json=bob.profile().to_json())
    assert answer.status == 400 and (await answer.json())["error"] == "profile_not_registered"


async def test_conversations_and_messages_in_dm3_shapes(client: Any, alice: Wallet) -> None:
    await register(client, alice)
    h = await login(client, alice)
    url = base(alice)
    assert (await client.post(url + "/addConversation", json={"encryptedContactName": "bob-enc",
                                                              "encryptedProfileLocation": "loc-1"}, headers=h)).status == 200
    assert (await client.post(url + "/addConversation", json={"encryptedContactName": "carol-enc"}, headers=h)).status == 200
    added = await client.post(url + "/addMessage", headers=h, json={
        "encryptedContactName": "bob-enc", "messageId": "m1", "createdAt": 1000,
        "encryptedEnvelopContainer": "c1", "isHalted": False})
    assert added.status == 200, await added.text()
    batch = await client.post(url + "/addMessageBatch", headers=h, json={
        "encryptedContactName": "bob-enc",
        "messageBatch": [record("m2", 2000, "c2"), record("m2", 2000, "c2-dup"), record("m3", 3000, "c3", True)]})
    assert batch.status == 200, await batch.text()

    conversations = await (await client.get(url + "/getConversations", params={"pageSize": 10, "offset": 0}, headers=h)).json()
    assert [c["contact"] for c in conversations] == ["bob-enc", "carol-enc"]  # bob's got a message last
    bob_conv = conversations[0]
    assert set(bob_conv) == {"contact", "previewMessage", "updatedAt", "encryptedProfileLocation"}
    assert bob_conv["previewMessage"] == "c3" and bob_conv["encryptedProfileLocation"] == "loc-1"
    assert bob_conv["updatedAt"].endswith("Z") and conversations[1]["previewMessage"] is None

    # getMessages answers JSON strings of rows, newest first (dm3's client JSON.parses each).
    rows = [json.loads(r) for r in await (await client.get(url + "/getMessages/bob-enc/", headers=h)).json()]
    assert [r["encryptedEnvelopContainer"] for r in rows] == ["c3", "c2", "c1"]
    assert rows[0]["id"] == stored_message_id(alice.address_name, "m3")
    assert {"id", "createdAt", "encryptedEnvelopContainer", "encryptedContactName", "isHalted"} <= set(rows[0])
    assert (await (await client.get(url + "/getNumberOfMessages/bob-enc", headers=h)).json()) == 3

    edit = await client.post(url + "/editMessageBatch", headers=h, json={
        "encryptedContactName": "bob-enc", "editMessageBatchPayload": [record("m1", 1000, "c1-edited")]})
    assert edit.status == 200
    rows = [json.loads(r) for r in await (await client.get(url + "/getMessages/bob-enc", headers=h)).json()]
    assert rows[-1]["encryptedEnvelopContainer"] == "c1-edited"

    # Halted messages, then cleared into the alias's conversation (trailing slashes as the client sends).
    halted = await (await client.get(url + "/getHaltedMessages/", headers=h)).json()
    assert halted == [{"messageId": stored_message_id(alice.address_name, "m3"), "encryptedEnvelopContainer": "c3",
                       "createdAt": "1970-01-01T00:00:03.000Z", "isHalted": True}]
    cleared = await client.post(url + "/clearHaltedMessage/", headers=h,
                                json={"messageId": halted[0]["messageId"], "aliasName": "bob-alias-enc"})
    assert cleared.status == 200
    assert (await (await client.get(url + "/getHaltedMessages", headers=h)).json()) == []
    moved = [json.loads(r) for r in await (await client.get(url + "/getMessages/bob-alias-enc", headers=h)).json()]
    assert [(m["encryptedEnvelopContainer"], m["isHalted"]) for m in moved] == [("c3", False)]
    assert (await (await client.get(url + "/getNumberOfMessages/bob-enc", headers=h)).json()) == 2

    # Hidden conversations leave the list but still count.
    hide = await client.post(url + "/toggleHideConversation", json={"encryptedContactName": "carol-enc", "hide": True}, headers=h)
    assert hide.status == 200
    listed = await (await client.get(url + "/getConversations", headers=h)).json()
    assert "carol-enc" not in [c["contact"] for c in listed]
    assert (await (await client.get(url + "/getNumberOfConversations", headers=h)).json()) == 3


async def test_a_stored_message_id_is_refused_again_and_a_batch_is_all_or_nothing(client: Any, alice: Wallet) -> None:
    await register(client, alice)
    h = await login(client, alice)
    url = base(alice)
    body = {"encryptedContactName": "bob-enc", "messageBatch": [record("m1", 1)]}
    assert (await client.post(url + "/addMessageBatch", json=body, headers=h)).status == 200
    again = await client.post(url + "/addMessageBatch", headers=h,
                              json={"encryptedContactName": "bob-enc", "messageBatch": [record("m2", 2), record("m1", 1)]})
    assert again.status == 400 and (await again.json())["error"] == "duplicate_message"
    assert (await (await client.get(url + "/getNumberOfMessages/bob-enc", headers=h)).json()) == 1


async def test_counts_are_scoped_to_the_owner(client: Any, alice: Wallet, bob: Wallet) -> None:
    """dm3 counts every account's messages under one encrypted contact name; each owner sees theirs."""
    await register(client, alice)
    await register(client, bob)
    ha, hb = await login(client, alice), await login(client, bob)
    for wallet, headers, count in ((alice, ha, 3), (bob, hb, 2)):
        batch = [record(f"m{i}", i) for i in range(count)]
        body = {"encryptedContactName": "same-enc", "messageBatch": batch}
        assert (await client.post(base(wallet) + "/addMessageBatch", json=body, headers=headers)).status == 200
    assert (await (await client.get(base(alice) + "/getNumberOfMessages/same-enc", headers=ha)).json()) == 3
    assert (await (await client.get(base(bob) + "/getNumberOfMessages/same-enc", headers=hb)).json()) == 2
    # And nobody reads another's storage with their own token.
    other = await client.get(base(alice) + "/getNumberOfMessages/same-enc", headers=hb)
    assert other.status == 401 and (await other.json())["error"] == "session_wrong_account"


async def test_pages_neither_overlap_nor_skip_when_times_are_equal(client: Any, alice: Wallet) -> None:
    await register(client, alice)
    h = await login(client, alice)
    url = base(alice)
    batch = [record(f"m{i:02d}", 5000) for i in range(25)]  # one createdAt for all
    assert (await client.post(url + "/addMessageBatch", json={"encryptedContactName": "x", "messageBatch": batch},
                              headers=h)).status == 200
    seen: list[str] = []
    for page in range(3):
        rows = await (await client.get(url + "/getMessages/x", params={"pageSize": 10, "offset": page}, headers=h)).json()
        seen += [json.loads(r)["id"] for r in rows]
    assert len(seen) == 25 and len(set(seen)) == 25
    for _ in range(3):  # and the same pages every time
        rows = await (await client.get(url + "/getMessages/x", params={"pageSize": 10, "offset": 1}, headers=h)).json()
        assert [json.loads(r)["id"] for r in rows] == seen[10:20]


@pytest.mark.parametrize(
    "query,field",
    [({"pageSize": "0"}, "pageSize"), ({"pageSize": "-1"}, "pageSize"), ({"pageSize": "abc"}, "pageSize"),
     ({"pageSize": "1001"}, "pageSize"), ({"offset": "-1"}, "offset"), ({"offset": "1.5"}, "offset")],
)
async def test_bad_paging_is_a_400_naming_the_parameter(client: Any, alice: Wallet, query: dict[str, str],
                                                       field: str) -> None:
    await register(client, alice)
    h = await login(client, alice)
    answer = await client.get(base(alice) + "/getConversations", params=query, headers=h)
    assert answer.status == 400
    assert field in (await answer.json())["message"]


@pytest.mark.parametrize(
    ("body", "code"),
    [({"encryptedContactName": "x", "messageId": "m", "createdAt": 1, "encryptedEnvelopContainer": "c"}, "invalid_schema"),
     ({"encryptedContactName": "x", "messageId": "m", "createdAt": 1, "encryptedEnvelopContainer": "c", "isHalted": "no"},
      "invalid_schema"),
     ({"encryptedContactName": "x", "messageId": "m", "createdAt": 1.5, "encryptedEnvelopContainer": "c", "isHalted": False},
      "invalid_schema"),
     ({"encryptedContactName": "x", "messageId": "m", "createdAt": 1, "encryptedEnvelopContainer": "c", "isHalted": False,
       "extra": 1}, "invalid_schema"),
     # A lone surrogate could not be stored as UTF-8: refused (by the JSON parser already), never a 500.
     ({"encryptedContactName": "x\ud800", "messageId": "m", "createdAt": 1, "encryptedEnvelopContainer": "c",
       "isHalted": False}, "invalid_json")],
)
async def test_add_message_refuses_what_dm3s_schema_refuses(
    client: Any, alice: Wallet, body: dict[str, Any], code: str
) -> None:
    await register(client, alice)
    h = await login(client, alice)
    answer = await client.post(base(alice) + "/addMessage", json=body, headers=h)
    assert answer.status == 400 and (await answer.json())["error"] == code
