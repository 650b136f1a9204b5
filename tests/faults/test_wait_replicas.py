"""REDIS_WAIT_REPLICAS: a message is answered OK only once replicas have it; too few confirm → 503."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from delivery.queue import MessageQueue, NotReplicatedError
from bench.redis_servers import RedisServer
from tests.delivery.ds_helpers import (  # noqa: F401  (fixtures)
    chain,
    clock,
    directory,
    ds_client,
    envelope,
    make_settings,
    rpc_submit,
    signup,
    users,
)

Servers = tuple[RedisServer, RedisServer]
ALICE = "0x" + "a1" * 20
NOW = 1_700_000_000.0


@pytest.fixture
async def primary_and_replica(tmp_path: Path) -> AsyncIterator[tuple[RedisServer, RedisServer]]:
    primary = RedisServer(tmp_path / "primary").start()
    replica = RedisServer(tmp_path / "replica").start()
    try:
        async with aioredis.Redis(port=replica.port) as client:
            await client.replicaof("127.0.0.1", primary.port)
            while (await client.info("replication")).get("master_link_status") != "up":
                await asyncio.sleep(0.05)
        yield primary, replica
    finally:
        replica.stop()
        primary.stop()


async def test_a_stored_message_is_on_the_replica_when_enqueue_returns(primary_and_replica: Servers) -> None:
    primary, replica = primary_and_replica
    async with aioredis.Redis(port=primary.port) as client, aioredis.Redis(port=replica.port) as copy:
        queue = MessageQueue(client, prefix="w:", require_account=False, wait_replicas=1, wait_timeout_ms=5000)

        assert await queue.enqueue(ALICE, "m1", b"envelope", now=NOW, ttl_seconds=60) is True

        assert await copy.zscore(queue.keys(ALICE).queue, "m1") is not None
        assert await queue.ack(ALICE, ["m1"], now=NOW) == 1
        assert await copy.zscore(queue.keys(ALICE).queue, "m1") is None


async def test_too_few_replicas_is_503_and_a_repeat_is_de_duplicated(primary_and_replica: Servers) -> None:
    primary, replica = primary_and_replica
    async with aioredis.Redis(port=primary.port) as client:
        queue = MessageQueue(client, prefix="w:", require_account=False, wait_replicas=2, wait_timeout_ms=50)

        with pytest.raises(NotReplicatedError) as raised:
            await queue.enqueue(ALICE, "m1", b"envelope", now=NOW, ttl_seconds=60)
        assert raised.value.status == 503
        assert raised.value.code == "not_replicated"

        # The write stayed on the primary: the client's repeat stores nothing new.
        with pytest.raises(NotReplicatedError):
            await queue.enqueue(ALICE, "m1", b"envelope", now=NOW + 1, ttl_seconds=60)
        assert [m.id for m in (await queue.fetch(ALICE, now=NOW + 1)).items] == ["m1"]


async def test_wait_survives_a_restart_that_lost_the_scripts(primary_and_replica: Servers) -> None:
    primary, _ = primary_and_replica
    async with aioredis.Redis(port=primary.port) as client:
        queue = MessageQueue(client, prefix="w:", require_account=False, wait_replicas=1, wait_timeout_ms=5000)
        await client.script_flush()

        assert await queue.enqueue(ALICE, "m1", b"envelope", now=NOW, ttl_seconds=60) is True


# -- through the service: the answer a client gets --------------------------------------------


@pytest.fixture
def ds_settings(redis_prefix: str) -> Any:
    # The test Redis has no replica, so no WAIT for one can be met.
    return make_settings(redis_prefix, redis_wait_replicas=1, redis_wait_timeout_ms=20)


async def test_submission_without_enough_replicas_is_503_not_replicated(
    ds_client: Any, users: Any, ds_settings: Any
) -> None:
    await signup(ds_client, users[1])
    body = rpc_submit(envelope(users[0], users[1], ds_settings))

    for _ in range(2):  # the client's repeat gets the same clear answer
        resp = await ds_client.post("/rpc", json=body)
        assert resp.status == 503
        assert resp.headers["Retry-After"] == "1"
        error = (await resp.json())["error"]
        assert (error["code"], error["data"]["error"]) == (-32022, "not_replicated")
