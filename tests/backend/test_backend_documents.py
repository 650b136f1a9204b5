"""Namespaced documents with signed revisions, co-signatures and read grants, on the production app."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from tests.backend.backend_helpers import Wallet, now_ms
from tests.backend.storage_helpers import doc_url, grant, limited_client, login, register, revision

from ensign.config import BackendSettings
from ensign.protocol.canonical import stringify
from ensign.protocol.crypto import EncryptedPayload, decrypt_symmetric, encrypt_symmetric, sign
from ensign.protocol.grants import unwrap_key
from ensign.protocol.revisions import Revision, check_chain, cosign, make_revision


def encrypt(key: bytes, text: str) -> str:
    return stringify(encrypt_symmetric(key, text).to_json())


def decrypt(key: bytes, data: str) -> str:
    import json

    obj = json.loads(data)
    return decrypt_symmetric(key, EncryptedPayload(obj["ciphertext"], obj["nonce"]))


async def put(client: Any, headers: dict[str, str], rev: Revision) -> Any:
    return await client.put(doc_url_of(rev), json=rev.to_json(), headers=headers)


def doc_url_of(rev: Revision) -> str:
    return f"/storage/docs/{rev.owner}.addr.ensign.eth/{rev.namespace}/{rev.key}"


async def test_two_devices_one_wins_the_other_rebases_then_history_share_and_revoke(
    client: Any, alice: Wallet, bob: Wallet
) -> None:
    await register(client, alice)
    await register(client, bob)
    phone, laptop = await login(client, alice), await login(client, alice)  # two devices, two sessions
    key = os.urandom(32)  # the namespace key: only alice's devices (and grantees) have it

    first = revision(alice, "contacts", "list", encrypt(key, '["carol"]'), None)
    assert (await put(client, phone, first)).status == 200

    # Both devices start from the same head and write at the same time.
    from_phone = revision(alice, "contacts", "list", encrypt(key, '["carol","dave"]'), first.rev)
    from_laptop = revision(alice, "contacts", "list", encrypt(key, '["carol","erin"]'), first.rev)
    answers = await asyncio.gather(put(client, phone, from_phone), put(client, laptop, from_laptop))
    statuses = sorted(a.status for a in answers)
    assert statuses == [200, 409]
    loser = answers[0] if answers[0].status == 409 else answers[1]
    refusal = await loser.json()
    assert refusal["error"] == "revision_conflict"
    winner = from_phone if answers[0].status == 200 else from_laptop
    assert refusal["details"]["head"] == winner.rev

    # The loser reads the head, merges and signs onto it.
    head = await (await client.get(doc_url(alice, "contacts", "list"), headers=laptop)).json()
    assert head["_rev"] == winner.rev
    merged = revision(alice, "contacts", "list", encrypt(key, '["carol","dave","erin"]'), head["_rev"])
    assert (await put(client, laptop, merged)).status == 200

    # History: every revision, oldest first, and the chain checks on the client.
    history = await (await client.get(doc_url(alice, "contacts", "list") + "/history", headers=phone)).json()
    assert history["total"] == 3
    revs = [Revision.from_json({k: v for k, v in r.items() if k not in ("storedAt", "cosignatures")})
            for r in history["revisions"]]
    assert [r.rev for r in revs] == [first.rev, winner.rev, merged.rev]
    check_chain(revs, signers={alice.keys.signing.public_key})
    assert decrypt(key, revs[-1].data or "") == '["carol","dave","erin"]'
    old = await client.get(doc_url(alice, "contacts", "list") + f"/revisions/{first.rev}", headers=phone)
    assert decrypt(key, (await old.json())["data"]) == '["carol"]'

    # Bob cannot read until alice grants it.
    bob_headers = await login(client, bob)
    denied = await client.get(doc_url(alice, "contacts", "list"), headers=bob_headers)
    assert denied.status == 403 and (await denied.json())["error"] == "not_granted"
    signed = grant(alice, bob, "contacts", None, expires=now_ms() + 3_600_000, secret=key)
    stored = await client.post(f"/storage/grants/{alice.address_name}", json=signed.to_json(), headers=phone)
    assert stored.status == 200, await stored.text()

    # Bob finds his grant, unwraps the key with his own encryption key, reads and decrypts.
    listed = await client.get(f"/storage/grants/{alice.address_name}/to/{bob.address_name}", headers=bob_headers)
    [mine] = (await listed.json())["grants"]
    bobs_key = unwrap_key(bob.keys.encryption, mine["wrappedKey"])
    assert bobs_key == key
    read = await client.get(doc_url(alice, "contacts", "list"), headers=bob_headers)
    assert read.status == 200
    assert decrypt(bobs_key, (await read.json())["data"]) == '["carol","dave","erin"]'
    listing = await client.get(doc_url(alice, "contacts"), headers=bob_headers)
    assert [d["key"] for d in (await listing.json())["documents"]] == ["list"]
    # A reader cannot write.
    forged = revision(bob, "contacts", "list", "x", merged.rev)
    assert (await client.put(doc_url(alice, "contacts", "list"), json=forged.to_json(), headers=bob_headers)).status == 401

    # Revoked: bob is refused at once, and the same signed grant cannot be stored again.
    revoked = await client.delete(f"/storage/grants/{alice.address_name}/{signed.id}", headers=phone)
    assert revoked.status == 200
    assert (await client.get(doc_url(alice, "contacts", "list"), headers=bob_headers)).status == 403
    again = await client.post(f"/storage/grants/{alice.address_name}", json=signed.to_json(), headers=phone)
    assert again.status == 409 and (await again.json())["error"] == "grant_revoked"


async def test_forged_and_replayed_revisions_are_refused(client: Any, alice: Wallet, bob: Wallet) -> None:
    await register(client, alice)
    await register(client, bob)
    headers = await login(client, alice)
    first = revision(alice, "notes", "a", "ciphertext-1", None)
    assert (await put(client, headers, first)).status == 200
    second = revision(alice, "notes", "a", "ciphertext-2", first.rev)
    assert (await put(client, headers, second)).status == 200

    # Replays: the same revision again, and the old first revision over the new head.
    replay = await put(client, headers, second)
    assert replay.status == 409 and (await replay.json())["error"] == "revision_exists"
    stale = await put(client, headers, first)
    assert stale.status == 409
    # A revision of another document, replayed under this path, is refused by its hash.
    other = revision(alice, "notes", "b", "ciphertext-b", None)
    moved = await client.put(doc_url(alice, "notes", "a"), json=other.to_json(), headers=headers)
    assert moved.status == 400 and (await moved.json())["error"] == "wrong_document"

    # Forgeries: tampered data, a signature by another key, a _rev that is not the content's hash.
    honest = revision(alice, "notes", "a", "ciphertext-3", second.rev)
    tampered = {**honest.to_json(), "data": "ciphertext-evil"}
    answer = await client.put(doc_url(alice, "notes", "a"), json=tampered, headers=headers)
    assert answer.status == 400 and (await answer.json())["error"] == "invalid_signature"
    by_bob = make_revision(
        bob.keys.signing.secret_key, bob.keys.signing.public_key, alice.address.lower(), "notes", "a", "x",
        lastrev=second.rev,
    )
    assert (await put(client, headers, by_bob)).status == 400
    bad_sig = {**honest.to_json(), "signature": sign(bob.keys.signing.secret_key, "Ensign storage revision\n" + honest.rev),
               "signer": alice.keys.signing.public_key}
    assert (await client.put(doc_url(alice, "notes", "a"), json=bad_sig, headers=headers)).status == 400
    # Nothing of that was stored.
    history = await (await client.get(doc_url(alice, "notes", "a") + "/history", headers=headers)).json()
    assert [r["_rev"] for r in history["revisions"]] == [first.rev, second.rev]


async def test_a_removal_is_a_signed_revision_and_writing_again_chains_onto_it(client: Any, alice: Wallet) -> None:
    await register(client, alice)
    headers = await login(client, alice)
    first = revision(alice, "settings", "theme", "dark", None)
    assert (await put(client, headers, first)).status == 200
    nothing = revision(alice, "settings", "font", None, None)
    answer = await put(client, headers, nothing)
    assert answer.status == 400 and (await answer.json())["error"] == "nothing_to_remove"

    removal = revision(alice, "settings", "theme", None, first.rev)
    assert (await (await put(client, headers, removal)).json()) == {"_rev": removal.rev, "removed": True}
    gone = await client.get(doc_url(alice, "settings", "theme"), headers=headers)
    assert gone.status == 404
    body = await gone.json()
    assert body["error"] == "document_removed" and body["details"]["head"] == removal.rev
    assert (await (await client.get(doc_url(alice, "settings"), headers=headers)).json()) == {"documents": []}

    back = revision(alice, "settings", "theme", "light", removal.rev)
    assert (await put(client, headers, back)).status == 200
    assert (await (await client.get(doc_url(alice, "settings", "theme"), headers=headers)).json())["data"] == "light"


async def test_cosignatures_attach_without_changing_the_revision(client: Any, alice: Wallet, bob: Wallet) -> None:
    await register(client, alice)
    headers = await login(client, alice)
    first = revision(alice, "deeds", "house", "sealed", None)
    assert (await put(client, headers, first)).status == 200
    notary = cosign(bob.keys.signing.secret_key, bob.keys.signing.public_key, first.rev)
    url = doc_url(alice, "deeds", "house") + f"/revisions/{first.rev}/cosignatures"
    answer = await client.post(url, json=notary.to_json(), headers=headers)
    assert (await answer.json()) == {"status": "added"}
    wrong = cosign(bob.keys.signing.secret_key, bob.keys.signing.public_key, "0x" + "00" * 32)
    refused = await client.post(url, json=wrong.to_json(), headers=headers)
    assert refused.status == 400
    head = await (await client.get(doc_url(alice, "deeds", "house"), headers=headers)).json()
    assert head["_rev"] == first.rev
    assert head["cosignatures"] == [notary.to_json()]


async def test_the_quota_bounds_history(aiohttp_client: Any, settings: BackendSettings, redis: Any,
                                        alice: Wallet) -> None:
    client, headers = await limited_client(aiohttp_client, settings, redis, alice, quota_bytes=3000, max_document=2048)
    lastrev = None
    statuses = []
    for index in range(5):
        rev = revision(alice, "big", "doc", "x" * 1000 + str(index), lastrev)
        answer = await put(client, headers, rev)
        statuses.append(answer.status)
        if answer.status == 200:
            lastrev = rev.rev
        else:
            body = await answer.json()
            assert body["error"] == "quota_exceeded" and body["details"]["quota"] == 3000
    assert statuses[0] == 200 and statuses[-1] == 413
    too_big = revision(alice, "big", "other", "y" * 2049, None)
    assert (await put(client, headers, too_big)).status == 400
    usage = await (await client.get(f"/storage/usage/{alice.address_name}", headers=headers)).json()
    assert 0 < usage["bytes"] <= 3000 and usage["quota"] == 3000


@pytest.mark.parametrize(
    "path",
    ["/storage/docs/{name}/bad:ns/key", "/storage/docs/{name}/ns/bad%20key", "/storage/docs/{name}/ns/key/revisions/0x12"],
)
async def test_bad_names_and_revs_are_400(client: Any, alice: Wallet, path: str) -> None:
    await register(client, alice)
    headers = await login(client, alice)
    answer = await client.get(path.format(name=alice.address_name), headers=headers)
    assert answer.status == 400, await answer.text()


async def test_documents_need_a_session_of_a_registered_account(client: Any, alice: Wallet) -> None:
    await register(client, alice)
    assert (await client.get(doc_url(alice, "ns", "k"))).status == 401
    bad = {"Authorization": "Bearer nonsense"}
    assert (await (await client.get(doc_url(alice, "ns", "k"), headers=bad)).json())["error"] == "session_invalid"
