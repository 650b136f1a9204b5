"""Per-device cursors in the queue's scripts (ack.lua, fetch.lua, set_devices.lua, sweep.lua) against
a real Redis: a message leaves when every listed device has acknowledged it or its TTL ends."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from delivery.devices import Device, DeviceList
from delivery.keys import account_key
from delivery.queue import MessageQueue
from ensign.sessions import SessionStale
from tests.delivery.test_queue import ALICE, DAY, NOW, envelope, mid


def listed(*ids: str, at: int = 1) -> str:
    """The stored ``devices`` field of a list of ``ids`` (keys are placeholders here)."""
    return DeviceList(at, tuple(Device(i, f"key-{i}", at) for i in ids)).to_stored()


async def with_devices(queue: MessageQueue, redis: aioredis.Redis, prefix: str, *ids: str) -> str:
    """Make ALICE's account hash and give it the device list ``ids``; returns the stored field."""
    await redis.hset(account_key(prefix, ALICE), "created", "1")
    stored = listed(*ids)
    assert await queue.set_devices(ALICE, expected="", devices=stored, now=NOW) == 0
    return stored


async def ids_for(queue: MessageQueue, device: str, *, now: float = NOW + 10) -> list[str]:
    page = await queue.fetch(ALICE, now=now, device=device)
    return [m.id for m in page.items]


async def test_two_devices_ack_independently(gated: MessageQueue, redis: aioredis.Redis, redis_prefix: str) -> None:
    await with_devices(gated, redis, redis_prefix, "laptop", "phone")
    for n in (1, 2):
        await gated.enqueue(ALICE, mid(n), envelope(n), now=NOW + n, ttl_seconds=DAY)

    assert await gated.ack(ALICE, [mid(1)], now=NOW + 5, device="laptop") == 1
    # The laptop no longer sees it; the phone still does, and the message is still queued.
    assert await ids_for(gated, "laptop") == [mid(2)]
    assert await ids_for(gated, "phone") == [mid(1), mid(2)]
    assert await gated.get(ALICE, mid(1), now=NOW + 10) is not None
    # A second ack by the same device changes nothing.
    assert await gated.ack(ALICE, [mid(1)], now=NOW + 6, device="laptop") == 0

    assert await gated.ack(ALICE, [mid(1)], now=NOW + 7, device="phone") == 1
    assert await gated.get(ALICE, mid(1), now=NOW + 10) is None
    assert await ids_for(gated, "laptop") == [mid(2)]
    assert await ids_for(gated, "phone") == [mid(2)]
    assert not await redis.hexists(gated.keys(ALICE).seen, mid(1))
    # Removed by the last device: remembered, so the sender's late retry is not queued again.
    assert not await gated.enqueue(ALICE, mid(1), envelope(1), now=NOW + 8, ttl_seconds=DAY)

    for device in ("phone", "laptop"):
        await gated.ack(ALICE, [mid(2)], now=NOW + 9, device=device)
    assert await gated.count(ALICE, NOW + 10) == 0
    assert await redis.exists(gated.keys(ALICE).seen, gated.keys(ALICE).queue) == 0


async def test_ttl_ends_a_message_one_device_never_acknowledged(
    gated: MessageQueue, redis: aioredis.Redis, redis_prefix: str
) -> None:
    await with_devices(gated, redis, redis_prefix, "laptop", "phone")
    await gated.enqueue(ALICE, mid(1), envelope(1), now=NOW, ttl_seconds=60)
    await gated.ack(ALICE, [mid(1)], now=NOW + 1, device="laptop")

    assert await ids_for(gated, "phone", now=NOW + 59) == [mid(1)]
    assert await ids_for(gated, "phone", now=NOW + 60) == []
    assert await gated.sweep_expired(NOW + 61) == 1
    # The sweep takes the message's acknowledgers with it.
    assert await redis.exists(gated.keys(ALICE).seen, gated.keys(ALICE).messages) == 0


async def test_removing_a_device_releases_what_only_it_was_missing(
    gated: MessageQueue, redis: aioredis.Redis, redis_prefix: str
) -> None:
    stored = await with_devices(gated, redis, redis_prefix, "laptop", "phone", "tablet")
    for n in (1, 2):
        await gated.enqueue(ALICE, mid(n), envelope(n), now=NOW + n, ttl_seconds=DAY)
    for device in ("laptop", "phone"):
        await gated.ack(ALICE, [mid(1)], now=NOW + 5, device=device)
    await gated.ack(ALICE, [mid(2)], now=NOW + 5, device="tablet")

    sessions = redis.pubsub()
    await sessions.subscribe(gated.keys(ALICE).sessions)
    await sessions.get_message(timeout=1)  # the subscribe confirmation
    # The tablet goes: message 1 (only it was missing) leaves, message 2 loses its only ack.
    assert await gated.set_devices(ALICE, expected=stored, devices=listed("laptop", "phone", at=2), now=NOW + 6) == 1
    announced = await sessions.get_message(timeout=1)
    await sessions.aclose()
    assert announced is not None and announced["data"] == b"devices"

    assert await gated.get(ALICE, mid(1), now=NOW + 10) is None
    assert await ids_for(gated, "laptop") == [mid(2)]
    assert not await redis.hexists(gated.keys(ALICE).seen, mid(2))
    with pytest.raises(SessionStale):
        await gated.ack(ALICE, [mid(2)], now=NOW + 7, device="tablet")
    assert await gated.get(ALICE, mid(2), now=NOW + 10) is not None


async def test_a_list_applies_only_to_the_state_read(gated: MessageQueue, redis: aioredis.Redis, redis_prefix: str) -> None:
    stored = await with_devices(gated, redis, redis_prefix, "laptop")
    assert await gated.set_devices(ALICE, expected="", devices=listed("phone", at=2), now=NOW) is None
    assert await gated.set_devices(ALICE, expected=stored, devices=listed("phone", at=2), now=NOW) == 0
    assert await gated.set_devices("0x0000000000000000000000000000000000000001", expected="", devices=stored) is None


async def test_an_ack_must_match_the_accounts_devices(gated: MessageQueue, redis: aioredis.Redis, redis_prefix: str) -> None:
    await redis.hset(account_key(redis_prefix, ALICE), "created", "1")
    await gated.enqueue(ALICE, mid(1), envelope(1), now=NOW, ttl_seconds=DAY)
    # No list: a device's ack is stale (its list was removed), nothing changes.
    with pytest.raises(SessionStale):
        await gated.ack(ALICE, [mid(1)], now=NOW, device="laptop")
    stored = listed("laptop")
    await gated.set_devices(ALICE, expected="", devices=stored, now=NOW)
    # A list: an ack without a device is stale (made before the list), so is an unlisted device.
    for device in ("", "phone"):
        with pytest.raises(SessionStale):
            await gated.ack(ALICE, [mid(1)], now=NOW, device=device)
    assert await gated.get(ALICE, mid(1), now=NOW + 1) is not None


async def test_removing_the_list_gives_the_queue_back_to_one_implicit_device(
    gated: MessageQueue, redis: aioredis.Redis, redis_prefix: str
) -> None:
    stored = await with_devices(gated, redis, redis_prefix, "laptop", "phone")
    await gated.enqueue(ALICE, mid(1), envelope(1), now=NOW, ttl_seconds=DAY)
    await gated.ack(ALICE, [mid(1)], now=NOW + 1, device="laptop")
    assert await gated.set_devices(ALICE, expected=stored, devices="", now=NOW + 2) == 0
    assert await redis.exists(gated.keys(ALICE).seen) == 0
    assert not await redis.hexists(account_key(redis_prefix, ALICE), "devices")
    assert await ids_for(gated, "") == [mid(1)]
    assert await gated.ack(ALICE, [mid(1)], now=NOW + 3) == 1
    assert await gated.count(ALICE, NOW + 4) == 0


async def test_deleting_the_account_deletes_the_acknowledgers(
    gated: MessageQueue, redis: aioredis.Redis, redis_prefix: str
) -> None:
    await with_devices(gated, redis, redis_prefix, "laptop", "phone")
    await gated.enqueue(ALICE, mid(1), envelope(1), now=NOW, ttl_seconds=DAY)
    await gated.ack(ALICE, [mid(1)], now=NOW + 1, device="laptop")
    assert await gated.delete_account(ALICE, generation=1, tombstone="{}") == 1
    assert await redis.exists(gated.keys(ALICE).seen, account_key(redis_prefix, ALICE)) == 0


async def test_a_device_sees_past_what_it_acknowledged_without_a_cursor(
    gated: MessageQueue, redis: aioredis.Redis, redis_prefix: str
) -> None:
    """dm3 clients never follow a cursor: a first page of 2 must not be filled by messages this
    device acknowledged while another device still holds them."""
    await with_devices(gated, redis, redis_prefix, "laptop", "phone")
    for n in range(5):
        await gated.enqueue(ALICE, mid(n), envelope(n), now=NOW + n, ttl_seconds=DAY)
    await gated.ack(ALICE, [mid(0), mid(1), mid(2)], now=NOW + 6, device="laptop")
    page = await gated.fetch(ALICE, now=NOW + 10, device="laptop", limit=2)
    assert [m.id for m in page.items] == [mid(3), mid(4)] and page.next_cursor is None
    page = await gated.fetch(ALICE, now=NOW + 10, device="phone", limit=2)
    assert [m.id for m in page.items] == [mid(0), mid(1)] and page.next_cursor is not None
    page = await gated.fetch(ALICE, now=NOW + 10, device="laptop", limit=1)
    assert [m.id for m in page.items] == [mid(3)] and page.next_cursor is not None
    page = await gated.fetch(ALICE, now=NOW + 10, device="laptop", limit=1, cursor=page.next_cursor)
    assert [m.id for m in page.items] == [mid(4)] and page.next_cursor is None
