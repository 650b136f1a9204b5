"""Fixtures shared by every test: a real Redis, and a key prefix each test owns.

Redis is ``REDIS_URL`` when set (CI points it at the machine's Redis 7), otherwise an embedded
Redis 6.2 started for the session. A test never flushes a database: it writes under its own
``redis_prefix`` and the ``redis`` fixture deletes exactly those keys afterwards, so a developer's
own data in a shared Redis is never touched.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from stack.embedded_redis import EmbeddedRedis

# The end-to-end profiles stack (backend, gateway, embedded chain, lookup), shared by the profile
# and delivery end-to-end tests; it lives in its own module because it is large.
from tests.stack import stack  # noqa: F401
from tests.cluster import cluster_redis, redis_cluster  # noqa: F401  (a Redis Cluster: tests/cluster.py)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    server = EmbeddedRedis(Path(tmp_path_factory.mktemp("redis")), persistent=False)
    yield server.start()
    server.stop()


@pytest.fixture
def redis_prefix() -> str:
    return f"test:{uuid.uuid4().hex[:12]}:"


async def delete_prefixed(client: aioredis.Redis, prefix: str) -> None:
    """Delete every key under ``prefix`` with SCAN (never KEYS, never FLUSHDB)."""
    batch: list[bytes] = []
    async for key in client.scan_iter(match=f"{prefix}*", count=500):
        batch.append(key)
        if len(batch) >= 500:
            await client.delete(*batch)
            batch.clear()
    if batch:
        await client.delete(*batch)


@pytest.fixture
async def redis(redis_url: str, redis_prefix: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_url)
    try:
        yield client
    finally:
        await delete_prefixed(client, redis_prefix)
        await client.aclose()
