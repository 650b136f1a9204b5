"""delivery.queue against a real Redis: one group of tests per Lua script, then layout and crashes."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from delivery.errors import AccountMissingError, QueueFullError
from delivery.keys import account_key, queue_keys, signed_message_key, tombstone_key
from delivery.queue import (
    ACK_MEMORY_MAX,
    ACK_MEMORY_SECONDS,
    ACK_CHUNK,
    KEY_TTL_GRACE_SECONDS,
    MAX_PAGE_SIZE,
    MessageQueue,
)
from stack.embedded_redis import EmbeddedRedis
from ensign.errors import InvalidRequest

NOW = 1_700_000_000.0
DAY = 86_400
ALICE = "0xAb5801a7D398351b8bE11C439e05C5B3259aeC9B"
BOB = "0x1234567890AbcdEF1234567890aBcdef12345678"


def envelope(n: int, size: int = 300) -> bytes:
    """A stand-in for a postmarked dm3 envelope: JSON text, distinct per ``n``."""
    body = {"message": f"cipher-{n}-" + "x" * size, "postmark": f"pm-{n}", "metadata": {"n": n}}
    return json.dumps(body, separators=(",", ":")).encode()


def mid(n: int) -> str:
    return f"0x{n:064x}"


async def fill(queue: MessageQueue, account: str, count: int, *, ttl: int = DAY) -> list[str]:
    ids = [mid(i) for i in range(count)]
    for i, message_id in enumerate(ids):
        assert await queue.enqueue(account, message_id, envelope(i), now=NOW + i, ttl_seconds=ttl)
    return ids


async def drain(queue: MessageQueue, account: str, *, now: float, limit: int) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        page = await queue.fetch(account, now=now, cursor=cursor, limit=limit)
        seen += [m.id for m in page.items]
        if page.next_cursor is None:
            return seen
        cursor = page.next_cursor


async def structure_members(redis: aioredis.Redis, queue: MessageQueue, account: str) -> tuple[set, set, set]:
    keys = queue.keys(account)
    in_queue = {m.decode() for m in await redis.zrange(keys.queue, 0, -1)}
    in_expiry = {m.decode() for m in await redis.zrange(keys.expiry, 0, -1)}
    in_hash = {f.decode() for f in await redis.hkeys(keys.messages)}
    return in_queue, in_expiry, in_hash


async def next_message(pubsub: aioredis.client.PubSub, timeout: float) -> dict | None:
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=left)
        if message is not None:
            return message
    return None


# -- enqueue.lua -------------------------------------------------------------------------------


async def test_enqueue_stores_envelope_with_receive_and_expiry_times(queue):
    stored = await queue.enqueue(ALICE, mid(1), envelope(1), now=NOW + 0.25, ttl_seconds=3600)

    page = await queue.fetch(ALICE, now=NOW + 1)
    assert stored is True
    assert len(page.items) == 1
    message = page.items[0]
    assert message.id == mid(1)
    assert message.envelope == envelope(1)
    assert message.received_at == NOW + 0.25
    assert message.expires_at == NOW + 0.25 + 3600
    assert page.next_cursor is None


async def test_enqueue_accepts_str_envelope_and_returns_utf8_bytes(queue):
    await queue.enqueue(ALICE, mid(1), '{"message":"é ✓"}', now=NOW, ttl_seconds=60)

    page = await queue.fetch(ALICE, now=NOW)
    assert page.items[0].envelope == '{"message":"é ✓"}'.encode()


async def test_enqueue_same_id_twice_stores_once(queue, redis):
    first = await queue.enqueue(ALICE, mid(1), envelope(1), now=NOW, ttl_seconds=DAY)
    second = await queue.enqueue(ALICE, mid(1), envelope(1), now=NOW + 5, ttl_seconds=DAY)

    assert (first, second) == (True, False)
    assert [m.id for m in (await queue.fetch(ALICE, now=NOW + 5)).items] == [mid(1)]
    keys = queue.keys(ALICE)
    assert await redis.zcard(keys.queue) == 1
    assert await redis.zcard(keys.expiry) == 1
    assert await redis.hlen(keys.messages) == 1


async def test_duplicate_enqueue_keeps_first_expiry_receive_time_and_envelope(queue):
    await queue.enqueue(ALICE, mid(1), envelope(1), now=NOW, ttl_seconds=100)
    await queue.enqueue(ALICE, mid(1), envelope(2), now=NOW + 50, ttl_seconds=1000)

    [message] = (await queue.fetch(ALICE, now=NOW + 60)).items
    assert message.expires_at == NOW + 100
    assert message.received_at == NOW
    assert message.envelope == envelope(1)
    assert (await queue.fetch(ALICE, now=NOW + 100)).items == ()


async def test_resubmission_after_expiry_is_stored_again(queue):
    await queue.enqueue(ALICE, mid(1), envelope(1), now=NOW, ttl_seconds=10)

    stored = await queue.enqueue(ALICE, mid(1), envelope(1), now=NOW + 10, ttl_seconds=10)

    assert stored is True
    [message] = (await queue.fetch(ALICE, now=NOW + 15)).items
    assert (message.received_at, message.expires_at) == (NOW + 10, NOW + 20)


async def test_retry_after_ack_is_not_delivered_again(queue):
    """Regression (fault suite): a sender whose answer was lost retries; the first attempt was
    stored, fetched and acknowledged meanwhile, and the retry must not deliver it a second time."""
    await queue.enqueue(ALICE, mid(1), envelope(1), now=NOW, ttl_seconds=DAY)
    await queue.ack(ALICE, [mid(1)], now=NOW + 1)

    assert await queue.enqueue(ALICE, mid(1), envelope(1), now=NOW + 2, ttl_seconds=DAY) is False
    assert (await queue.fetch(ALICE, now=NOW + 2)).items == ()


async def test_resubmission_after_the_ack_memory_is_a_new_delivery(queue):
    await queue.enqueue(ALICE, mid(1), envelope(1), now=NOW, ttl_seconds=DAY)
    await queue.ack(ALICE, [mid(1)], now=NOW)

    assert await queue.enqueue(ALICE, mid(1), envelope(1), now=NOW + ACK_MEMORY_SECONDS, ttl_seconds=DAY) is True


async def test_ack_memory_keeps_the_newest_ids_only(queue, redis, redis_prefix):
    ids = [mid(i) for i in range(ACK_MEMORY_MAX + 5)]
    for i, message_id in enumerate(ids):
        await queue.enqueue(ALICE, message_id, envelope(i), now=NOW, ttl_seconds=DAY)
    await queue.ack(ALICE, ids[:5], now=NOW)
    await queue.ack(ALICE, ids[5:], now=NOW + 1)

    assert await redis.zcard(queue.keys(ALICE).acked) == ACK_MEMORY_MAX
    assert await queue.enqueue(ALICE, ids[0], envelope(0), now=NOW + 2, ttl_seconds=DAY) is True
    assert await queue.enqueue(ALICE, ids[-1], envelope(0), now=NOW + 2, ttl_seconds=DAY) is False


async def test_ack_of_an_unknown_id_is_not_remembered(queue, redis):
    await queue.ack(ALICE, [mid(9)], now=NOW)

    assert await redis.exists(queue.keys(ALICE).acked) == 0
    assert await queue.enqueue(ALICE, mid(9), envelope(9), now=NOW + 1, ttl_seconds=DAY) is True


async def test_same_id_for_two_accounts_is_stored_for_each(queue):
    assert await queue.enqueue(ALICE, mid(1), envelope(1), now=NOW, ttl_seconds=DAY)
    assert await queue.enqueue(BOB, mid(1), envelope(1), now=NOW, ttl_seconds=DAY)

    assert await queue.count(ALICE, now=NOW) == 1
    assert await queue.count(BOB, now=NOW) == 1


async def test_max_queued_rejects_new_message_when_full(queue):
    for i in range(3):
        await queue.enqueue(ALICE, mid(i), envelope(i), now=NOW + i, ttl_seconds=DAY, max_queued=3)

    with pytest.raises(QueueFullError) as raised:
        await queue.enqueue(ALICE, mid(3), envelope(3), now=NOW + 3, ttl_seconds=DAY, max_queued=3)

    assert raised.value.status == 429
    assert raised.value.code == "queue_full"
    assert await drain(queue, ALICE, now=NOW + 3, limit=10) == [mid(0), mid(1), mid(2)]


async def test_max_queued_accepts_again_after_an_ack(queue):
    for i in range(2):
        await queue.enqueue(ALICE, mid(i), envelope(i), now=NOW, ttl_seconds=DAY, max_queued=2)
    await queue.ack(ALICE, [mid(0)])

    assert await queue.enqueue(ALICE, mid(2), envelope(2), now=NOW, ttl_seconds=DAY, max_queued=2)


async def test_max_queued_counts_only_live_messages(queue, redis):
    await queue.enqueue(ALICE, mid(0), envelope(0), now=NOW, ttl_seconds=10, max_queued=2)
    await queue.enqueue(ALICE, mid(1), envelope(1), now=NOW, ttl_seconds=DAY, max_queued=2)

    stored = await queue.enqueue(ALICE, mid(2), envelope(2), now=NOW + 10, ttl_seconds=DAY, max_queued=2)

    assert stored is True
    # The expired message made room and was dropped from every structure in the same script.
    assert await structure_members(redis, queue, ALICE) == ({mid(1), mid(2)},) * 3


async def test_duplicate_at_the_limit_is_not_an_error(queue):
    await queue.enqueue(ALICE, mid(0), envelope(0), now=NOW, ttl_seconds=DAY, max_queued=1)

    assert await queue.enqueue(ALICE, mid(0), envelope(0), now=NOW, ttl_seconds=DAY, max_queued=1) is False


async def test_key_expiry_backstop_covers_the_longest_message_ttl(queue, redis):
    await queue.enqueue(ALICE, mid(1), envelope(1), now=NOW, ttl_seconds=30 * DAY)
    await queue.enqueue(ALICE, mid(2), envelope(2), now=NOW, ttl_seconds=DAY)

    keys = queue.keys(ALICE)
    for key in keys.keys:
        ttl = await redis.ttl(key)
        # Not shortened by the second, shorter-lived message.
        assert 30 * DAY + KEY_TTL_GRACE_SECONDS - 5 <= ttl <= 30 * DAY + KEY_TTL_GRACE_SECONDS


# -- fetch.lua ---------------------------------------------------------------------------------


async def test_fetch_pages_oldest_first_with_cursor(queue):
    ids = await fill(queue, ALICE, 25)

    first = await queue.fetch(ALICE, now=NOW + 30, limit=10)
    second = await queue.fetch(ALICE, now=NOW + 30, cursor=first.next_cursor, limit=10)
    third = await queue.fetch(ALICE, now=NOW + 30, cursor=second.next_cursor, limit=10)

    assert [m.id for m in first.items] == ids[:10]
    assert [m.id for m in second.items] == ids[10:20]
    assert [m.id for m in third.items] == ids[20:]
    assert first.next_cursor and second.next_cursor and third.next_cursor is None
    assert [m.envelope for m in third.items] == [envelope(i) for i in range(20, 25)]


async def test_page_ending_at_the_last_message_has_no_cursor(queue):
    await fill(queue, ALICE, 10)

    page = await queue.fetch(ALICE, now=NOW + 10, limit=10)

    assert len(page.items) == 10
    assert page.next_cursor is None


async def test_fetch_of_an_unknown_account_is_empty(queue, keys_under, redis_prefix):
    page = await queue.fetch(ALICE, now=NOW)

    assert page.items == () and page.next_cursor is None
    assert await keys_under(redis_prefix) == []


async def test_receive_order_holds_when_the_clock_steps_back(queue):
    await queue.enqueue(ALICE, mid(1), envelope(1), now=NOW + 10, ttl_seconds=DAY)
    await queue.enqueue(ALICE, mid(2), envelope(2), now=NOW, ttl_seconds=DAY)  # another process, slow clock
    await queue.enqueue(ALICE, mid(3), envelope(3), now=NOW, ttl_seconds=DAY)

    page = await queue.fetch(ALICE, now=NOW + 11, limit=1)
    rest = await drain_from(queue, ALICE, page.next_cursor)

    assert [m.id for m in page.items] + rest == [mid(1), mid(2), mid(3)]
    assert [m.received_at for m in (await queue.fetch(ALICE, now=NOW + 11)).items] == [NOW + 10, NOW, NOW]


async def drain_from(queue: MessageQueue, account: str, cursor: str | None) -> list[str]:
    seen: list[str] = []
    while cursor is not None:
        page = await queue.fetch(account, now=NOW + 11, cursor=cursor, limit=1)
        seen += [m.id for m in page.items]
        cursor = page.next_cursor
    return seen


async def test_messages_enqueued_while_paging_appear_on_later_pages(queue):
    ids = await fill(queue, ALICE, 5)
    first = await queue.fetch(ALICE, now=NOW + 10, limit=3)

    await queue.enqueue(ALICE, mid(99), envelope(99), now=NOW + 1, ttl_seconds=DAY)
    second = await queue.fetch(ALICE, now=NOW + 10, cursor=first.next_cursor, limit=3)

    assert [m.id for m in first.items] + [m.id for m in second.items] == ids + [mid(99)]


async def test_cursor_is_stable_while_messages_are_acked(queue):
    ids = await fill(queue, ALICE, 30)
    first = await queue.fetch(ALICE, now=NOW + 30, limit=10)

    # The client acks what it saw; another device acks some messages further on.
    await queue.ack(ALICE, [m.id for m in first.items] + ids[12:15])
    second = await queue.fetch(ALICE, now=NOW + 30, cursor=first.next_cursor, limit=10)

    # A full page again: the acked messages neither shift the position nor leave a gap.
    assert [m.id for m in second.items] == ids[10:12] + ids[15:23]
    assert await drain_from_cursor(queue, second.next_cursor) == ids[23:]


async def drain_from_cursor(queue: MessageQueue, cursor: str | None) -> list[str]:
    seen: list[str] = []
    while cursor is not None:
        page = await queue.fetch(ALICE, now=NOW + 30, cursor=cursor, limit=10)
        seen += [m.id for m in page.items]
        cursor = page.next_cursor
    return seen


async def test_paging_under_concurrent_acks_skips_and_repeats_nothing(redis, redis_prefix):
    # Two instances, as two processes would be; the pool gives each in-flight call its own
    # connection, so acks land between page reads on the server.
    reader = MessageQueue(redis, prefix=redis_prefix, require_account=False)
    acker = MessageQueue(redis, prefix=redis_prefix, require_account=False)
    ids = await fill(reader, ALICE, 300)
    to_ack = random.Random(7).sample(ids, 150)

    async def ack_slowly() -> None:
        for start in range(0, len(to_ack), 5):
            await acker.ack(ALICE, to_ack[start : start + 5])
            await asyncio.sleep(0)

    seen, _ = await asyncio.gather(drain(reader, ALICE, now=NOW + 400, limit=7), ack_slowly())

    assert len(seen) == len(set(seen))
    assert seen == sorted(seen, key=ids.index)  # oldest first throughout
    assert set(ids) - set(to_ack) <= set(seen)  # every message never acked was delivered
    assert await queue_len(reader) == 150


async def queue_len(queue: MessageQueue) -> int:
    return await queue.count(ALICE, now=NOW)


@pytest.mark.parametrize("limit", [0, -1, MAX_PAGE_SIZE + 1, True, 2.5])
async def test_fetch_rejects_a_limit_out_of_range(queue, limit):
    with pytest.raises(InvalidRequest, match="limit"):
        await queue.fetch(ALICE, now=NOW, limit=limit)


@pytest.mark.parametrize("cursor", ["", "abc", "-1", "1.5", "1" * 18, " 12"])
async def test_fetch_rejects_a_cursor_it_did_not_make(queue, cursor):
    with pytest.raises(InvalidRequest, match="cursor"):
        await queue.fetch(ALICE, now=NOW, cursor=cursor)


async def test_fetch_page_size_defaults_to_100(queue):
    await fill(queue, ALICE, 101)

    page = await queue.fetch(ALICE, now=NOW + 200)

    assert len(page.items) == 100 and page.next_cursor is not None


async def test_cursor_at_a_time_pages_the_messages_received_after_it(queue):
    await fill(queue, ALICE, 5)  # received at NOW + 0 … NOW + 4

    after_2 = await queue.fetch(ALICE, now=NOW, cursor=queue.cursor_at(NOW + 2), limit=10)
    from_start = await queue.fetch(ALICE, now=NOW, cursor=queue.cursor_at(NOW - 1), limit=10)
    after_all = await queue.fetch(ALICE, now=NOW, cursor=queue.cursor_at(NOW + 4), limit=10)

    assert [m.id for m in after_2.items] == [mid(3), mid(4)]
    assert [m.id for m in from_start.items] == [mid(i) for i in range(5)]
    assert after_all.items == () and after_all.next_cursor is None


# -- get.lua -----------------------------------------------------------------------------------


async def test_get_returns_the_stored_message_by_id(queue):
    await fill(queue, ALICE, 3)

    got = await queue.get(ALICE, mid(1), now=NOW + 5)

    assert got is not None
    assert (got.id, got.envelope, got.received_at, got.expires_at) == (mid(1), envelope(1), NOW + 1, NOW + 1 + DAY)


async def test_get_of_an_id_never_stored_is_none(queue):
    await fill(queue, ALICE, 1)

    assert await queue.get(ALICE, mid(7), now=NOW) is None
    assert await queue.get(BOB, mid(0), now=NOW) is None  # another account's id


async def test_get_of_an_expired_message_is_none_before_the_sweeper_runs(queue, redis):
    await queue.enqueue(ALICE, mid(1), envelope(1), now=NOW, ttl_seconds=60)

    assert await queue.get(ALICE, mid(1), now=NOW + 59.9) is not None
    assert await queue.get(ALICE, mid(1), now=NOW + 60) is None
    assert await structure_members(redis, queue, ALICE) == ({mid(1)},) * 3  # read only


async def test_get_after_ack_is_none(queue):
    ids = await fill(queue, ALICE, 2)

    await queue.ack(ALICE, [ids[0]])

    assert await queue.get(ALICE, ids[0], now=NOW + 2) is None
    assert (await queue.get(ALICE, ids[1], now=NOW + 2)) is not None


async def test_get_rejects_a_bad_id(queue):
    with pytest.raises(InvalidRequest, match="message id"):
        await queue.get(ALICE, "", now=NOW)


# -- ack.lua -----------------------------------------------------------------------------------


async def test_ack_removes_message_from_every_structure(queue, redis):
    ids = await fill(queue, ALICE, 3)

    removed = await queue.ack(ALICE, [ids[1]])

    assert removed == 1
    assert await structure_members(redis, queue, ALICE) == ({ids[0], ids[2]},) * 3
    assert [m.id for m in (await queue.fetch(ALICE, now=NOW + 3)).items] == [ids[0], ids[2]]


async def test_ack_is_idempotent_and_ignores_unknown_ids(queue):
    ids = await fill(queue, ALICE, 2)

    assert await queue.ack(ALICE, [ids[0], mid(404), ids[0]]) == 1
    assert await queue.ack(ALICE, [ids[0]]) == 0
    assert await queue.ack(ALICE, []) == 0
    assert await queue.ack(BOB, [ids[1]]) == 0
    assert [m.id for m in (await queue.fetch(ALICE, now=NOW + 2)).items] == [ids[1]]


async def test_ack_of_more_ids_than_one_script_call_takes(queue):
    ids = await fill(queue, ALICE, ACK_CHUNK + 20, ttl=DAY)

    assert await queue.ack(ALICE, ids) == ACK_CHUNK + 20
    assert await queue.count(ALICE, now=NOW) == 0


async def test_ack_rejects_a_single_string(queue):
    with pytest.raises(InvalidRequest, match="ids"):
        await queue.ack(ALICE, mid(1))


async def test_only_the_expiring_ack_memory_is_left_after_every_message_is_acked(queue, keys_under, redis_prefix, redis):
    ids = await fill(queue, ALICE, 5)
    assert len(await keys_under(redis_prefix)) == 4  # queue, expiry, msg, qbytes

    await queue.ack(ALICE, ids[:2])
    await queue.ack(ALICE, ids[2:])

    assert await keys_under(redis_prefix) == [queue.keys(ALICE).acked]
    assert 0 < await redis.ttl(queue.keys(ALICE).acked) <= ACK_MEMORY_SECONDS


# -- expiry (fetch.lua, count) -------------------------------------------------------------------


async def test_expired_message_is_not_fetched_before_the_sweeper_runs(queue, redis):
    await queue.enqueue(ALICE, mid(1), envelope(1), now=NOW, ttl_seconds=60)
    await queue.enqueue(ALICE, mid(2), envelope(2), now=NOW, ttl_seconds=120)

    at_59 = await queue.fetch(ALICE, now=NOW + 59)
    at_60 = await queue.fetch(ALICE, now=NOW + 60)
    at_120 = await queue.fetch(ALICE, now=NOW + 120)

    assert [m.id for m in at_59.items] == [mid(1), mid(2)]
    assert [m.id for m in at_60.items] == [mid(2)]
    assert at_120.items == ()
    # Hidden, not removed: freeing memory is the sweeper's job (tests/delivery/test_sweeper.py).
    assert await structure_members(redis, queue, ALICE) == ({mid(1), mid(2)},) * 3


async def test_count_excludes_expired_messages(queue):
    await queue.enqueue(ALICE, mid(1), envelope(1), now=NOW, ttl_seconds=60)
    await queue.enqueue(ALICE, mid(2), envelope(2), now=NOW, ttl_seconds=120)

    assert [await queue.count(ALICE, now=NOW + t) for t in (0, 59.5, 60, 120)] == [2, 2, 1, 0]


async def test_page_with_expired_messages_is_short_but_keeps_the_cursor(queue):
    await queue.enqueue(ALICE, mid(1), envelope(1), now=NOW, ttl_seconds=10)
    await queue.enqueue(ALICE, mid(2), envelope(2), now=NOW, ttl_seconds=10)
    await queue.enqueue(ALICE, mid(3), envelope(3), now=NOW, ttl_seconds=DAY)

    page = await queue.fetch(ALICE, now=NOW + 10, limit=2)
    rest = await queue.fetch(ALICE, now=NOW + 10, cursor=page.next_cursor, limit=2)

    assert page.items == () and page.next_cursor is not None
    assert [m.id for m in rest.items] == [mid(3)]


# -- delete_queue.lua ------------------------------------------------------------------------------


async def test_delete_queue_removes_every_key_of_the_account_only(queue, keys_under, redis_prefix):
    await fill(queue, ALICE, 4)
    await queue.enqueue(BOB, mid(1), envelope(1), now=NOW, ttl_seconds=DAY)

    removed = await queue.delete_queue(ALICE)

    assert removed == 4
    assert await keys_under(redis_prefix) == sorted(queue.keys(BOB).keys)
    assert (await queue.fetch(ALICE, now=NOW)).items == ()
    assert await queue.delete_queue(ALICE) == 0


# -- the account gate and delete_account.lua ------------------------------------------------------


async def open_account(redis: aioredis.Redis, queue: MessageQueue, account: str, created: int = 1000) -> None:
    """Write a minimal account hash (what delivery.accounts writes on creation)."""
    await redis.hset(queue.keys(account).account, mapping={"created": str(created), "origin": "signed"})


async def test_gated_enqueue_refuses_an_account_without_its_hash_and_writes_nothing(
    gated, redis, redis_prefix, keys_under
):
    pubsub = redis.pubsub()
    await pubsub.subscribe(gated.channel(ALICE))
    await pubsub.get_message(timeout=1)  # the subscribe confirmation
    try:
        with pytest.raises(AccountMissingError) as refused:
            await gated.enqueue(ALICE, mid(1), envelope(1), now=NOW, ttl_seconds=DAY)

        assert refused.value.code == "receiver_without_account" and refused.value.status == 404
        assert await keys_under(redis_prefix) == []
        assert await next_message(pubsub, 0.3) is None  # nothing announced
    finally:
        await pubsub.aclose()


async def test_gated_enqueue_stores_while_the_account_hash_exists(gated, redis, redis_prefix, keys_under):
    await open_account(redis, gated, ALICE)

    assert await gated.enqueue(ALICE, mid(1), envelope(1), now=NOW, ttl_seconds=DAY)
    assert await gated.enqueue(ALICE, mid(1), envelope(1), now=NOW, ttl_seconds=DAY) is False

    assert await keys_under(redis_prefix) == sorted([*gated.keys(ALICE).keys, gated.keys(ALICE).account])


async def test_delete_account_removes_hash_and_queue_and_writes_the_tombstone(gated, redis, redis_prefix, keys_under):
    await open_account(redis, gated, ALICE, created=1000)
    await open_account(redis, gated, BOB)
    for i in range(3):
        await gated.enqueue(ALICE, mid(i), envelope(i), now=NOW, ttl_seconds=60 if i == 0 else DAY)
    await gated.enqueue(BOB, mid(9), envelope(9), now=NOW, ttl_seconds=DAY)

    dropped = await gated.delete_account(ALICE, generation=1000, tombstone='{"deletedAt":2000}')

    assert dropped == 3  # the expired but unswept one counts too
    bob = gated.keys(BOB)
    assert await keys_under(redis_prefix) == sorted([*bob.keys, bob.account, gated.keys(ALICE).tombstone])
    assert await redis.get(gated.keys(ALICE).tombstone) == b'{"deletedAt":2000}'
    assert await redis.ttl(gated.keys(ALICE).tombstone) == -1  # no expiry


async def test_delete_account_of_another_generation_or_no_account_changes_nothing(
    gated, redis, redis_prefix, keys_under
):
    await open_account(redis, gated, ALICE, created=1000)
    await gated.enqueue(ALICE, mid(1), envelope(1), now=NOW, ttl_seconds=DAY)
    before = {key: await redis.dump(key) for key in await keys_under(redis_prefix)}

    # Re-created (another generation) since the caller read it; and an account that is gone.
    assert await gated.delete_account(ALICE, generation=999, tombstone="{}") is None
    assert await gated.delete_account(BOB, generation=1000, tombstone="{}") is None

    after = {key: await redis.dump(key) for key in await keys_under(redis_prefix)}
    assert after == before
    assert not await redis.exists(gated.keys(BOB).tombstone)


async def test_message_racing_a_deletion_is_never_left_queued_in_either_order(gated, redis, redis_prefix, keys_under):
    # The two scripts in the two orders a submission and a deletion can take on the server.
    await open_account(redis, gated, ALICE)
    await gated.enqueue(ALICE, mid(1), envelope(1), now=NOW, ttl_seconds=DAY)  # stored first ...
    assert await gated.delete_account(ALICE, generation=1000, tombstone="{}") == 1  # ... deleted with it

    with pytest.raises(AccountMissingError):  # deleted first: refused
        await gated.enqueue(ALICE, mid(2), envelope(2), now=NOW, ttl_seconds=DAY)

    assert await keys_under(redis_prefix) == [gated.keys(ALICE).tombstone]


async def test_concurrent_submissions_and_a_deletion_leave_no_message_behind(redis, redis_url, redis_prefix, keys_under):
    # Separate connections, so the server interleaves the scripts as it receives them.
    clients = [aioredis.from_url(redis_url) for _ in range(4)]
    try:
        queues = [MessageQueue(c, prefix=redis_prefix) for c in clients]
        await open_account(redis, queues[0], ALICE)

        async def submit(q: MessageQueue, first: int) -> int:
            stored = 0
            for i in range(first, first + 50):
                try:
                    stored += await q.enqueue(ALICE, mid(i), envelope(i, 50), now=NOW, ttl_seconds=DAY)
                except AccountMissingError:
                    pass
            return stored

        async def delete_soon() -> int | None:
            await asyncio.sleep(0.005)
            return await queues[3].delete_account(ALICE, generation=1000, tombstone="{}")

        *stored, dropped = await asyncio.gather(*(submit(q, 100 * n) for n, q in enumerate(queues[:3])), delete_soon())
    finally:
        for c in clients:
            await c.aclose()

    assert dropped == sum(stored)  # every message stored before the deletion went with it
    assert await keys_under(redis_prefix) == [queue_keys(redis_prefix, ALICE).tombstone]


def test_account_key_builders_are_the_layouts_names():
    keys = queue_keys("ensign:", ALICE)

    assert account_key("ensign:", ALICE) == keys.account == f"ensign:account:{{{ALICE}}}"
    assert tombstone_key("ensign:", ALICE) == keys.tombstone == f"ensign:tombstone:{{{ALICE}}}"
    assert signed_message_key("ensign:", ALICE, "sig").startswith(f"ensign:signed:{{{ALICE}}}:")


# -- layout ------------------------------------------------------------------------------------


TRICKY_ACCOUNTS = [ALICE, "alice.eth", "a{b", "a}b", "{", "}", "{}", "}{", "x}{y}", "%7B", "%", "ünï"]


@pytest.mark.parametrize("account", TRICKY_ACCOUNTS)
async def test_keys_of_one_account_share_one_hash_slot(queue, redis, redis_prefix, keys_under, account):
    # CLUSTER KEYSLOT needs a cluster; redis-py's key_slot applies the same hash-tag rule.
    await queue.enqueue(account, mid(1), envelope(1), now=NOW, ttl_seconds=DAY)

    written = await keys_under(redis_prefix)
    names = queue.keys(account)
    account_names = [names.account, names.tombstone, signed_message_key(redis_prefix, account, "s")]

    assert written == sorted(names.keys)
    assert len({key_slot(key.encode()) for key in written + [names.channel, *account_names]}) == 1
    # The tag is the whole escaped account, never a piece of it or of the prefix.
    tag = names.queue[names.queue.index("{") + 1 : -1]
    assert "{" not in tag and "}" not in tag and tag
    assert key_slot(names.queue.encode()) == key_slot(tag.encode())


def test_distinct_accounts_never_share_a_key():
    names = [queue_keys("ensign:", account) for account in TRICKY_ACCOUNTS + ["a%7Bb", "a%257Bb"]]

    every_key = [key for n in names for key in (n.queue, n.expiry, n.messages, n.channel, n.account, n.tombstone)]
    assert len(every_key) == len(set(every_key))


@pytest.mark.parametrize("account", TRICKY_ACCOUNTS)
def test_channel_maps_back_to_its_account(redis_prefix, account):
    queue = MessageQueue(aioredis.Redis(), prefix=redis_prefix)  # never connects

    assert queue.account_from_channel(queue.channel(account).encode()) == account


@pytest.mark.parametrize("prefix", ["ens{ign:", "ens}ign:"])
def test_prefix_with_a_brace_is_refused(prefix):
    with pytest.raises(ValueError, match="prefix"):
        MessageQueue(aioredis.Redis(), prefix=prefix)


@pytest.mark.parametrize(
    ("account", "message_id", "body", "now", "ttl", "max_queued", "field"),
    [
        ("", mid(1), b"x", NOW, 60, None, "account"),
        ("a" * 257, mid(1), b"x", NOW, 60, None, "account"),
        (ALICE, "", b"x", NOW, 60, None, "message id"),
        (ALICE, mid(1), b"", NOW, 60, None, "envelope"),
        (ALICE, mid(1), b"x", float("nan"), 60, None, "now"),
        (ALICE, mid(1), b"x", -1, 60, None, "now"),
        (ALICE, mid(1), b"x", NOW, 0, None, "ttl_seconds"),
        (ALICE, mid(1), b"x", NOW, 1.5, None, "ttl_seconds"),
        (ALICE, mid(1), b"x", NOW, 60, 0, "max_queued"),
    ],
)
async def test_enqueue_rejects_bad_arguments_and_stores_nothing(
    queue, keys_under, redis_prefix, account, message_id, body, now, ttl, max_queued, field
):
    with pytest.raises(InvalidRequest, match=field):
        await queue.enqueue(account, message_id, body, now=now, ttl_seconds=ttl, max_queued=max_queued)

    assert await keys_under(redis_prefix) == []


# -- notification (PUBLISH in enqueue.lua) -------------------------------------------------------


async def test_enqueue_publishes_the_id_on_the_account_channel(queue, redis):
    pubsub = redis.pubsub()
    await pubsub.subscribe(queue.channel(ALICE))
    try:
        await queue.enqueue(BOB, mid(2), envelope(2), now=NOW, ttl_seconds=DAY)
        await queue.enqueue(ALICE, mid(1), envelope(1), now=NOW, ttl_seconds=DAY)

        message = await next_message(pubsub, timeout=5)
        assert message is not None
        assert message["channel"].decode() == queue.channel(ALICE)
        assert message["data"] == mid(1).encode()
        assert await next_message(pubsub, timeout=0.2) is None  # Bob's message went to Bob's channel
    finally:
        await pubsub.aclose()


async def test_duplicate_enqueue_publishes_nothing(queue, redis):
    await queue.enqueue(ALICE, mid(1), envelope(1), now=NOW, ttl_seconds=DAY)
    pubsub = redis.pubsub()
    await pubsub.subscribe(queue.channel(ALICE))
    try:
        await queue.enqueue(ALICE, mid(1), envelope(1), now=NOW + 1, ttl_seconds=DAY)

        assert await next_message(pubsub, timeout=0.3) is None
    finally:
        await pubsub.aclose()


async def test_pattern_subscriber_hears_every_account(queue, redis):
    pubsub = redis.pubsub()
    await pubsub.psubscribe(queue.notify_pattern)
    try:
        await queue.enqueue("a}b", mid(1), envelope(1), now=NOW, ttl_seconds=DAY)
        await queue.enqueue(ALICE, mid(2), envelope(2), now=NOW, ttl_seconds=DAY)

        heard = [await next_message(pubsub, timeout=5) for _ in range(2)]
        assert [(queue.account_from_channel(m["channel"]), m["data"]) for m in heard if m] == [
            ("a}b", mid(1).encode()),
            (ALICE, mid(2).encode()),
        ]
    finally:
        await pubsub.aclose()


# -- crashes and script cache --------------------------------------------------------------------


WRITER = textwrap.dedent(
    """
    import asyncio, sys
    import redis.asyncio as aioredis
    from delivery.queue import MessageQueue

    async def main(url, prefix, account):
        queue = MessageQueue(aioredis.from_url(url), prefix=prefix, require_account=False)
        i = 0
        while True:
            await queue.enqueue(account, f"m{i}", b"e" * 6000, now=1000.0 + i, ttl_seconds=3600)
            if i % 3 == 2:
                await queue.ack(account, [f"m{i - 1}"])
            if i == 20:
                print("writing", flush=True)
            i += 1

    asyncio.run(main(*sys.argv[1:]))
    """
)


@pytest.mark.parametrize("round_", range(3))
async def test_writer_killed_mid_stream_leaves_only_whole_messages(redis, redis_url, redis_prefix, round_):
    """SIGKILL a process that enqueues and acks in a loop; every message is whole or absent.

    The API has no multi-step writes: each enqueue, ack, sweep or delete is one EVALSHA, and Redis
    runs a script to completion or not at all (a client that dies mid-request never delivers the
    command). So a crash can lose only the call in flight, which the caller never saw succeed and
    retries (enqueue is idempotent). Were the three structures written by separate commands, a kill
    between them would leave an id in one structure but not the others: a version of this loop
    with three plain commands left them inconsistent in 7 of 10 kills, hence three rounds.
    """
    queue = MessageQueue(redis, prefix=redis_prefix, require_account=False)
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WRITER, redis_url, redis_prefix, ALICE,
        stdout=asyncio.subprocess.PIPE, cwd=Path(__file__).resolve().parents[2],
    )
    assert child.stdout is not None
    assert await asyncio.wait_for(child.stdout.readline(), timeout=30) == b"writing\n"
    await asyncio.sleep(random.uniform(0.05, 0.3))
    child.send_signal(signal.SIGKILL)
    await child.wait()

    in_queue, in_expiry, in_hash = await structure_members(redis, queue, ALICE)
    assert len(in_queue) > 10
    assert in_queue == in_expiry == in_hash
    fetched, cursor = [], None
    while True:
        page = await queue.fetch(ALICE, now=1000.0, cursor=cursor, limit=MAX_PAGE_SIZE)
        fetched += page.items
        if (cursor := page.next_cursor) is None:
            break
    assert all(m.envelope == b"e" * 6000 for m in fetched)
    assert {m.id for m in fetched} == in_queue


async def test_unacked_messages_are_delivered_again_after_a_consumer_dies(redis, redis_prefix):
    ids = await fill(MessageQueue(redis, prefix=redis_prefix, require_account=False), ALICE, 3)
    first_reader = MessageQueue(redis, prefix=redis_prefix, require_account=False)
    page = await first_reader.fetch(ALICE, now=NOW + 3)
    await first_reader.ack(ALICE, [page.items[0].id])
    del first_reader  # dies before acking the rest

    again = await MessageQueue(redis, prefix=redis_prefix, require_account=False).fetch(ALICE, now=NOW + 3)

    assert [m.id for m in again.items] == ids[1:]


async def test_scripts_are_sent_again_after_redis_forgets_them(tmp_path):
    # A private server: SCRIPT FLUSH on the shared one would disturb other tests.
    with EmbeddedRedis(tmp_path, persistent=False) as server:
        client = aioredis.from_url(server.url)
        try:
            queue = MessageQueue(client, prefix="t:", require_account=False)
            await queue.enqueue(ALICE, mid(1), envelope(1), now=NOW, ttl_seconds=DAY)
            await client.script_flush()  # what a restart or failover to a fresh replica does

            assert await queue.enqueue(ALICE, mid(2), envelope(2), now=NOW, ttl_seconds=DAY)
            assert [m.id for m in (await queue.fetch(ALICE, now=NOW)).items] == [mid(1), mid(2)]
        finally:
            await client.aclose()


# -- inserts of concurrent callers share a pipeline (delivery.batching) ---------------------------


async def test_concurrent_inserts_each_get_their_own_answer(queue, redis):
    ids = [f"0x{n:064x}" for n in range(10)]
    calls = [queue.enqueue("acct", ids[n % 10], envelope(n % 10), now=time.time(), ttl_seconds=60) for n in range(30)]
    outcomes = await asyncio.gather(*calls)
    # Each id stored once, by exactly one of its three callers; the others are told it was queued.
    assert sorted(outcomes) == [False] * 20 + [True] * 10
    page = await queue.fetch("acct", now=time.time(), limit=100)
    assert sorted(item.id for item in page.items) == ids
