"""Fixtures for the profile backend: the production app on a real Redis, wallets with dm3 keys."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from tests.backend.backend_helpers import ADDR_DOMAIN, USER_DOMAIN, Snapshot, Wallet, snapshot

from backend.app import create_app
from ensign.config import BackendSettings, RedisSettings


@pytest.fixture(scope="session")
def wallet_pool() -> list[Wallet]:
    # Deriving keys costs a wallet signature; a few wallets, made once, serve every test.
    return [Wallet.create() for _ in range(4)]


@pytest.fixture
def alice(wallet_pool: list[Wallet]) -> Wallet:
    return wallet_pool[0]


@pytest.fixture
def bob(wallet_pool: list[Wallet]) -> Wallet:
    return wallet_pool[1]


@pytest.fixture
def carol(wallet_pool: list[Wallet]) -> Wallet:
    return wallet_pool[2]


@pytest.fixture
def settings(redis_url: str, redis_prefix: str) -> BackendSettings:
    return BackendSettings(
        addr_domains=(ADDR_DOMAIN,),
        user_domains=(USER_DOMAIN,),
        redis=RedisSettings(url=redis_url, prefix=redis_prefix),
    )


@pytest.fixture
async def client(aiohttp_client: Any, settings: BackendSettings, redis: aioredis.Redis) -> Any:
    """A test client of the production app sharing the test's Redis client and prefix."""
    return await aiohttp_client(create_app(settings, redis=redis))


@pytest.fixture
def store_snapshot(redis: aioredis.Redis, redis_prefix: str) -> Callable[[], Awaitable[Snapshot]]:
    """Takes a snapshot of every key the test's backend wrote."""

    async def take() -> Snapshot:
        return await snapshot(redis, redis_prefix)

    return take
