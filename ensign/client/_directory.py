"""ENS for the SDK: a :class:`ensign.ens.lookup.NameLookup` on the configured node.

With a public node the lookup keeps web3's safe CCIP-Read policy (https only, public hosts) and
the lookup's own checks of profile links. For a development chain (``ClientConfig.local_gateways``)
the gateway of ``make dev`` sits on ``http://127.0.0.1``, so both are loosened: web3 keeps its
blocked networks in a module-level list, which :func:`ensign.ens.lookup.allow_loopback_ccip_gateways`
edits for the whole process.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ensign.errors import ServiceUnavailable
from ensign.ens.lookup import LinkPolicy, NameLookup, allow_loopback_ccip_gateways, production_web3

from ._config import ClientConfig


async def open_directory(config: ClientConfig) -> NameLookup:
    """A lookup reading ENS through ``config.rpc_url``; the caller closes it."""
    w3 = production_web3(config.rpc_url)
    provider = w3.provider
    if config.local_gateways:
        allow_loopback_ccip_gateways()
        provider.ccip_read_allow_http = True
        provider.ccip_read_url_validator = None
        policy = LinkPolicy(allow_http=True, allow_private=True, timeout=config.timeout)
    else:
        policy = LinkPolicy(timeout=config.timeout)
    if urlsplit(config.rpc_url).scheme in ("ws", "wss"):
        try:
            await provider.connect()
        except Exception as exc:
            raise ServiceUnavailable("the Ethereum node cannot be reached over its websocket") from exc
    return NameLookup(
        w3,
        registry=config.ens_registry,
        link_policy=policy,
        on_close=provider.disconnect,
        revocation_domains=(config.addr_domain,),
    )
