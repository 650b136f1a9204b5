"""``client.storage`` on the real stack: two devices of one user, history, sharing, revocation."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import pytest

from ensign.client import ApiError, StoredDocument
from tests.client.sdk_stack import SdkStack, new_private_key


async def test_two_devices_conflict_rebase_history_share_revoke(sdk_stack: SdkStack) -> None:
    key = new_private_key()
    phone, laptop = sdk_stack.client(key), sdk_stack.client(key)  # one wallet, two devices
    bob = sdk_stack.client()
    await phone.publish_profile()
    await bob.publish_profile()

    first = await phone.storage.set("contacts", "list", '["carol"]', lastrev=None)
    # Both devices write onto the same head at once: one wins, the other is refused.
    results = await asyncio.gather(
        phone.storage.set("contacts", "list", '["carol","dave"]', lastrev=first),
        laptop.storage.set("contacts", "list", '["carol","erin"]', lastrev=first),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, ApiError)]
    assert len(refused) == 1 and refused[0].status == 409 and refused[0].code == "revision_conflict"
    winner = next(r for r in results if isinstance(r, str))
    assert refused[0].body["details"]["head"] == winner

    # The loser rebases: reads the head, merges, writes onto it.
    head = await laptop.storage.get("contacts", "list")
    assert isinstance(head, StoredDocument) and head.rev == winner
    merged = sorted(set(eval_list(head.value) + ["carol", "dave", "erin"]))
    final = await laptop.storage.set("contacts", "list", repr_list(merged), lastrev=head.rev)

    progress: list[tuple[int, int]] = []
    history = await phone.storage.history("contacts", "list", progress=lambda done, total: progress.append((done, total)))
    assert [d.rev for d in history] == [first, winner, final]
    assert history[-1].value == repr_list(["carol", "dave", "erin"]) and progress[-1] == (3, 3)

    # Shared with bob, who reads with the key unwrapped from the grant; then revoked.
    grant = await phone.storage.share("contacts", bob.name, expires_in=3600)
    shared = await bob.storage.get("contacts", "list", owner=phone.name)
    assert shared is not None and shared.value == history[-1].value
    assert [g.id for g in await bob.storage.grants(bob.name, owner=phone.name)] == [grant.id]
    await phone.storage.revoke(grant.id)
    with pytest.raises(ApiError) as refused_read:
        await bob.storage.get("contacts", "list", owner=phone.name)
    assert refused_read.value.status == 403

    # The server only ever held ciphertext.
    raw = history[-1].revision.data or ""
    assert "carol" not in raw


async def test_remove_then_write_again_and_usage(sdk_stack: SdkStack) -> None:
    alice = sdk_stack.client()
    await alice.publish_profile()
    await alice.storage.set("settings", "theme", "dark")
    await alice.storage.remove("settings", "theme")
    assert await alice.storage.get("settings", "theme") is None
    assert await alice.storage.get_all("settings") == []
    await alice.storage.set("settings", "theme", "light")  # reads the removal as the head
    [doc] = await alice.storage.get_all("settings")
    assert doc.value == "light"
    used, quota = await alice.storage.usage()
    assert 0 < used < quota


def eval_list(text: str | None) -> list[str]:
    return list(json.loads(text or "[]"))


def repr_list(items: list[str]) -> str:
    return json.dumps(items, separators=(",", ":"))


async def test_blobs_stream_with_progress_skip_known_uploads_and_check_the_hash(sdk_stack: SdkStack,
                                                                               tmp_path: Any) -> None:
    alice, bob = sdk_stack.client(), sdk_stack.client()
    await alice.publish_profile()
    await bob.publish_profile()
    source = tmp_path / "photo.bin"
    source.write_bytes(os.urandom(700_000))
    sent: list[tuple[int, int]] = []
    stored = await alice.storage.put_blob(source, progress=lambda done, total: sent.append((done, total)))
    assert stored.status == "stored" and stored.size == 700_000
    assert len(sent) == 3 and sent[-1] == (700_000, 700_000)  # three 256 KiB pieces
    again = await alice.storage.put_blob(source.read_bytes())
    assert again.status == "exists"

    received: list[tuple[int, int]] = []
    target = tmp_path / "copy.bin"
    await alice.storage.get_blob(stored.hash, to=target, progress=lambda done, total: received.append((done, total)))
    assert target.read_bytes() == source.read_bytes() and received[-1] == (700_000, 700_000)

    # Bob reads it once alice grants him anything; a wrong hash is refused.
    with pytest.raises(ApiError):
        await bob.storage.get_blob(stored.hash, owner=alice.name)
    await alice.storage.share("photos", bob.name)
    assert await bob.storage.get_blob(stored.hash, owner=alice.name) == source.read_bytes()
    await alice.storage.delete_blob(stored.hash)
    with pytest.raises(ApiError) as gone:
        await alice.storage.get_blob(stored.hash)
    assert gone.value.status == 404
