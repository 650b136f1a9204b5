"""Typed keys for what the backend keeps on its ``web.Application``."""

from __future__ import annotations

import redis.asyncio as aioredis
from aiohttp import web

from backend.names import Domains
from backend.store import ProfileStore
from ensign.config import BackendSettings

__all__ = ["settings_key", "redis_key", "store_key", "domains_key"]

settings_key = web.AppKey("settings_key", BackendSettings)
redis_key = web.AppKey("redis_key", aioredis.Redis)
store_key = web.AppKey("store_key", ProfileStore)
domains_key = web.AppKey("domains_key", Domains)
