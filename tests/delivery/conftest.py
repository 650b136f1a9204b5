"""Fixtures for the delivery queue tests, built on the shared ``redis`` / ``redis_prefix`` fixtures
of tests/conftest.py (a real Redis; every key a test writes is under its own prefix and deleted
after it)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import redis.asyncio as aioredis

from delivery.queue import MessageQueue


@pytest.fixture
def queue(redis: aioredis.Redis, redis_prefix: str) -> MessageQueue:
    """A queue used on its own (no account hashes), for the scripts' mechanics."""
    return MessageQueue(redis, prefix=redis_prefix, require_account=False)


@pytest.fixture
def gated(redis: aioredis.Redis, redis_prefix: str) -> MessageQueue:
    """A queue as the delivery service makes it: it stores only while the account hash exists."""
    return MessageQueue(redis, prefix=redis_prefix)


@pytest.fixture
def keys_under(redis: aioredis.Redis) -> Callable[[str], Awaitable[list[str]]]:
    """``await keys_under(prefix)`` → sorted names of every key under ``prefix`` (via SCAN)."""

    async def list_keys(prefix: str) -> list[str]:
        # A set first: SCAN may return a key more than once (while Redis resizes its table).
        return sorted({key.decode() async for key in redis.scan_iter(match=f"{prefix}*", count=500)})

    return list_keys
