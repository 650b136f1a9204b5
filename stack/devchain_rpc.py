"""Ethereum JSON-RPC over HTTP for the embedded :class:`~stack.devchain.DevChain`.

Lets out-of-process clients (ethers 5 in the dm3 libraries, web3's ``AsyncHTTPProvider``, a
browser dapp) use the in-process chain. ``POST /`` takes a JSON-RPC 2.0 request or a batch.

Supported methods: ``web3_clientVersion``, ``net_version``, ``eth_chainId``, ``eth_blockNumber``,
``eth_accounts``, ``eth_call``, ``eth_estimateGas``, ``eth_getBalance``, ``eth_getCode``,
``eth_getStorageAt``, ``eth_getTransactionCount``, ``eth_sendRawTransaction``,
``eth_sendTransaction`` (the chain's unlocked test accounts), ``eth_getTransactionByHash``,
``eth_getTransactionReceipt``, ``eth_getBlockByNumber``, ``eth_getBlockByHash``, ``eth_getLogs``,
``eth_gasPrice``, ``eth_maxPriorityFeePerGas``, ``eth_feeHistory``, and the test controls
``evm_snapshot``, ``evm_revert``, ``evm_mine``.

Errors use geth's shapes, which clients parse:

=====================================  ======  ==================================================
case                                   code    message / data
=====================================  ======  ==================================================
``eth_call``/``eth_estimateGas`` revert  3     "execution reverted" (": reason" for
                                               ``Error(string)``), ``data`` = 0x revert bytes —
                                               ethers 5 follows EIP-3668 only in this shape
unknown method                         -32601  "the method … does not exist/is not available"
malformed params                       -32602  "invalid params: …"
not JSON / not a request               -32700 / -32600
chain refused (nonce, funds, …)        -32000  the chain's message
=====================================  ======  ==================================================

Before each HTTP request the chain mines an empty block if its newest block is older than
``max_block_age`` seconds, so clients' ENS stalecheck (48 h) never trips on an idle dev chain.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import TracebackType
from typing import Any

from aiohttp import web
from eth_abi.abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from eth.exceptions import PyEVMError
from eth_bloom.bloom import BloomFilter
from eth_tester.exceptions import (
    BlockNotFound,
    TransactionFailed,
    TransactionNotFound,
)
from eth_tester.exceptions import ValidationError as TesterValidationError
from eth_utils.address import to_checksum_address
from eth_utils.exceptions import ValidationError as EvmValidationError
from rlp.exceptions import RLPException  # type: ignore[import-untyped]

from ensign.errors import EnsignError
from ensign.protocol.safe_json import parse_json
from ensign.web import read_body
from stack.devchain import ERROR_STRING_SELECTOR, DevChain, revert_data

__all__ = ["DEFAULT_PORT", "DevChainRpcServer", "create_app", "devchain", "handle_preflight", "handle_rpc"]

log = logging.getLogger(__name__)

DEFAULT_PORT = 8545
CLIENT_VERSION = "ensign-devchain/eth-tester"
# eth-tester's default priority fee for transactions without fee fields.
_PRIORITY_FEE = 10**9

devchain = web.AppKey("devchain", DevChain)
max_block_age_key = web.AppKey("max_block_age_key", float)


class _RpcError(Exception):
    def __init__(self, code: int, message: str, data: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


# -- parameter parsing (JSON-RPC hex → eth-tester Python values) --------------------------------


def _quantity(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.startswith("0x"):
        return int(value, 16)
    raise ValueError(f"expected a 0x-hex quantity, got {value!r}")


def _param(params: list[Any], index: int, default: Any = None) -> Any:
    return params[index] if len(params) > index else default


def _block_id(chain: DevChain, value: Any) -> int | str:
    if value is None or value in ("latest", "safe", "finalized"):
        return "latest"
    if value in ("earliest", "pending"):
        return str(value)
    if isinstance(value, dict):  # EIP-1898
        if "blockHash" in value:
            return int(chain.tester.get_block_by_hash(value["blockHash"])["number"])
        return _block_id(chain, value.get("blockNumber"))
    return _quantity(value)


_TX_QUANTITIES = {
    "gas": "gas",
    "gasPrice": "gas_price",
    "maxFeePerGas": "max_fee_per_gas",
    "maxPriorityFeePerGas": "max_priority_fee_per_gas",
    "value": "value",
    "nonce": "nonce",
}


def _transaction(chain: DevChain, raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ValueError("a transaction object is required")
    tx: dict[str, Any] = {"from": to_checksum_address(raw["from"]) if raw.get("from") else chain.deployer}
    if raw.get("to"):
        tx["to"] = to_checksum_address(raw["to"])
    data = raw.get("input", raw.get("data"))
    if data is not None:
        tx["data"] = data
    for rpc_key, tester_key in _TX_QUANTITIES.items():
        if raw.get(rpc_key) is not None:
            tx[tester_key] = _quantity(raw[rpc_key])
    if raw.get("accessList") is not None:
        tx["access_list"] = [
            {"address": entry["address"], "storage_keys": list(entry.get("storageKeys", []))} for entry in raw["accessList"]
        ]
    return tx


# -- result formatting (eth-tester Python values → JSON-RPC hex) ---------------------------------

_KEY_RENAMES = {"coinbase": "miner"}


def _camel(key: str) -> str:
    if key in _KEY_RENAMES:
        return _KEY_RENAMES[key]
    head, *rest = key.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _rpc(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str | float):
        return value
    if isinstance(value, int):
        return hex(value)
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, dict):
        return {_camel(k): _rpc(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rpc(v) for v in value]
    raise TypeError(f"cannot format {type(value).__name__} for JSON-RPC")


def _format_transaction(tx: dict[str, Any]) -> dict[str, Any]:
    tx = dict(tx)
    tx["input"] = tx.pop("data", "0x")
    return _rpc(tx)  # type: ignore[no-any-return]


def _format_log(entry: dict[str, Any]) -> dict[str, Any]:
    entry = {k: v for k, v in entry.items() if k != "type"}
    entry["removed"] = False
    return _rpc(entry)  # type: ignore[no-any-return]


def _format_block(block: dict[str, Any]) -> dict[str, Any]:
    block = dict(block)
    block["logs_bloom"] = int(block.get("logs_bloom", 0)).to_bytes(256, "big")
    transactions = block.get("transactions", [])
    formatted = _rpc({k: v for k, v in block.items() if k != "transactions"})
    formatted["transactions"] = [_format_transaction(tx) if isinstance(tx, dict) else tx for tx in transactions]
    return formatted  # type: ignore[no-any-return]


def _format_receipt(receipt: dict[str, Any]) -> dict[str, Any]:
    bloom = BloomFilter()
    for entry in receipt.get("logs", []):
        bloom.add(bytes.fromhex(entry["address"][2:]))
        for topic in entry.get("topics", []):
            bloom.add(bytes.fromhex(topic[2:]))
    # state_root is the pre-Byzantium field; status replaces it.
    formatted = _rpc({k: v for k, v in receipt.items() if k not in ("logs", "state_root")})
    formatted["logs"] = [_format_log(entry) for entry in receipt.get("logs", [])]
    formatted["logsBloom"] = "0x" + int(bloom).to_bytes(256, "big").hex()
    return formatted  # type: ignore[no-any-return]


# -- methods --------------------------------------------------------------------------------------


def _reverted(exc: TransactionFailed) -> _RpcError:
    data = revert_data(exc)
    if data is None:
        return _RpcError(-32000, str(exc.args[0]) if exc.args else "execution failed")
    message = "execution reverted"
    if data[:4] == ERROR_STRING_SELECTOR:
        try:
            message += ": " + abi_decode(["string"], data[4:])[0]
        except DecodingError:
            pass
    return _RpcError(3, message, "0x" + data.hex())


def _eth_call(chain: DevChain, params: list[Any]) -> Any:
    tx = _transaction(chain, params[0])
    block = _block_id(chain, _param(params, 1))
    try:
        return chain.tester.call(tx, block)
    except TransactionFailed as exc:
        raise _reverted(exc) from exc


def _estimate(chain: DevChain, tx: dict[str, Any], block: int | str = "latest") -> int:
    try:
        return int(chain.tester.estimate_gas(tx, block))
    except TransactionFailed as exc:
        # estimate_gas keeps no revert bytes; the same call does.
        try:
            chain.tester.call(tx, block)
        except TransactionFailed as call_exc:
            raise _reverted(call_exc) from exc
        raise _reverted(exc) from exc


def _eth_estimate_gas(chain: DevChain, params: list[Any]) -> Any:
    return hex(_estimate(chain, _transaction(chain, params[0]), _block_id(chain, _param(params, 1))))


def _eth_send_transaction(chain: DevChain, params: list[Any]) -> Any:
    tx = _transaction(chain, params[0])
    if tx["from"] not in chain.accounts:
        raise _RpcError(-32000, f"unknown account {tx['from']}: only the dev chain's test accounts are unlocked")
    if "gas" not in tx:
        tx["gas"] = _estimate(chain, tx)
    return chain.tester.send_transaction(tx)


def _eth_get_block_by_number(chain: DevChain, params: list[Any]) -> Any:
    try:
        block = chain.tester.get_block_by_number(_block_id(chain, params[0]), bool(_param(params, 1, False)))
    except BlockNotFound:
        return None
    return _format_block(block)


def _eth_get_block_by_hash(chain: DevChain, params: list[Any]) -> Any:
    try:
        block = chain.tester.get_block_by_hash(params[0], bool(_param(params, 1, False)))
    except BlockNotFound:
        return None
    return _format_block(block)


def _eth_get_transaction_by_hash(chain: DevChain, params: list[Any]) -> Any:
    try:
        return _format_transaction(chain.tester.get_transaction_by_hash(params[0]))
    except TransactionNotFound:
        return None


def _eth_get_transaction_receipt(chain: DevChain, params: list[Any]) -> Any:
    try:
        return _format_receipt(chain.tester.get_transaction_receipt(params[0]))
    except TransactionNotFound:
        return None


def _eth_get_logs(chain: DevChain, params: list[Any]) -> Any:
    raw = params[0] if params else {}
    from_block = raw.get("fromBlock")
    to_block = raw.get("toBlock")
    logs = chain.tester.get_logs(
        from_block=None if from_block is None else _block_id(chain, from_block),
        to_block=None if to_block is None else _block_id(chain, to_block),
        address=raw.get("address"),
        topics=raw.get("topics"),
    )
    return [_format_log(entry) for entry in logs]


def _base_fee(chain: DevChain) -> int:
    return int(chain.tester.get_block_by_number("latest").get("base_fee_per_gas", 0))


def _eth_fee_history(chain: DevChain, params: list[Any]) -> Any:
    # eth-tester's get_fee_history is a stub (fixed oldest block, newest block missing); build it
    # from the blocks as geth does: base fees include the block after `newest`.
    count = _quantity(params[0])
    if not 1 <= count <= 1024:
        raise ValueError("block count must be between 1 and 1024")
    newest_id = _block_id(chain, _param(params, 1))
    newest = int(chain.tester.get_block_by_number("latest" if newest_id == "pending" else newest_id)["number"])
    percentiles = list(_param(params, 2, []) or [])
    oldest = max(0, newest - count + 1)
    blocks = [chain.tester.get_block_by_number(number) for number in range(oldest, newest + 1)]
    try:
        following = chain.tester.get_block_by_number(newest + 1)
    except BlockNotFound:
        following = chain.tester.get_block_by_number("pending")
    history: dict[str, Any] = {
        "oldestBlock": hex(oldest),
        "baseFeePerGas": [hex(int(b.get("base_fee_per_gas", 0))) for b in [*blocks, following]],
        "gasUsedRatio": [int(b["gas_used"]) / int(b["gas_limit"]) for b in blocks],
    }
    if percentiles:
        # Every dev-chain transaction pays eth-tester's default tip.
        history["reward"] = [[hex(_PRIORITY_FEE)] * len(percentiles) for _ in blocks]
    return history


def _evm_revert(chain: DevChain, params: list[Any]) -> Any:
    chain.revert(_quantity(params[0]))
    return True


def _evm_mine(chain: DevChain, params: list[Any]) -> Any:
    chain.mine()
    return "0x0"


_Method = Callable[[DevChain, list[Any]], Any]

METHODS: dict[str, _Method] = {
    "web3_clientVersion": lambda chain, params: CLIENT_VERSION,
    "net_version": lambda chain, params: str(chain.chain_id),
    "eth_chainId": lambda chain, params: hex(chain.chain_id),
    "eth_blockNumber": lambda chain, params: hex(chain.tester.get_block_by_number("latest")["number"]),
    "eth_accounts": lambda chain, params: list(chain.accounts),
    "eth_call": _eth_call,
    "eth_estimateGas": _eth_estimate_gas,
    "eth_getBalance": lambda chain, params: hex(
        chain.tester.get_balance(to_checksum_address(params[0]), _block_id(chain, _param(params, 1)))
    ),
    "eth_getCode": lambda chain, params: chain.tester.get_code(
        to_checksum_address(params[0]), _block_id(chain, _param(params, 1))
    ),
    "eth_getStorageAt": lambda chain, params: chain.tester.get_storage_at(
        to_checksum_address(params[0]), hex(_quantity(params[1])), _block_id(chain, _param(params, 2))
    ),
    "eth_getTransactionCount": lambda chain, params: hex(
        chain.tester.get_nonce(to_checksum_address(params[0]), _block_id(chain, _param(params, 1)))
    ),
    "eth_sendRawTransaction": lambda chain, params: chain.tester.send_raw_transaction(params[0]),
    "eth_sendTransaction": _eth_send_transaction,
    "eth_getTransactionByHash": _eth_get_transaction_by_hash,
    "eth_getTransactionReceipt": _eth_get_transaction_receipt,
    "eth_getBlockByNumber": _eth_get_block_by_number,
    "eth_getBlockByHash": _eth_get_block_by_hash,
    "eth_getLogs": _eth_get_logs,
    "eth_gasPrice": lambda chain, params: hex(_base_fee(chain) + _PRIORITY_FEE),
    "eth_maxPriorityFeePerGas": lambda chain, params: hex(_PRIORITY_FEE),
    "eth_feeHistory": _eth_fee_history,
    "evm_snapshot": lambda chain, params: hex(chain.snapshot()),
    "evm_revert": _evm_revert,
    "evm_mine": _evm_mine,
}


def _dispatch(chain: DevChain, request: Any) -> dict[str, Any] | None:
    """Answer one JSON-RPC request object; ``None`` for a notification (no ``id``)."""
    if not isinstance(request, dict) or not isinstance(request.get("method"), str):
        return {"jsonrpc": "2.0", "id": None, "error": _RpcError(-32600, "invalid request").to_json()}
    request_id = request.get("id")
    method = request["method"]
    params = request.get("params", [])
    try:
        if not isinstance(params, list):
            raise _RpcError(-32602, "invalid params: params must be an array")
        handler = METHODS.get(method)
        if handler is None:
            raise _RpcError(-32601, f"the method {method} does not exist/is not available")
        try:
            result = handler(chain, params)
        except (TesterValidationError, EvmValidationError) as exc:
            raise _RpcError(-32000, str(exc)) from exc
        except TransactionFailed as exc:
            raise _reverted(exc) from exc
        except (ValueError, TypeError, KeyError, IndexError, DecodingError, RLPException, PyEVMError) as exc:
            # Garbage from the caller (bad RLP, unknown transaction type, bad ABI) is its error.
            raise _RpcError(-32602, f"invalid params: {exc}") from exc
        response: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "result": result}
    except _RpcError as exc:
        response = {"jsonrpc": "2.0", "id": request_id, "error": exc.to_json()}
    except Exception:
        log.exception("dev chain JSON-RPC %s failed", method)
        response = {"jsonrpc": "2.0", "id": request_id, "error": {"code": -32603, "message": "internal error"}}
    return response if "id" in request else None


_CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type",
}

routes = web.RouteTableDef()


@routes.post("/")
async def handle_rpc(request: web.Request) -> web.Response:
    chain = request.app[devchain]
    try:
        payload = parse_json(await read_body(request), what="the request")
    except (EnsignError, web.HTTPBadRequest) as exc:
        problem = exc.message if isinstance(exc, EnsignError) else exc.text
        error = {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": f"parse error: {problem}"}}
        return web.json_response(error, headers=_CORS_HEADERS)
    chain.ensure_fresh(request.app[max_block_age_key])
    body: Any
    if isinstance(payload, list):
        if not payload:
            body = {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "empty batch"}}
        else:
            body = [answer for answer in (_dispatch(chain, item) for item in payload) if answer is not None]
            if not body:
                return web.Response(status=204, headers=_CORS_HEADERS)
    else:
        body = _dispatch(chain, payload)
        if body is None:
            return web.Response(status=204, headers=_CORS_HEADERS)
    return web.json_response(body, headers=_CORS_HEADERS)


@routes.options("/")
async def handle_preflight(request: web.Request) -> web.Response:
    return web.Response(status=204, headers=_CORS_HEADERS)


def create_app(chain: DevChain, *, max_block_age: float = 12 * 3600) -> web.Application:
    """The JSON-RPC app for a started ``chain``.

    :param chain: the embedded chain to expose
    :param max_block_age: mine an empty block before answering when the newest block is older
        than this many seconds (default 12 h, well inside ENS's 48 h stalecheck)
    """
    app = web.Application()
    app[devchain] = chain
    app[max_block_age_key] = float(max_block_age)
    app.add_routes(routes)
    return app


class DevChainRpcServer:
    """Serves :func:`create_app` on ``host:port`` (default 127.0.0.1:8545; port 0 picks a free one).

    :param chain: a started :class:`DevChain`
    :param host: interface to bind (default loopback only: the test accounts are unlocked)
    :param port: TCP port (default 8545)
    :param max_block_age: see :func:`create_app`

    Usage::

        async with DevChainRpcServer(chain, port=0) as server:
            provider = AsyncHTTPProvider(server.url)
    """

    def __init__(
        self, chain: DevChain, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT, max_block_age: float = 12 * 3600
    ) -> None:
        self.chain = chain
        self.host = host
        self.port = port
        self.max_block_age = max_block_age
        self._runner: web.AppRunner | None = None

    async def start(self) -> DevChainRpcServer:
        """Bind and serve; with ``port=0`` :attr:`port` is the port the OS picked."""
        runner = web.AppRunner(create_app(self.chain, max_block_age=self.max_block_age), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._runner = runner
        # With port 0 the OS picks; read back the bound port.
        self.port = int(runner.addresses[0][1])
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> DevChainRpcServer:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
