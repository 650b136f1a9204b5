"""Typed keys for what the delivery app holds (aiohttp ``AppKey``): its settings, the clients it
was given, its clock and the objects it builds on them."""

from __future__ import annotations

from aiohttp import web

from ensign.clock import Clock
from ensign.config import DeliverySettings
from ensign.redis_client import RedisClient

from .accounts import Accounts
from .at_rest import AtRest
from .batching import ScriptBatcher
from .forwarder import Forwarder
from .intake import Intake
from .metrics import DeliveryMetrics
from .multi_intake import Forward, MultiIntake
from .ports import Chain, Directory
from .queue import MessageQueue
from ensign.sessions import Sessions

settings_key = web.AppKey("settings_key", DeliverySettings)
# A single server or a cluster (``REDIS_CLUSTER``); a union is no class, so the type is a parameter.
redis_key: web.AppKey[RedisClient] = web.AppKey("redis_key")
directory_key = web.AppKey("directory_key", Directory)
chain_key = web.AppKey("chain_key", Chain)
clock_key: web.AppKey[Clock] = web.AppKey("clock_key")
queue_key = web.AppKey("queue_key", MessageQueue)
# The script batcher the queue's inserts and the rate limits share (one Redis connection).
batcher_key = web.AppKey("batcher_key", ScriptBatcher)
accounts_key = web.AppKey("accounts_key", Accounts)
sessions_key = web.AppKey("sessions_key", Sessions)
intake_key = web.AppKey("intake_key", Intake)
forwarder_key = web.AppKey("forwarder_key", Forwarder)
multi_intake_key = web.AppKey("multi_intake_key", MultiIntake)
# What create_app was given to forward multi-recipient receivers hosted elsewhere (a callable).
forward_key: web.AppKey[Forward] = web.AppKey("forward_key")
metrics_key = web.AppKey("metrics_key", DeliveryMetrics)
at_rest_key = web.AppKey("at_rest_key", AtRest)
