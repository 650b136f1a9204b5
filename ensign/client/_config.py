"""Where the SDK finds the chain, the profile backend and the delivery services.

``ClientConfig()`` is the ``make dev`` stack on this machine:

=========================  =========================================  ============================
field                      meaning                                    default
=========================  =========================================  ============================
``rpc_url``                Ethereum JSON-RPC node ENS is read from    ``http://127.0.0.1:8545``
``backend_url``            profile backend profiles are published to  ``http://127.0.0.1:8081``
``ens_registry``           ENS registry on that chain                 ENS's canonical address
``addr_domain``            parent of the ``0x<address>.<domain>``     ``addr.ensign.eth``
                           name the backend registers
``delivery_services``      delivery services (ENS names) a new        ``("ds.ensign.eth",)``
                           profile lists, primary first
``allow_local_gateways``   let CCIP-Read and profile links use http   ``None``: only when
                           and loopback/private hosts                 ``rpc_url`` is on loopback
``timeout``                seconds for one HTTP request               ``10``
``reconnect_delay``        first wait before a socket reconnects      ``0.5`` (doubles each time)
``reconnect_delay_max``    longest wait between reconnects            ``10``
=========================  =========================================  ============================

A production dapp sets at least ``rpc_url`` (its mainnet node), ``backend_url``, ``addr_domain``
and ``delivery_services``::

    ClientConfig(rpc_url="https://eth.example.com", backend_url="https://backend.example.com",
                 addr_domain="addr.example.eth", delivery_services=("ds.example.eth",))

``allow_local_gateways`` loosens web3's CCIP-Read URL rules for the whole process (web3 keeps them
in a module-level list): keep it off for anything but a development chain.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from ensign.config import DEFAULT_ADDR_DOMAINS, DEFAULT_DELIVERY_NAME, DEV_BACKEND_URL, DEV_RPC_URL, ENS_REGISTRY_ADDRESS
from ensign.errors import InvalidRequest

__all__ = ["ClientConfig", "DEV_RPC_URL", "DEV_BACKEND_URL"]



@dataclass(frozen=True)
class ClientConfig:
    """Settings of a :class:`~ensign.client.Client` (see the module docstring for the table)."""

    rpc_url: str = DEV_RPC_URL
    backend_url: str = DEV_BACKEND_URL
    ens_registry: str = ENS_REGISTRY_ADDRESS
    addr_domain: str = DEFAULT_ADDR_DOMAINS[0]
    delivery_services: tuple[str, ...] = (DEFAULT_DELIVERY_NAME,)
    allow_local_gateways: bool | None = None
    timeout: float = 10.0
    reconnect_delay: float = 0.5
    reconnect_delay_max: float = 10.0

    def __post_init__(self) -> None:
        for field_name, schemes in (("rpc_url", ("http", "https", "ws", "wss")), ("backend_url", ("http", "https"))):
            value = getattr(self, field_name)
            parts = urlsplit(value) if isinstance(value, str) else None
            if parts is None or parts.scheme not in schemes or not parts.netloc:
                raise InvalidRequest(f"{field_name} must be a URL starting with {' or '.join(s + '://' for s in schemes)}")
        if not isinstance(self.delivery_services, str):
            # A list would make the frozen config unhashable and its profile key differ from a tuple's.
            object.__setattr__(self, "delivery_services", tuple(self.delivery_services))
        if isinstance(self.delivery_services, str) or not all(
            isinstance(name, str) and name for name in self.delivery_services
        ):
            raise InvalidRequest("delivery_services must be a tuple of ENS names")
        if not self.delivery_services:
            raise InvalidRequest("delivery_services must name at least one delivery service")
        if self.timeout <= 0 or self.reconnect_delay <= 0 or self.reconnect_delay_max < self.reconnect_delay:
            raise InvalidRequest("timeout and reconnect delays must be positive, reconnect_delay_max ≥ reconnect_delay")

    @property
    def local_gateways(self) -> bool:
        """Whether CCIP-Read and profile links may reach http and loopback/private hosts."""
        if self.allow_local_gateways is not None:
            return self.allow_local_gateways
        return _is_loopback(urlsplit(self.rpc_url).hostname or "")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
