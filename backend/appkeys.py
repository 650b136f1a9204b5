"""Typed keys for what the backend keeps on its ``web.Application``."""

from __future__ import annotations

from aiohttp import web

from backend.blobstore import BlobStore
from backend.convstore import ConversationStore
from backend.docstore import DocumentStore
from backend.names import Domains
from backend.store import ProfileStore
from ensign.clock import Clock
from ensign.config import BackendSettings
from ensign.ens.wallets import WalletSignatures
from ensign.redis_client import RedisClient
from ensign.sessions import Sessions

__all__ = [
    "settings_key",
    "redis_key",
    "store_key",
    "domains_key",
    "sessions_key",
    "documents_key",
    "conversations_key",
    "blobs_key",
    "clock_key",
    "wallets_key",
    "now_ms",
]

settings_key = web.AppKey("settings_key", BackendSettings)
# A single server or a cluster (``REDIS_CLUSTER``); a union is no class, so the type is a parameter.
redis_key: web.AppKey[RedisClient] = web.AppKey("redis_key")
store_key = web.AppKey("store_key", ProfileStore)
domains_key = web.AppKey("domains_key", Domains)
sessions_key = web.AppKey("sessions_key", Sessions)
documents_key = web.AppKey("documents_key", DocumentStore)
conversations_key = web.AppKey("conversations_key", ConversationStore)
blobs_key = web.AppKey("blobs_key", BlobStore)
clock_key: web.AppKey[Clock] = web.AppKey("clock_key")
wallets_key = web.AppKey("wallets_key", WalletSignatures)


def now_ms(request: web.Request) -> int:
    """The app's clock in milliseconds."""
    return int(request.app[clock_key]() * 1000)
