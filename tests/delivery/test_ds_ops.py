"""/health, /metrics, request ids and structured logs without secrets."""

from __future__ import annotations

import json
import logging

import pytest
import redis.asyncio as aioredis
from stack.devchain import DevChain
from stack.devchain_rpc import DevChainRpcServer
from tests.delivery.ds_helpers import (  # noqa: F401  (fixtures)
    MemoryChain,
    chain,
    clock,
    directory,
    ds_client,
    ds_settings,
    login,
    make_settings,
    signup,
    users,
)

from delivery.app import create_app
from ensign.config import ChainSettings, ConfigError, RedisSettings
from ensign.logs import JsonFormatter


class BrokenChain(MemoryChain):
    async def block_number(self) -> int:
        raise ConnectionError("node down")


async def test_health_reports_redis_and_chain(ds_client) -> None:
    resp = await ds_client.get("/health")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok", "redis": "ok", "chain": "ok"}


async def test_health_is_503_when_a_dependency_is_down(aiohttp_client, ds_settings, directory, clock) -> None:
    dead = aioredis.from_url("redis://127.0.0.1:1", socket_connect_timeout=0.5)
    try:
        app = create_app(ds_settings, redis=dead, directory=directory, chain=BrokenChain(), clock=clock, sweep_interval=None)
        client = await aiohttp_client(app)
        resp = await client.get("/health")
        assert resp.status == 503
        assert await resp.json() == {"status": "unavailable", "redis": "unreachable", "chain": "unreachable"}
    finally:
        await dead.aclose()


async def test_metrics_count_requests_by_route(ds_client) -> None:
    await ds_client.get("/hello")
    resp = await ds_client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    text = await resp.text()
    assert 'ensign_ds_request_seconds_count{method="GET",route="/hello",status="200"} 1.0' in text


async def test_request_id_is_echoed_and_logged_without_secrets(ds_client, users, caplog) -> None:
    resp = await ds_client.get("/hello", headers={"X-Request-Id": "abc-123"})
    assert resp.headers["X-Request-Id"] == "abc-123"
    resp = await ds_client.get("/hello", headers={"X-Request-Id": "bad id with spaces"})
    assert resp.headers["X-Request-Id"] != "bad id with spaces"
    caplog.set_level(logging.DEBUG)
    await signup(ds_client, users[0])
    token = await login(ds_client, users[0])
    formatter = JsonFormatter()
    lines = [formatter.format(record) for record in caplog.records]
    assert lines and all(json.loads(line)["msg"] for line in lines)
    assert any("request_id" in json.loads(line) for line in lines)
    joined = "\n".join(lines)
    assert token not in joined
    assert users[0].keys.signing.secret_key not in joined


async def test_redis_down_is_503_on_rest_and_rpc(aiohttp_client, ds_settings, directory, chain, clock, users) -> None:
    from tests.delivery.ds_helpers import envelope, rpc_submit

    dead = aioredis.from_url("redis://127.0.0.1:1", socket_connect_timeout=0.5)
    try:
        app = create_app(ds_settings, redis=dead, directory=directory, chain=chain, clock=clock, sweep_interval=None)
        client = await aiohttp_client(app)
        resp = await client.get(f"/auth/{users[0].name}")
        assert resp.status == 503
        assert (await resp.json())["error"] == "unavailable"
        # Regression (fault suite): clients are told when to retry.
        assert resp.headers["Retry-After"] == "1"
        resp = await client.post("/rpc", json=rpc_submit(envelope(users[0], users[1], ds_settings)))
        assert resp.status == 503
        assert (await resp.json())["error"]["code"] == -32000
        assert resp.headers["Retry-After"] == "1"
    finally:
        await dead.aclose()


async def test_body_over_the_limit_is_413_json_rpc(ds_client, ds_settings, redis, redis_prefix) -> None:
    padding = "x" * (2 * ds_settings.message_size_limit + 70_000)
    resp = await ds_client.post("/rpc", json={"jsonrpc": "2.0", "method": "dm3_submitMessage", "params": [padding]})
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == -32011
    resp = await ds_client.post("/auth/x.eth", data=padding)
    assert resp.status == 413
    assert (await resp.json())["error"] == "payload_too_large"


async def test_without_clients_the_app_opens_its_own_from_the_settings(aiohttp_client, redis_url, redis_prefix) -> None:
    # As the backend and the gateway: the factory opens Redis and the chain from the settings in a
    # cleanup context and serves with them.
    async with DevChain() as chain, DevChainRpcServer(chain, port=0) as rpc:
        settings = make_settings(
            redis_prefix, redis=RedisSettings(url=redis_url, prefix=redis_prefix), chain=ChainSettings(rpc_url=rpc.url)
        )
        app = create_app(settings, sweep_interval=None)
        client = await aiohttp_client(app)
        resp = await client.get("/health")
        assert resp.status == 200, await resp.text()
        assert await resp.json() == {"status": "ok", "redis": "ok", "chain": "ok"}


def test_clients_come_together_or_not_at_all(redis_prefix) -> None:
    with pytest.raises(ConfigError, match="together"):
        create_app(make_settings(redis_prefix), redis=object())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="REDIS_URL and ETH_RPC_URL"):
        create_app(make_settings(redis_prefix))
