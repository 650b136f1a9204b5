"""ensign.redis_client.open_redis: one factory for a single Redis and a Redis Cluster."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import redis.exceptions
from redis.asyncio import Redis, RedisCluster

import ensign.redis_client
from ensign.config import ConfigError, RedisSettings
from ensign.errors import ServiceUnavailable
from ensign.redis_client import lua_script, open_redis, redis_unavailable
from tests.cluster import Cluster


async def test_single_server_client_has_answered_a_ping(redis_url: str, redis_prefix: str) -> None:
    client = await open_redis(RedisSettings(url=redis_url, prefix=redis_prefix))
    try:
        assert type(client) is Redis
        assert await client.set(f"{redis_prefix}k", "v") and await client.get(f"{redis_prefix}k") == b"v"
    finally:
        await client.delete(f"{redis_prefix}k")
        await client.aclose()


async def test_cluster_client_knows_every_primary_before_its_first_command(redis_cluster: Cluster) -> None:
    client = await open_redis(redis_cluster.settings("test:"))
    try:
        assert isinstance(client, RedisCluster)
        assert sorted(int(node.port) for node in client.get_primaries()) == sorted(redis_cluster.ports)
        # pubsub() picks its node from the slot map: on a client that has not read it, redis-py
        # raises KeyError here.
        pubsub = client.pubsub()
        await pubsub.psubscribe("test:notify:{*}")
        await pubsub.aclose()
    finally:
        await client.aclose()


async def test_options_reach_the_client(redis_cluster: Cluster, redis_prefix: str) -> None:
    client = await open_redis(redis_cluster.settings(redis_prefix), decode_responses=True)
    try:
        await client.set(f"{redis_prefix}k", "v")
        assert await client.get(f"{redis_prefix}k") == "v"
    finally:
        await client.delete(f"{redis_prefix}k")
        await client.aclose()


async def test_unreachable_redis_is_retried_then_unavailable_without_the_password(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ensign.redis_client, "RETRY_DELAY", 0.0)
    settings = RedisSettings(url="redis://:hunter2-secret@127.0.0.1:1/0")
    with caplog.at_level(logging.WARNING, logger="ensign.redis_client"):
        with pytest.raises(ServiceUnavailable, match="Redis is unreachable; is it running and REDIS_URL right") as error:
            await open_redis(settings, attempts=2)
    attempts = [r.getMessage() for r in caplog.records]
    assert [m.split(":")[0] for m in attempts] == ["Redis not reachable (attempt 1 of 2)", "Redis not reachable (attempt 2 of 2)"]
    assert all("hunter2" not in m for m in [*attempts, str(error.value)])


async def test_unreachable_cluster_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ensign.redis_client, "RETRY_DELAY", 0.0)
    with pytest.raises(ServiceUnavailable, match="Redis Cluster is unreachable"):
        await open_redis(RedisSettings(url="redis://127.0.0.1:1/0", cluster=True), attempts=2)


async def test_without_a_url_there_is_nothing_to_open() -> None:
    with pytest.raises(ConfigError, match="REDIS_URL"):
        await open_redis(RedisSettings(url=None))



@pytest.mark.parametrize("package", ["delivery.lua", "backend.lua"])
def test_every_lua_script_is_read_from_a_package_that_wheels_ship(package: str) -> None:
    # package-data ships *.lua only from packages, so each script directory is one.
    directory = Path(__file__).resolve().parent.parent / package.replace(".", "/")
    assert (directory / "__init__.py").is_file()
    scripts = sorted(directory.glob("*.lua"))
    assert scripts
    for path in scripts:
        assert lua_script(package, path.stem) == path.read_text(encoding="utf-8")


def _raised_in(module_name: str) -> AttributeError:
    """An AttributeError raised by code whose module is ``module_name``, as redis-py's would be."""
    namespace: dict[str, object] = {"__name__": module_name}
    exec("def send(writer):\n    writer.writelines([b'PING'])\n", namespace)
    try:
        namespace["send"](None)  # type: ignore[operator]
    except AttributeError as exc:
        return exc
    raise AssertionError("no AttributeError")


def test_a_connection_torn_down_inside_redis_py_counts_as_unavailable() -> None:
    # redis-py's cluster client, mid-failover: 'NoneType' object has no attribute 'writelines'.
    assert redis_unavailable(_raised_in("redis.asyncio.cluster"))
    assert redis_unavailable(redis.exceptions.ConnectionError("gone"))
    # The same error from our own code is a bug, answered 500 and logged.
    assert not redis_unavailable(_raised_in("delivery.queue"))
    assert not redis_unavailable(AttributeError("never raised"))
    assert not redis_unavailable(ValueError("x"))
