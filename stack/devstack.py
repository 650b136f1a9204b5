"""The whole stack in one process for a laptop: ``ensign dev``.

Start order (each step needs the one before), stopped in reverse:

1. Redis — ``REDIS_URL`` when given (a Redis Cluster node with ``REDIS_CLUSTER``), otherwise the
   embedded Redis with its append-only file under ``<data_dir>/redis``, so a restart keeps
   profiles, names, accounts and messages; one client serves the backend and the delivery service;
2. the backend (profiles and names, in Redis);
3. the CCIP-Read gateway, reading the backend over HTTP and answering the Universal Resolver's
   ENSIP-21 batch queries as well (dev only: in production ENS's own batch gateway does that);
4. the embedded chain: our ENS registry at ENS's canonical address, the Universal Resolver
   stand-in, and an OffchainResolver for the address and user domains pointing at the gateway;
5. the chain's JSON-RPC server, so ethers, viem, web3 and browsers can use it;
6. the delivery service, whose own profile is published on the chain as the
   ``network.dm3.deliveryService`` text record of its name (a ``data:`` URI), so clients find it
   through ENS exactly as they find a production one;
7. a contract wallet (our EIP-1271 ``OwnedWallet``, owned by the chain's second funded account)
   named ``wallet.ensign.eth``: its profile, signed by the owner key for the contract, is the
   name's on-chain ``network.dm3.profile`` record, and it has an account at the delivery service,
   so every profile lookup and message to it goes through ``isValidSignature``.

The chain lives in memory and is rebuilt on every start; deployment is deterministic (same
deployer, same nonces), so contract addresses repeat and every profile kept in Redis resolves again.

Secrets the stack needs (the gateway's signing key, the delivery service's key pairs and JWT
secret) are generated on the first start and kept in ``<data_dir>/dev-secrets.json`` (mode 0600),
so a restart signs with the same keys and existing sessions and postmarks stay valid.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import secrets
import signal
import socket
import stat
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from aiohttp import web
from eth_account import Account

from backend.app import create_app as create_backend
from delivery.app import create_app as create_delivery
from delivery.ports import Web3Chain
from ensign.client import ApiError, Client, ClientConfig, Wallet
from ensign.config import (
    DEFAULT_ADDR_DOMAINS,
    DEFAULT_DELIVERY_NAME,
    DEFAULT_REDIS_PREFIX,
    DEFAULT_USER_DOMAINS,
    BackendSettings,
    ChainSettings,
    ConfigError,
    DeliveryKeys,
    DeliveryLimits,
    DeliverySettings,
    GatewaySettings,
    HttpSettings,
    RedisSettings,
)
from stack.demo import run_demo
from stack.devchain import DevChain
from stack.devchain_rpc import DevChainRpcServer
from stack.embedded_redis import EmbeddedRedis
from stack.serve import restore_recursion_limit, runner_options
from ensign.protocol.keys import random_encryption_key_pair, random_signing_key_pair
from ensign.protocol.models import DeliveryServiceProfile
from ensign.ens.wallets import WalletSignatures
from ensign.protocol.profile import DELIVERY_SERVICE_RECORD_NAME, PROFILE_RECORD_NAME, profile_json_data_uri
from ensign.redis_client import RedisClient, open_redis
from resolver.gateway import create_app as create_gateway
from ensign.ens.lookup import NameLookup, open_lookup


#: The name of the dev stack's contract wallet.
DEFAULT_WALLET_NAME = "wallet.ensign.eth"

#: The recursion limit of ``ensign dev``: py-evm's own (1,024 EVM call frames need about 12 Python
#: frames each), not py_ecc's 100,000 that let deep recursion crash the process (stack.serve).
DEV_RECURSION_LIMIT = 12 * 1024


@dataclass(frozen=True)
class DevStackSettings:
    """What ``ensign dev`` starts and where. Ports of ``0`` let the OS pick (tests do)."""

    host: str = "127.0.0.1"
    data_dir: Path = Path(".ensign")
    redis_url: str | None = None
    redis_prefix: str = DEFAULT_REDIS_PREFIX
    #: ``redis_url`` names a node of a Redis Cluster (``REDIS_CLUSTER``); needs a ``redis_url``.
    redis_cluster: bool = False
    chain_port: int = 8545
    backend_port: int = 8081
    gateway_port: int = 8082
    delivery_port: int = 8083
    delivery_name: str = DEFAULT_DELIVERY_NAME
    #: The name of the contract wallet (EIP-1271) the stack deploys and opens an account for.
    wallet_name: str = DEFAULT_WALLET_NAME
    addr_domains: tuple[str, ...] = DEFAULT_ADDR_DOMAINS
    user_domains: tuple[str, ...] = DEFAULT_USER_DOMAINS
    #: The delivery service's quotas and rate limits (``ensign dev`` reads them from the environment).
    delivery_limits: DeliveryLimits = field(default_factory=DeliveryLimits)


@dataclass
class DevSecrets:
    """Secrets generated once per data directory; fields added later are filled in on load."""

    gateway_signer_key: str = field(repr=False)
    delivery_keys: DeliveryKeys = field(repr=False)
    jwt_secret: str = field(repr=False)

    @classmethod
    def load_or_create(cls, path: Path) -> DevSecrets:
        stored: dict[str, str] = {}
        if path.exists():
            try:
                stored = {str(k): str(v) for k, v in json.loads(path.read_text()).items()}
            except (ValueError, AttributeError):
                raise ConfigError(f"{path} is not a valid dev secrets file; delete it to make a new one") from None
        wanted = dict(stored)
        wanted.setdefault("gatewaySignerKey", "0x" + secrets.token_hex(32))
        if "signingPrivateKey" not in wanted:
            signing = random_signing_key_pair()
            wanted.update(signingPublicKey=signing.public_key, signingPrivateKey=signing.secret_key)
        if "encryptionPrivateKey" not in wanted:
            encryption = random_encryption_key_pair()
            wanted.update(encryptionPublicKey=encryption.public_key, encryptionPrivateKey=encryption.secret_key)
        wanted.setdefault("jwtSecret", secrets.token_hex(32))
        if wanted != stored:
            _write_private(path, wanted)
        try:
            return cls(
                gateway_signer_key=wanted["gatewaySignerKey"],
                delivery_keys=DeliveryKeys(
                    signing_public_key=wanted["signingPublicKey"],
                    signing_private_key=wanted["signingPrivateKey"],
                    encryption_public_key=wanted["encryptionPublicKey"],
                    encryption_private_key=wanted["encryptionPrivateKey"],
                ),
                jwt_secret=wanted["jwtSecret"],
            )
        except KeyError:
            raise ConfigError(f"{path} is not a valid dev secrets file; delete it to make a new one") from None


def _write_private(path: Path, data: dict[str, str]) -> None:
    """Write ``data`` as JSON readable by the owner only (created 0600, replaced atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "w") as file:
        json.dump(data, file, indent=2, sort_keys=True)
    os.replace(partial, path)


@dataclass
class DevStack:
    """A running stack; :meth:`start` fills in the URLs actually bound."""

    settings: DevStackSettings
    redis_url: str = ""
    backend_url: str = ""
    gateway_url: str = ""
    chain_url: str = ""
    delivery_url: str = ""
    #: The contract wallet's address and its owner's (the chain's ``accounts[1]``).
    wallet_address: str = ""
    wallet_owner: str = ""
    chain: DevChain | None = None
    lookup: NameLookup | None = None
    gateway_signer: str = ""
    _exit: AsyncExitStack = field(default_factory=AsyncExitStack)

    async def start(self) -> DevStack:
        settings = self.settings
        try:
            await self._start(settings)
        except BaseException:
            await self._exit.aclose()
            raise
        return self

    async def _start(self, settings: DevStackSettings) -> None:
        data_dir = settings.data_dir.resolve()
        dev_secrets = DevSecrets.load_or_create(data_dir / "dev-secrets.json")

        if settings.redis_url is not None:
            self.redis_url = settings.redis_url
        else:
            redis_server = EmbeddedRedis(data_dir / "redis", persistent=True)
            self.redis_url = await asyncio.to_thread(redis_server.start)
            self._exit.callback(redis_server.stop)
        redis_settings = RedisSettings(url=self.redis_url, prefix=settings.redis_prefix, cluster=settings.redis_cluster)
        # One client for the backend and the delivery service, closed after both have stopped.
        redis = await open_redis(redis_settings)
        self._exit.push_async_callback(redis.aclose)

        backend_settings = BackendSettings(
            host=settings.host,
            port=settings.backend_port,
            addr_domains=settings.addr_domains,
            user_domains=settings.user_domains,
            redis=redis_settings,
        )
        # Contract wallets are read on the chain, which starts after the backend (step 4).
        wallets = WalletSignatures()
        self.backend_url = await self._serve(
            create_backend(backend_settings, redis=redis, wallets=wallets), settings.backend_port, "backend"
        )

        signer = Account.from_key(dev_secrets.gateway_signer_key)
        self.gateway_signer = signer.address
        gateway_settings = GatewaySettings(
            signer_key=dev_secrets.gateway_signer_key,
            host=settings.host,
            port=settings.gateway_port,
            backend_url=self.backend_url,
        )
        self.gateway_url = await self._serve(
            create_gateway(gateway_settings, batch_gateway=True), settings.gateway_port, "gateway"
        )

        chain = DevChain(
            gateway_url=f"{self.gateway_url}/{{sender}}/{{data}}.json",
            signers=[signer.address],
            offchain_names=[*settings.addr_domains, *settings.user_domains],
        )
        self.chain = await chain.start()
        self._exit.push_async_callback(chain.close)
        wallets.w3 = chain.w3
        rpc = DevChainRpcServer(chain, host=settings.host, port=settings.chain_port)
        try:
            await rpc.start()
        except OSError as error:
            raise ConfigError(_port_taken("chain JSON-RPC", settings.chain_port, error)) from None
        self._exit.push_async_callback(rpc.close)
        self.chain_url = rpc.url

        await self._start_delivery(settings, dev_secrets, redis_settings, redis, chain)
        await self._start_wallet(settings, chain)

    async def _start_delivery(
        self,
        settings: DevStackSettings,
        dev_secrets: DevSecrets,
        redis_settings: RedisSettings,
        redis: RedisClient,
        chain: DevChain,
    ) -> None:
        lookup = await open_lookup(ChainSettings(), w3=chain.w3, revocation_domains=settings.addr_domains)
        self.lookup = lookup
        self._exit.push_async_callback(lookup.close)
        delivery_settings = DeliverySettings(
            keys=dev_secrets.delivery_keys,
            jwt_secret=dev_secrets.jwt_secret,
            host=settings.host,
            port=settings.delivery_port,
            url=f"http://{settings.host}:{settings.delivery_port}",
            name=settings.delivery_name,
            redis=redis_settings,
            limits=settings.delivery_limits,
        )
        if settings.delivery_port == 0:
            # The app signs and checks account messages against its own URL, so a free port is
            # picked before the app is built (tests only; the race with another binder is benign).
            probe = socket.socket()
            probe.bind((settings.host, 0))
            port = probe.getsockname()[1]
            probe.close()
            delivery_settings = dataclasses.replace(
                delivery_settings, port=port, url=f"http://{settings.host}:{port}"
            )
        app = create_delivery(delivery_settings, redis=redis, directory=lookup, chain=Web3Chain(chain.w3))
        self.delivery_url = await self._serve(app, delivery_settings.port, "delivery service")
        profile = DeliveryServiceProfile(
            public_encryption_key=delivery_settings.keys.encryption_public_key,
            public_signing_key=delivery_settings.keys.signing_public_key,
            url=self.delivery_url,
        )
        await chain.set_text(settings.delivery_name, DELIVERY_SERVICE_RECORD_NAME, profile_json_data_uri(profile))
        # The name belongs to the chain's deployer, who runs the service here: with an address and a
        # primary name, every ENS client (getEnsAddress, getEnsName) answers for it as for any name.
        await chain.set_addr(settings.delivery_name, chain.deployer)
        await chain.set_primary_name(chain.deployer, settings.delivery_name)

    async def _start_wallet(self, settings: DevStackSettings, chain: DevChain) -> None:
        """Deploy the contract wallet, publish its profile as its name's on-chain record and open
        its account at the delivery service (kept in Redis across restarts: the address repeats)."""
        owner = Wallet.from_private_key(chain.private_keys[1])
        deployed = await chain.deploy_wallet(owner.address)
        self.wallet_address, self.wallet_owner = deployed.address, owner.address
        name = settings.wallet_name
        async with Client(Wallet.contract(deployed.address, owner), client_config(self), name=name) as client:
            signed = await client.signed_profile()
            await chain.set_text(name, PROFILE_RECORD_NAME, profile_json_data_uri(signed))
            await chain.set_addr(name, deployed.address)
            await chain.set_primary_name(deployed.address, name)
            try:
                await client.create_account()
            except ApiError as exc:
                if exc.code != "account_exists":
                    raise

    async def _serve(self, app: web.Application, port: int, what: str) -> str:
        runner = web.AppRunner(app, access_log=None, **runner_options(HttpSettings()))
        await runner.setup()
        self._exit.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, self.settings.host, port)
        try:
            await site.start()
        except OSError as error:
            raise ConfigError(_port_taken(what, port, error)) from None
        bound_port = int(runner.addresses[0][1])
        return f"http://{self.settings.host}:{bound_port}"

    async def close(self) -> None:
        await self._exit.aclose()

    def endpoints(self) -> list[tuple[str, str]]:
        assert self.chain is not None
        return [
            ("chain JSON-RPC", self.chain_url),
            ("backend", self.backend_url),
            ("CCIP-Read gateway", self.gateway_url),
            ("delivery service", f"{self.delivery_url}  ({self.settings.delivery_name})"),
            ("Redis", self.redis_url),
            ("ENS registry", self.chain.registry.address),
            ("OffchainResolver", self.chain.offchain_resolver.address),
            ("reverse registrar", self.chain.reverse_registrar.address),
            ("gateway signer", self.gateway_signer),
            ("chain id", str(self.chain.chain_id)),
        ]

    def names(self) -> list[tuple[str, str]]:
        return [
            *(("address names", f"0x<address>.{domain}") for domain in self.settings.addr_domains),
            *(("user names", f"<label>.{domain}") for domain in self.settings.user_domains),
            ("contract wallet", f"{self.settings.wallet_name} = {self.wallet_address} "
             f"(EIP-1271, owner {self.wallet_owner})"),
        ]


def _port_taken(what: str, port: int, error: OSError) -> str:
    return f"cannot listen for the {what} on port {port} ({error.strerror}); choose another port with the flags of `ensign dev`"


def print_table(stack: DevStack, out: TextIO) -> None:
    rows = stack.endpoints() + stack.names()
    width = max(len(label) for label, _ in rows)
    out.write("Ensign dev stack is up:\n")
    for label, value in rows:
        out.write(f"  {label.ljust(width)}  {value}\n")
    out.write("Press Ctrl-C to stop.\n")
    out.flush()


def client_config(stack: DevStack) -> ClientConfig:
    """An SDK configuration for this stack's endpoints."""
    return ClientConfig(
        rpc_url=stack.chain_url,
        backend_url=stack.backend_url,
        addr_domain=stack.settings.addr_domains[0],
        delivery_services=(stack.settings.delivery_name,),
    )


async def run(settings: DevStackSettings, out: TextIO, *, demo: bool = False) -> None:
    """Start the stack, print its endpoints, optionally run the demo, and serve until SIGINT or SIGTERM."""
    restore_recursion_limit(DEV_RECURSION_LIMIT)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    stack = await DevStack(settings).start()
    try:
        print_table(stack, out)
        if demo:
            await run_demo(client_config(stack), settings.user_domains[0], out)
        await stop.wait()
        out.write("Stopping…\n")
    finally:
        await stack.close()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
