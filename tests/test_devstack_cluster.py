"""``ensign dev`` on a real three-master Redis Cluster (tests/cluster.py), as ``REDIS_CLUSTER=yes``
runs it: the demo's two users publish profiles, claim aliases, open accounts, and exchange a message
pushed over socket.io and acknowledged, all on one cluster client the stack opened."""

from __future__ import annotations

import io
from pathlib import Path

from redis.asyncio import RedisCluster
from tests.cluster import Cluster
from tests.test_devstack import ports_zero

from stack.demo import DEMO_TEXT, run_demo
from stack.devstack import DevStack, client_config


async def test_demo_delivers_a_message_through_the_dev_stack_on_a_cluster(
    tmp_path: Path, redis_cluster: Cluster, cluster_redis: RedisCluster, redis_prefix: str
) -> None:
    settings = ports_zero(tmp_path, redis_url=redis_cluster.url, redis_prefix=redis_prefix, redis_cluster=True)
    stack = await DevStack(settings).start()
    try:
        out = io.StringIO()
        message = await run_demo(client_config(stack), "user.ensign.eth", out)
        assert message.text == DEMO_TEXT
        assert out.getvalue().rstrip().endswith("Demo complete.")
    finally:
        await stack.close()
    # Both services wrote through the stack's one client, under the stack's prefix.
    keys = [key.decode() async for key in cluster_redis.scan_iter(match=f"{redis_prefix}*")]
    assert any("{backend}" in key for key in keys) and any(key.startswith(f"{redis_prefix}account:") for key in keys)
