"""The backend app as a whole: health, its own Redis client, JSON for unknown routes, CORS."""

from __future__ import annotations

from dataclasses import replace

import pytest

from backend.app import create_app
from backend.keys import profile_key
from ensign.config import BackendSettings, ConfigError, RedisSettings


async def test_health_is_ok_when_redis_answers(client):
    response = await client.get("/health")
    assert response.status == 200
    assert await response.json() == {"status": "ok", "redis": "ok"}


async def test_health_is_503_when_redis_is_unreachable(aiohttp_client, settings):
    import redis.asyncio as aioredis

    # A port nothing listens on; the client is handed in, so start-up does not wait for it.
    dead = aioredis.from_url("redis://127.0.0.1:1", socket_connect_timeout=0.5)
    try:
        client = await aiohttp_client(create_app(settings, redis=dead))
        response = await client.get("/health")
        assert response.status == 503
        assert (await response.json())["error"] == "unavailable"
        # Every other endpoint answers 503 as well, never 500.
        response = await client.get("/records/alice.user.ensign.eth")
        assert response.status == 503
    finally:
        await dead.aclose()


async def test_app_opens_and_closes_its_own_redis_client(aiohttp_client, settings, redis, redis_prefix, alice):
    client = await aiohttp_client(create_app(settings))
    response = await client.post("/profile/address", json=alice.register_body())
    assert response.status == 200
    # Written with the configured prefix, visible to an independent client.
    assert await redis.exists(profile_key(redis_prefix, alice.address)) == 1


def test_app_without_a_redis_url_or_client_is_a_config_error():
    with pytest.raises(ConfigError, match="REDIS_URL"):
        create_app(BackendSettings(redis=RedisSettings(url=None)))


async def test_start_up_fails_when_its_redis_is_unreachable(aiohttp_client, settings, monkeypatch):
    import ensign.redis_client

    monkeypatch.setattr(ensign.redis_client, "CONNECT_ATTEMPTS", 1)
    unreachable = replace(settings, redis=replace(settings.redis, url="redis://127.0.0.1:1"))
    with pytest.raises(Exception, match="unreachable"):
        await aiohttp_client(create_app(unreachable))


async def test_unknown_route_and_method_are_json(client):
    response = await client.get("/nope")
    assert response.status == 404
    assert (await response.json())["error"] == "not_found"
    response = await client.put("/profile/address")
    assert response.status == 405
    assert (await response.json())["error"] == "method_not_allowed"


async def test_cors_for_browser_clients(client):
    response = await client.options(
        "/profile/address", headers={"Origin": "https://app.dm3.chat", "Access-Control-Request-Method": "POST"}
    )
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    response = await client.get("/health", headers={"Origin": "https://app.dm3.chat"})
    assert response.headers["Access-Control-Allow-Origin"] == "*"
