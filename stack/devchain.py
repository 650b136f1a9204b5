"""The embedded development chain: eth-tester (py-evm) in process, with ENS set up as on mainnet.

What :class:`DevChain` builds on :meth:`DevChain.start`:

- Genesis state holds our ``ENSRegistry`` runtime at ENS's canonical registry address
  ``0x00000000000C2E074eC69A0dFb2997BA6C7d2e1e`` with the root node owned by the deployer, and our
  ``UniversalResolver`` (ENS's current interface) at ``0xeEeEEEeE14D718C2B47D9923Deab1335E144EeEe``
  owned by the deployer, so web3.py 8's own ENS API (``AsyncENS.address``, ``get_text``, ``name``)
  and viem 2's (``getEnsText``, ``getEnsAddress``, ``getEnsName``) work unchanged.
  Genesis storage is written by slot: Vyper lays out ``HashMap`` entries at
  ``keccak256(slot ‖ key)`` (slot first, unlike Solidity) and a struct's members in consecutive
  slots from there, so the registry's root owner lives at ``keccak256(uint256(0) ‖ bytes32(0))``.
- An ``OffchainResolver`` deployed with the gateway URL template and signer addresses, set as the
  resolver of each configured offchain parent name (``addr.ensign.eth`` …), so every subname
  resolves through the gateway (ENSIP-10 wildcard).
- The UR's batch gateway URLs (ENSIP-21), by default the gateway URL itself: **the gateway must also
  answer ``query((address,string[],bytes)[])``** (see ``ensign.ens.ccip``), because web3 reaches
  offchain resolvers only through the UR.
- Our ``ReverseRegistrar`` as the owner of ``addr.reverse`` (and resolver of its subnames), so an
  address can have a primary name: :meth:`DevChain.set_primary_name`, or ``setName(string)`` sent
  by the address itself (web3.py's ``ENS.setup_name`` does that).
- Optional on-chain records through ENS's bundled ``PublicResolver`` (``ens.contract_data``).

web3 adjustments, all scoped to this chain (dev and tests only):

- eth-tester reports reverts as ``TransactionFailed``; :class:`DevChainProvider` raises
  ``ContractLogicError`` instead (with the revert bytes as ``data``), as a JSON-RPC node does, so
  ENS's "not found" paths (``None`` / ``ResolverNotFound``) fire instead of leaking the exception.
- ENS's stalecheck middleware (48 h) guards against out-of-sync nodes; an in-process chain cannot
  be out of sync, so the chain's web3 carries a stalecheck named "stalecheck" that never trips, and
  ENS instances built from it inherit that one instead of adding their own.
- CCIP-Read to ``http://127.0.0.1`` gateways is allowed when ``allow_loopback_gateways`` is set
  (the default): see :func:`allow_loopback_ccip_gateways`. Never do this with a real RPC.
"""

from __future__ import annotations

import ast
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, cast

from ens import AsyncENS
from ens.constants import ENS_MAINNET_ADDR, UNIVERSAL_RESOLVER_ADDR
from ens.contract_data import resolver_abi, resolver_bytecode
from ens.utils import label_to_hash, normal_name_to_hash, normalize_name
from eth.exceptions import Revert as EVMRevert
from eth.vm.spoof import SpoofTransaction
from eth_abi.abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from eth_tester import EthereumTester, PyEVMBackend
from eth_tester.backends.pyevm import main as pyevm_main
from eth_tester.exceptions import TransactionFailed
from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3 import AsyncWeb3
from web3.contract import AsyncContract
from web3.exceptions import ContractLogicError
from web3.middleware import StalecheckMiddlewareBuilder
from web3.providers.eth_tester import AsyncEthereumTesterProvider
from web3.providers.eth_tester.defaults import API_ENDPOINTS
from web3.types import RPCEndpoint, RPCResponse

from ensign.ens.lookup import allow_loopback_ccip_gateways
from stack.contracts import artifact

__all__ = [
    "ENS_REGISTRY_ADDRESS",
    "UNIVERSAL_RESOLVER_ADDRESS",
    "CallReverted",
    "DevChain",
    "DevChainProvider",
    "as_contract_logic_error",
    "hashmap_slot",
    "revert_data",
]

ENS_REGISTRY_ADDRESS: ChecksumAddress = to_checksum_address(ENS_MAINNET_ADDR)
UNIVERSAL_RESOLVER_ADDRESS: ChecksumAddress = to_checksum_address(UNIVERSAL_RESOLVER_ADDR)

ERROR_STRING_SELECTOR = keccak(text="Error(string)")[:4]
# Every internal transaction names its gas, which skips eth-tester's slow estimate; unused gas is refunded.
_TX_GAS = 5_000_000
# A stalecheck that never trips: a dev chain cannot lag behind a network it is not part of.
_STALECHECK_NEVER = 100 * 365 * 24 * 3600


def hashmap_slot(slot: int, key: bytes) -> int:
    """Storage slot of ``HashMap`` entry ``key`` for a Vyper map at ``slot``: ``keccak256(slot ‖ key)``."""
    return int.from_bytes(keccak(slot.to_bytes(32, "big") + key.rjust(32, b"\x00")), "big")


# -- reverts ----------------------------------------------------------------------------------


class CallReverted(TransactionFailed):  # type: ignore[misc]
    """eth-tester's ``TransactionFailed`` for a call, carrying the exact revert bytes in ``data``.

    The message is the one eth-tester itself produces, so web3's eth-tester glue (which parses it to
    detect ``OffchainLookup``) keeps working.
    """

    def __init__(self, message: str, data: bytes | None) -> None:
        super().__init__(message)
        self.data = data


class _DevChainBackend(PyEVMBackend):  # type: ignore[misc]
    """PyEVMBackend whose ``call`` keeps revert bytes and needs no funds, and whose
    ``time_travel`` mines at exactly the given time.

    Both methods build on eth-tester 0.14.0b1 (pinned) internals; tests/test_devchain.py and
    tests/test_contracts.py exercise them.
    """

    def time_travel(self, to_timestamp: int) -> int:
        # eth-tester sets the pending header to to_timestamp - 1 and mines it unchanged, so its block
        # lands one second early; mine it at exactly to_timestamp.
        self.chain.header = self.chain.header.copy(timestamp=to_timestamp)
        self.mine_blocks()
        return to_timestamp

    def call(self, transaction: dict[str, Any], block_number: Any = "latest") -> bytes:
        # eth-tester turns a revert into a message string and drops the bytes a JSON-RPC server must
        # answer. Follows PyEVMBackend.call, except for what it raises and the balance top-up below.
        defaulted = dict(transaction)
        if "gas" not in defaulted:
            defaulted["gas"] = self._max_available_gas()
        unsigned = self._get_normalized_and_unsigned_evm_transaction(defaulted, block_number)
        spoofed = SpoofTransaction(unsigned, from_=transaction["from"])
        state = pyevm_main._get_vm_for_block_number(self.chain, block_number).state
        snapshot = state.snapshot()
        try:
            # geth lets any address eth_call without paying for gas; py-evm charges gas up front.
            # Credit exactly the up-front charge, so an unfunded sender can call and a funded one
            # still sees its own balance during execution. Reverted with the snapshot.
            price = getattr(unsigned, "max_fee_per_gas", None) or getattr(unsigned, "gas_price", 0)
            sender = spoofed.sender
            state.set_balance(sender, state.get_balance(sender) + unsigned.gas * price)
            computation = state.apply_transaction(spoofed)
        finally:
            state.revert(snapshot)
        if computation.is_error:
            error = computation._error
            data = error.args[0] if isinstance(error, EVMRevert) and error.args and isinstance(error.args[0], bytes) else None
            message = str(error)
            if data is not None and data[:4] == ERROR_STRING_SELECTOR:
                try:
                    message = abi_decode(["string"], data[4:])[0]
                except DecodingError:
                    pass
            raise CallReverted(message, data)
        return cast(bytes, computation.output)


def revert_data(exc: BaseException) -> bytes | None:
    """The revert bytes behind an eth-tester failure, or ``None`` when it was not a revert.

    Looks through the exception chain (web3's eth-tester glue re-raises with a new message) for
    :class:`CallReverted` or py-evm's ``Revert``; falls back to the message eth-tester formats.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, CallReverted):
            return current.data
        if isinstance(current, EVMRevert) and current.args and isinstance(current.args[0], bytes):
            return current.args[0]
        if isinstance(current, TransactionFailed) and current.args and isinstance(current.args[0], EVMRevert):
            current = current.args[0]
            continue
        current = current.__cause__ or current.__context__
    message = str(exc.args[0]) if exc.args else ""
    message = message.removeprefix("execution reverted: ")
    if message.startswith(("b'", 'b"')):
        try:
            literal = ast.literal_eval(message)
        except (ValueError, SyntaxError):
            literal = None
        if isinstance(literal, bytes):
            return literal
    return None


def as_contract_logic_error(exc: TransactionFailed) -> ContractLogicError:
    """The ``ContractLogicError`` a JSON-RPC node's revert would give for eth-tester's ``exc``.

    ENS (and most web3 callers) treat ``ContractLogicError`` as "not found"; raising this instead
    of ``TransactionFailed`` makes eth-tester behave like geth or anvil there.
    """
    data = revert_data(exc)
    message = str(exc.args[0]) if exc.args else "execution reverted"
    if not message.startswith("execution reverted"):
        message = f"execution reverted: {message}"
    return ContractLogicError(message, data="0x" + data.hex() if data is not None else None)


class DevChainProvider(AsyncEthereumTesterProvider):
    """``AsyncEthereumTesterProvider`` over a given tester that raises ``ContractLogicError`` on reverts."""

    def __init__(self, ethereum_tester: EthereumTester) -> None:
        # AsyncEthereumTesterProvider.__init__ takes no tester and builds a throwaway chain; set
        # up the base provider and the same endpoint table directly instead.
        super(AsyncEthereumTesterProvider, self).__init__()
        self.ethereum_tester = ethereum_tester
        self.api_endpoints = API_ENDPOINTS

    async def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        try:
            return await super().make_request(method, params)
        except TransactionFailed as exc:
            raise as_contract_logic_error(exc) from exc


# -- the chain ---------------------------------------------------------------------------------


class DevChain:
    """An in-process Ethereum chain with ENS, an offchain resolver and a Universal Resolver.

    Usage::

        async with DevChain(gateway_url="http://127.0.0.1:8080/{sender}/{data}.json",
                            signers=[gateway_account.address],
                            offchain_names=["addr.ensign.eth", "user.ensign.eth"]) as chain:
            await chain.ens.get_text("alice.user.ensign.eth", "network.dm3.profile")

    :param gateway_url: URL template of the CCIP-Read gateway the ``OffchainResolver`` points at;
        ``None`` deploys no offchain resolver
    :param signers: addresses whose gateway signatures the resolver accepts (fixed at deployment)
    :param offchain_names: names whose resolver is the offchain resolver; their subnames resolve
        through it by ENSIP-10 wildcard (default: none)
    :param batch_gateway_urls: ENSIP-21 batch gateway URLs for the Universal Resolver (default:
        ``[gateway_url]``, so the gateway must also serve ``query(...)``)
    :param text_records: on-chain text records ``{name: {key: value}}`` set via a PublicResolver
    :param addr_records: on-chain ETH addresses ``{name: address}`` set via a PublicResolver
    :param accounts: number of funded, unlocked test accounts (default 10); the first deploys
        everything and owns the ENS root
    :param allow_loopback_gateways: allow CCIP-Read over http to 127.0.0.1 (default True; it
        patches web3 process-wide, see :func:`allow_loopback_ccip_gateways`)
    """

    def __init__(
        self,
        *,
        gateway_url: str | None = None,
        signers: Sequence[str] = (),
        offchain_names: Sequence[str] = (),
        batch_gateway_urls: Sequence[str] | None = None,
        text_records: Mapping[str, Mapping[str, str]] | None = None,
        addr_records: Mapping[str, str] | None = None,
        accounts: int = 10,
        allow_loopback_gateways: bool = True,
    ) -> None:
        if offchain_names and gateway_url is None:
            raise ValueError("offchain_names need a gateway_url for the offchain resolver")
        if gateway_url is not None and not signers:
            raise ValueError("an offchain resolver needs at least one signer address")
        if accounts < 1:
            raise ValueError("accounts must be at least 1")
        self.gateway_url = gateway_url
        self.signers = tuple(to_checksum_address(s) for s in signers)
        self.offchain_names = tuple(normalize_name(n) for n in offchain_names)
        if batch_gateway_urls is None:
            batch_gateway_urls = [gateway_url] if gateway_url is not None else []
        self.batch_gateway_urls = tuple(batch_gateway_urls)
        self.text_records = {name: dict(records) for name, records in (text_records or {}).items()}
        self.addr_records = dict(addr_records or {})
        self.account_count = accounts
        self.allow_loopback_gateways = allow_loopback_gateways

        self._tester: EthereumTester | None = None
        self._w3: AsyncWeb3[Any] | None = None
        self._ens: AsyncENS | None = None
        self._offchain_resolver: AsyncContract | None = None
        self._reverse_registrar: AsyncContract | None = None
        self._public_resolver: AsyncContract | None = None
        self._keys: tuple[Any, ...] = ()

    # -- lifecycle --

    async def start(self) -> DevChain:
        """Create the chain and deploy/configure everything; returns ``self``."""
        if self._w3 is not None:
            raise RuntimeError("DevChain already started")
        genesis = PyEVMBackend.generate_genesis_state(num_accounts=self.account_count)
        deployer_bytes = next(iter(genesis))
        deployer_word = int.from_bytes(deployer_bytes, "big")
        registry = artifact("ENSRegistry")
        universal = artifact("UniversalResolver")
        genesis[bytes.fromhex(ENS_REGISTRY_ADDRESS[2:])] = {
            "balance": 0,
            "nonce": 1,
            "code": bytes(registry.runtime),
            # records[bytes32(0)].owner = deployer (Record.owner is the struct's first slot)
            "storage": {hashmap_slot(registry.slot("records"), b"\x00" * 32): deployer_word},
        }
        genesis[bytes.fromhex(UNIVERSAL_RESOLVER_ADDRESS[2:])] = {
            "balance": 0,
            "nonce": 1,
            "code": bytes(universal.runtime),
            "storage": {universal.slot("owner"): deployer_word},
        }
        backend = _DevChainBackend(genesis_state=genesis)
        # eth-tester creates one key per genesis entry; the two contract entries have no key.
        backend.account_keys = backend.account_keys[: self.account_count]
        self._keys = tuple(backend.account_keys)
        self._tester = EthereumTester(backend)

        provider = DevChainProvider(self._tester)
        if self.allow_loopback_gateways:
            provider.ccip_read_allow_http = True
            allow_loopback_ccip_gateways()
        w3: AsyncWeb3[Any] = AsyncWeb3(provider)
        w3.middleware_onion.add(StalecheckMiddlewareBuilder.build(_STALECHECK_NEVER), name="stalecheck")
        w3.eth.default_account = self.deployer
        self._w3 = w3

        if self.batch_gateway_urls:
            await self.set_batch_gateway_urls(self.batch_gateway_urls)
        self._reverse_registrar = await self._deploy("ReverseRegistrar")
        reverse_node = await self.ensure_name("reverse")
        await self._transact(
            self.registry.functions.setSubnodeOwner(reverse_node, bytes(label_to_hash("addr")), self._reverse_registrar.address)
        )
        if self.gateway_url is not None:
            self._offchain_resolver = await self.deploy_offchain_resolver(self.gateway_url, self.signers)
            for name in self.offchain_names:
                await self.set_resolver(name, self._offchain_resolver.address)
        for name, records in self.text_records.items():
            for key, value in records.items():
                await self.set_text(name, key, value)
        for name, address in self.addr_records.items():
            await self.set_addr(name, address)
        return self

    async def close(self) -> None:
        """Drop the chain. The object cannot be restarted."""
        self._w3 = None
        self._ens = None
        self._tester = None

    async def __aenter__(self) -> DevChain:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- accessors --

    @property
    def w3(self) -> AsyncWeb3[Any]:
        """The chain's ``AsyncWeb3`` (CCIP-Read enabled, loopback gateways allowed if configured)."""
        if self._w3 is None:
            raise RuntimeError("DevChain is not started")
        return self._w3

    @property
    def tester(self) -> EthereumTester:
        """The underlying ``EthereumTester``, e.g. for the JSON-RPC server."""
        if self._tester is None:
            raise RuntimeError("DevChain is not started")
        return self._tester

    @property
    def ens(self) -> AsyncENS:
        """web3's ``AsyncENS`` bound to this chain's registry (reads go through the UR stand-in)."""
        if self._ens is None:
            self._ens = AsyncENS.from_web3(self.w3, ENS_REGISTRY_ADDRESS)
        return self._ens

    @property
    def accounts(self) -> list[ChecksumAddress]:
        """The funded, unlocked test accounts; ``accounts[0]`` is the deployer."""
        return [to_checksum_address(key.public_key.to_canonical_address()) for key in self._keys]

    @property
    def private_keys(self) -> list[str]:
        """0x-hex private keys of :attr:`accounts` (eth-tester's well-known keys 1, 2, 3, …)."""
        return ["0x" + key.to_bytes().hex() for key in self._keys]

    @property
    def deployer(self) -> ChecksumAddress:
        """The account that deployed the contracts and owns the ENS root."""
        return self.accounts[0]

    @property
    def chain_id(self) -> int:
        return int(self.tester.backend.chain.chain_id)

    @property
    def registry(self) -> AsyncContract:
        """The ENS registry at ``ENS_REGISTRY_ADDRESS``."""
        return self.w3.eth.contract(address=ENS_REGISTRY_ADDRESS, abi=artifact("ENSRegistry").abi)

    @property
    def universal_resolver(self) -> AsyncContract:
        """The Universal Resolver stand-in at ``UNIVERSAL_RESOLVER_ADDRESS``."""
        return self.w3.eth.contract(address=UNIVERSAL_RESOLVER_ADDRESS, abi=artifact("UniversalResolver").abi)

    @property
    def reverse_registrar(self) -> AsyncContract:
        """The reverse registrar that owns ``addr.reverse`` (primary names)."""
        if self._reverse_registrar is None:
            raise RuntimeError("DevChain is not started")
        return self._reverse_registrar

    @property
    def offchain_resolver(self) -> AsyncContract:
        """The offchain resolver deployed at start (``gateway_url`` must have been given)."""
        if self._offchain_resolver is None:
            raise RuntimeError("no offchain resolver: DevChain was built without gateway_url")
        return self._offchain_resolver

    # -- deployment and records --

    async def _transact(self, call: Any) -> Any:
        tx_hash = await call.transact({"from": self.deployer, "gas": _TX_GAS})
        receipt = await self.w3.eth.get_transaction_receipt(tx_hash)
        if receipt["status"] != 1:
            raise RuntimeError(f"dev chain transaction {tx_hash.hex()} failed")
        return receipt

    async def _deploy(self, name: str, *args: Any) -> AsyncContract:
        compiled = artifact(name)
        factory = self.w3.eth.contract(abi=compiled.abi, bytecode=compiled.bytecode)
        receipt = await self._transact(factory.constructor(*args))
        deployed: AsyncContract = self.w3.eth.contract(address=receipt["contractAddress"], abi=compiled.abi)
        return deployed

    async def deploy_offchain_resolver(self, url: str, signers: Sequence[str]) -> AsyncContract:
        """Deploy another ``OffchainResolver`` with gateway ``url`` and ``signers``; returns it."""
        return await self._deploy("OffchainResolver", url, [to_checksum_address(s) for s in signers])

    async def deploy_wallet(self, owner: str) -> AsyncContract:
        """Deploy an ``OwnedWallet`` (EIP-1271) whose signatures are ``owner``'s; returns it."""
        return await self._deploy("OwnedWallet", to_checksum_address(owner))

    async def set_primary_name(self, address: str, name: str) -> None:
        """Make ``name`` the primary name of ``address`` ("" clears it), as the registrar's owner.

        Clients return it only while ``name`` resolves forward to ``address`` (ENS's check).
        """
        normal = normalize_name(name) if name else ""
        await self._transact(self.reverse_registrar.functions.setNameForAddr(to_checksum_address(address), normal))

    async def public_resolver(self) -> AsyncContract:
        """ENS's bundled PublicResolver, deployed on first use, for plain on-chain records."""
        if self._public_resolver is None:
            factory = self.w3.eth.contract(abi=resolver_abi, bytecode=resolver_bytecode)
            receipt = await self._transact(factory.constructor(ENS_REGISTRY_ADDRESS))
            self._public_resolver = self.w3.eth.contract(address=receipt["contractAddress"], abi=resolver_abi)
        return self._public_resolver

    async def set_batch_gateway_urls(self, urls: Sequence[str]) -> None:
        """Point the Universal Resolver's offchain lookups at these ENSIP-21 batch gateways."""
        await self._transact(self.universal_resolver.functions.setBatchGatewayURLs(list(urls)))

    async def ensure_name(self, name: str) -> bytes:
        """Create ``name`` and any missing ancestors, owned by the deployer; returns its namehash."""
        normal = normalize_name(name)
        node = b"\x00" * 32
        if not normal:
            return node
        registry = self.registry
        for label in reversed(normal.split(".")):
            label_hash = bytes(label_to_hash(label))
            child = keccak(node + label_hash)
            if await registry.functions.owner(child).call() != self.deployer:
                await self._transact(registry.functions.setSubnodeOwner(node, label_hash, self.deployer))
            node = child
        return node

    async def set_resolver(self, name: str, resolver: str) -> None:
        """Make ``resolver`` the resolver of ``name`` (created if needed)."""
        resolver = to_checksum_address(resolver)
        label, _, parent = normalize_name(name).partition(".")
        if not label:
            raise ValueError("the root's resolver is not managed by the dev chain")
        parent_node = await self.ensure_name(parent)
        label_hash = bytes(label_to_hash(label))
        node = keccak(parent_node + label_hash)
        registry = self.registry
        if await registry.functions.owner(node).call() != self.deployer:
            # One transaction creates the name with its resolver.
            await self._transact(registry.functions.setSubnodeRecord(parent_node, label_hash, self.deployer, resolver, 0))
        elif await registry.functions.resolver(node).call() != resolver:
            await self._transact(registry.functions.setResolver(node, resolver))

    async def set_text(self, name: str, key: str, value: str) -> None:
        """Set an on-chain text record of ``name`` via the PublicResolver (made its resolver)."""
        resolver = await self.public_resolver()
        await self.set_resolver(name, resolver.address)
        node = bytes(normal_name_to_hash(normalize_name(name)))
        await self._transact(resolver.functions.setText(node, key, value))

    async def set_addr(self, name: str, address: str) -> None:
        """Set the on-chain ETH address of ``name`` via the PublicResolver (made its resolver)."""
        resolver = await self.public_resolver()
        await self.set_resolver(name, resolver.address)
        node = bytes(normal_name_to_hash(normalize_name(name)))
        await self._transact(resolver.functions.setAddr(node, to_checksum_address(address)))

    # -- test controls --

    def snapshot(self) -> int:
        """Mark the current chain state; :meth:`revert` goes back to it."""
        return int(self.tester.take_snapshot())

    def revert(self, snapshot_id: int) -> None:
        """Return to the state of :meth:`snapshot` ``snapshot_id`` (later blocks are dropped)."""
        self.tester.revert_to_snapshot(snapshot_id)
        # A PublicResolver deployed after the snapshot is gone now; deploy afresh on next use.
        if self._public_resolver is not None and self.tester.get_code(self._public_resolver.address) in ("0x", b""):
            self._public_resolver = None

    def mine(self, blocks: int = 1) -> None:
        """Mine ``blocks`` empty blocks."""
        self.tester.mine_blocks(blocks)

    def latest_timestamp(self) -> int:
        """Timestamp of the newest block."""
        return int(self.tester.get_block_by_number("latest")["timestamp"])

    def time_travel(self, timestamp: int) -> None:
        """Mine a block at unix time ``timestamp``, which must be later than the newest block."""
        if timestamp <= self.latest_timestamp():
            raise ValueError("time_travel can only move forward")
        # EthereumTester.time_travel returns without mining when the target equals the pending
        # block's timestamp (newest + 1); the backend call always mines the block.
        self.tester.backend.time_travel(timestamp)

    def advance_time(self, seconds: int) -> int:
        """Mine a block ``seconds`` after the newest one; returns its timestamp."""
        target = self.latest_timestamp() + seconds
        self.time_travel(target)
        return target

    def ensure_fresh(self, max_age: float = 12 * 3600) -> None:
        """Mine a block if the newest one is older than ``max_age`` seconds of wall-clock time.

        Remote clients apply ENS's 48 h stalecheck to this chain's blocks; a long-idle dev chain
        would otherwise fail their ENS reads.
        """
        if time.time() - self.latest_timestamp() > max_age:
            self.mine()

