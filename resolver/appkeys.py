"""Typed keys for what the gateway keeps on its ``web.Application`` (aiohttp ``AppKey``)."""

from __future__ import annotations

import aiohttp
from aiohttp import web
from eth_account.signers.local import LocalAccount

from ensign.clock import Clock
from ensign.config import GatewaySettings
from ensign.ens import ccip
from resolver.records import RecordSource

__all__ = ["batch_session_key", "clock_key", "records_key", "settings_key", "signer_key", "variant_key"]

settings_key = web.AppKey("settings_key", GatewaySettings)
records_key = web.AppKey("records_key", RecordSource)
signer_key = web.AppKey("signer_key", LocalAccount)
variant_key = web.AppKey("variant_key", ccip.CcipVariant)
# Only with ``batch_gateway=True``: the session that fetches the URLs of ENSIP-21 batch queries.
batch_session_key = web.AppKey("batch_session_key", aiohttp.ClientSession)
clock_key: web.AppKey[Clock] = web.AppKey("clock_key")
