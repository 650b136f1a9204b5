"""Typed keys for what the delivery app holds (aiohttp ``AppKey``) and per-request data."""

from __future__ import annotations

import redis.asyncio as aioredis
from aiohttp import web

from ensign.config import DeliverySettings

from .accounts import Accounts
from .intake import Intake
from .metrics import DeliveryMetrics
from .ports import Chain, Clock, Directory
from .queue import MessageQueue
from .sessions import Sessions

settings_key = web.AppKey("settings_key", DeliverySettings)
redis_key = web.AppKey("redis_key", aioredis.Redis)
directory_key = web.AppKey("directory_key", Directory)
chain_key = web.AppKey("chain_key", Chain)
clock_key: web.AppKey[Clock] = web.AppKey("clock_key")
queue_key = web.AppKey("queue_key", MessageQueue)
accounts_key = web.AppKey("accounts_key", Accounts)
sessions_key = web.AppKey("sessions_key", Sessions)
intake_key = web.AppKey("intake_key", Intake)
metrics_key = web.AppKey("metrics_key", DeliveryMetrics)
