"""Helpers for the backend tests: wallets with dm3 keys, request bodies, Redis snapshots."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from tests.wallets import ADDR_DOMAIN, USER_DOMAIN, Wallet, now_ms  # noqa: F401  (re-exported for the backend tests)

Snapshot = dict[bytes, tuple[str, Any, bool]]


async def snapshot(redis: aioredis.Redis, prefix: str) -> Snapshot:
    """Every key under ``prefix`` with its type, value and whether it has a TTL."""
    out: Snapshot = {}
    async for key in redis.scan_iter(match=f"{prefix}*", count=500):
        kind = (await redis.type(key)).decode()
        value: Any
        if kind == "string":
            value = await redis.get(key)
        elif kind == "hash":
            value = await redis.hgetall(key)
        elif kind == "set":
            value = await redis.smembers(key)
        elif kind == "zset":
            value = await redis.zrange(key, 0, -1, withscores=True)
        else:
            value = kind
        out[key] = (kind, value, await redis.pttl(key) > 0)
    return out
