"""Typed keys for what the backend keeps on its ``web.Application``."""

from __future__ import annotations

from aiohttp import web

from backend.names import Domains
from backend.store import ProfileStore
from ensign.clock import Clock
from ensign.config import BackendSettings
from ensign.redis_client import RedisClient

__all__ = ["settings_key", "redis_key", "store_key", "domains_key", "clock_key"]

settings_key = web.AppKey("settings_key", BackendSettings)
# A single server or a cluster (``REDIS_CLUSTER``); a union is no class, so the type is a parameter.
redis_key: web.AppKey[RedisClient] = web.AppKey("redis_key")
store_key = web.AppKey("store_key", ProfileStore)
domains_key = web.AppKey("domains_key", Domains)
clock_key: web.AppKey[Clock] = web.AppKey("clock_key")
