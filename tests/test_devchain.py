"""The embedded dev chain and its JSON-RPC server, end to end with web3's own ENS API.

A minimal CCIP-Read gateway lives in this file: it answers from a fixed record dict with
ensign.ens.ccip, serves GET /{sender}/{data}.json and POST /, and answers the Universal Resolver's
ENSIP-21 batch query by fetching each inner request over HTTP. The real gateway is elsewhere.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import types
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import web3.middleware.stalecheck as stalecheck
import web3.utils.ccip_url_validation as ccip_url_validation
from aiohttp import web
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_tester.exceptions import TransactionFailed
from eth_utils import keccak, to_checksum_address
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.exceptions import ContractLogicError, StaleBlockchain, Web3ValidationError

import stack.devchain as devchain_module
from ens import AsyncENS
from ens.exceptions import ResolverNotFound
from stack.contracts import artifact
from stack.devchain import (
    ENS_REGISTRY_ADDRESS,
    UNIVERSAL_RESOLVER_ADDRESS,
    CallReverted,
    DevChain,
    as_contract_logic_error,
    hashmap_slot,
    revert_data,
)
from stack.devchain_rpc import DevChainRpcServer
from ensign.errors import InvalidRequest
from ensign.ens import ccip
from ensign.ens.lookup import allow_loopback_ccip_gateways

pytestmark = pytest.mark.asyncio(loop_scope="module")

GATEWAY_KEY = Account.from_key("0x" + "6a" * 32)
ALICE = "0x2B5AD5c4795c026514f8317c7a215E218DcCD6cF"
WILD = "0x6813Eb9362372EEF6200f3b1dbC3f819671cBA69"
RECORDS: dict[str, dict[str, str]] = {
    "alice.user.ensign.eth": {"addr": ALICE, "text:email": "alice@example.com", "text:network.dm3.profile": "data:application/json,{}"},
    "*.addr.ensign.eth": {"addr": WILD, "text:email": "wild@example.com"},
}
DS_NAME = "ds.ensign.eth"
DS_PROFILE = "data:application/json,{\"url\":\"http://127.0.0.1/ds\"}"


# -- the test gateway -------------------------------------------------------------------------------


def record_value(query: ccip.RecordQuery) -> str | None:
    records = RECORDS.get(query.name)
    labels = query.name.split(".")
    for start in range(1, len(labels)):
        if records is not None:
            break
        records = RECORDS.get("*." + ".".join(labels[start:]))
    records = records or {}
    if query.kind is ccip.RecordKind.TEXT:
        return records.get(f"text:{query.key}")
    if query.kind is ccip.RecordKind.ADDR:
        return records.get("addr")
    return None


async def fetch_batch(session: aiohttp.ClientSession, call_data: bytes) -> bytes:
    failures: list[bool] = []
    responses: list[bytes] = []
    for request in ccip.decode_batch_query(call_data):
        call = ccip.gateway_call(request.urls[0], request.sender, request.data)
        async with session.request(call.method, call.url, json=call.body) as response:
            body = await response.json()
        if response.status == 200:
            failures.append(False)
            responses.append(ccip.decode_hex(body["data"], "data"))
        else:
            failures.append(True)
            responses.append(ccip.encode_http_error(response.status, body.get("message", "")))
    return ccip.encode_batch_response(failures, responses)


async def gateway_handler(request: web.Request) -> web.Response:
    if request.method == "GET":
        sender, data = request.match_info["sender"], request.match_info["data"]
    else:
        body = await request.json()
        sender, data = body.get("sender"), body.get("data")
    try:
        call_data = ccip.decode_hex(data, "data")
        if ccip.is_batch_query(call_data):
            answer = await fetch_batch(request.app[session_key], call_data)
        else:
            resolve = ccip.decode_resolve_request(call_data)
            result = ccip.encode_result(resolve.query, record_value(resolve.query))
            answer = ccip.build_response(GATEWAY_KEY, sender=ccip.parse_address(sender), call_data=call_data, result=result)
    except InvalidRequest as exc:
        return web.json_response({"message": exc.message}, status=400)
    return web.json_response({"data": "0x" + answer.hex()})


session_key = web.AppKey("session_key", aiohttp.ClientSession)


@dataclass
class Gateway:
    url: str
    runner: web.AppRunner


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gateway() -> AsyncIterator[Gateway]:
    app = web.Application()
    app.router.add_get("/{sender}/{data}.json", gateway_handler)
    app.router.add_post("/", gateway_handler)

    async def client_session(app: web.Application) -> AsyncIterator[None]:
        app[session_key] = aiohttp.ClientSession()
        yield
        await app[session_key].close()

    app.cleanup_ctx.append(client_session)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    yield Gateway(url=f"http://127.0.0.1:{port}/{{sender}}/{{data}}.json", runner=runner)
    await runner.cleanup()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def chain(gateway: Gateway) -> AsyncIterator[DevChain]:
    async with DevChain(
        gateway_url=gateway.url,
        signers=[GATEWAY_KEY.address],
        offchain_names=["addr.ensign.eth", "user.ensign.eth"],
        text_records={DS_NAME: {"network.dm3.deliveryService": DS_PROFILE}},
    ) as dev_chain:
        yield dev_chain


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def rpc(chain: DevChain) -> AsyncIterator[DevChainRpcServer]:
    async with DevChainRpcServer(chain, port=0) as server:
        yield server


@pytest_asyncio.fixture(autouse=True, loop_scope="module")
async def isolated(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    if "chain" not in request.fixturenames:
        yield
        return
    dev_chain: DevChain = request.getfixturevalue("chain")
    snapshot = dev_chain.snapshot()
    yield
    dev_chain.revert(snapshot)


@pytest_asyncio.fixture(loop_scope="module")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def rpc_call(http: aiohttp.ClientSession, rpc: DevChainRpcServer, method: str, params: list[Any] | None = None) -> dict[str, Any]:
    async with http.post(rpc.url, json={"jsonrpc": "2.0", "id": 7, "method": method, "params": params or []}) as response:
        assert response.status == 200
        body: dict[str, Any] = await response.json()
    assert body["jsonrpc"] == "2.0" and body["id"] == 7
    return body


# -- genesis and deployment ---------------------------------------------------------------------------


async def test_registry_and_universal_resolver_are_at_their_canonical_addresses(chain):
    w3 = chain.w3
    assert ENS_REGISTRY_ADDRESS == "0x00000000000C2E074eC69A0dFb2997BA6C7d2e1e"
    assert UNIVERSAL_RESOLVER_ADDRESS == "0xeEeEEEeE14D718C2B47D9923Deab1335E144EeEe"
    assert await w3.eth.get_code(ENS_REGISTRY_ADDRESS) == artifact("ENSRegistry").runtime
    assert await w3.eth.get_code(UNIVERSAL_RESOLVER_ADDRESS) == artifact("UniversalResolver").runtime
    assert await chain.registry.functions.owner(b"\x00" * 32).call() == chain.deployer
    assert await chain.universal_resolver.functions.owner().call() == chain.deployer


async def test_root_owner_sits_in_the_vyper_hashmap_slot(chain):
    raw = await chain.w3.eth.get_storage_at(ENS_REGISTRY_ADDRESS, hashmap_slot(0, b"\x00" * 32))
    assert to_checksum_address(raw[-20:]) == chain.deployer


async def test_accounts_are_funded_unlocked_and_match_their_keys(chain):
    assert len(chain.accounts) == 10
    assert await chain.w3.eth.accounts == chain.accounts
    for address, key in zip(chain.accounts, chain.private_keys, strict=True):
        assert Account.from_key(key).address == address
        assert await chain.w3.eth.get_balance(address) > 10**18


async def test_offchain_names_use_the_offchain_resolver_and_the_ur_uses_the_gateway(chain, gateway):
    for name in ("addr.ensign.eth", "user.ensign.eth"):
        assert await chain.registry.functions.resolver(ccip.namehash(name)).call() == chain.offchain_resolver.address
    assert await chain.offchain_resolver.functions.url().call() == gateway.url
    assert await chain.offchain_resolver.functions.signers(GATEWAY_KEY.address).call() is True
    assert await chain.universal_resolver.functions.batchGateways().call() == [gateway.url]


async def test_constructor_refuses_inconsistent_configuration():
    with pytest.raises(ValueError, match="gateway_url"):
        DevChain(offchain_names=["addr.ensign.eth"])
    with pytest.raises(ValueError, match="signer"):
        DevChain(gateway_url="http://127.0.0.1:1/{sender}/{data}.json")
    with pytest.raises(RuntimeError, match="not started"):
        DevChain().w3  # noqa: B018


# -- web3 adjustments -----------------------------------------------------------------------------------


async def test_loopback_gateways_are_allowed_but_private_networks_stay_blocked(chain):
    assert chain.w3.provider.ccip_read_allow_http is True
    ccip_url_validation.validate_ccip_url_host("http://127.0.0.1:8080/x")
    ccip_url_validation.validate_ccip_url_host("http://[::1]:8080/x")
    for blocked in ("http://10.0.0.1/x", "http://192.168.1.1/x", "http://169.254.169.254/x"):
        with pytest.raises(Web3ValidationError):
            ccip_url_validation.validate_ccip_url_host(blocked)


async def test_loopback_helper_fails_loudly_if_web3_renames_its_block_list(monkeypatch):
    assert isinstance(ccip_url_validation.BLOCKED_IP_NETWORKS, list), "web3 renamed or retyped BLOCKED_IP_NETWORKS"
    monkeypatch.delattr(ccip_url_validation, "BLOCKED_IP_NETWORKS")
    with pytest.raises(RuntimeError, match="BLOCKED_IP_NETWORKS"):
        allow_loopback_ccip_gateways()


async def test_reverts_surface_as_contract_logic_error_with_the_revert_bytes(chain):
    name = ccip.dns_encode("nobody.example")
    with pytest.raises(ContractLogicError) as info:
        await chain.universal_resolver.functions.resolve(name, ccip.encode_addr_call(ccip.namehash("nobody.example"))).call()
    assert not isinstance(info.value, TransactionFailed)
    assert info.value.data == "0x" + (keccak(text="ResolverNotFound(bytes)")[:4] + abi_encode(["bytes"], [name])).hex()


async def test_revert_data_reads_every_eth_tester_failure_shape():
    error_string = keccak(text="Error(string)")[:4] + abi_encode(["string"], ["nope"])
    assert revert_data(CallReverted("nope", error_string)) == error_string
    try:
        try:
            raise CallReverted("b'\\x01\\x02'", b"\x01\x02")
        except TransactionFailed as inner:
            raise TransactionFailed("execution reverted: b'\\x01\\x02'") from inner
    except TransactionFailed as outer:
        assert revert_data(outer) == b"\x01\x02"
        translated = as_contract_logic_error(outer)
    assert isinstance(translated, ContractLogicError) and translated.data == "0x0102"
    assert revert_data(TransactionFailed("execution reverted: b'\\xab'")) == b"\xab"
    assert revert_data(TransactionFailed("out of gas")) is None


async def test_ens_reads_ignore_stalecheck_on_the_dev_chain(chain, monkeypatch):
    three_days_later = chain.latest_timestamp() + 3 * 24 * 3600
    monkeypatch.setattr(stalecheck, "time", types.SimpleNamespace(time=lambda: three_days_later))
    assert await chain.ens.get_text(DS_NAME, "network.dm3.deliveryService") == DS_PROFILE
    # web3's default 48 h stalecheck (what a plain AsyncENS gets) would refuse the same read.
    plain = AsyncENS(chain.w3.provider, middleware=[])
    with pytest.raises(StaleBlockchain):
        await plain.get_text(DS_NAME, "network.dm3.deliveryService")


# -- snapshots and time ---------------------------------------------------------------------------------


async def test_revert_undoes_records_and_later_writes_still_work(chain):
    snapshot = chain.snapshot()
    await chain.set_addr("temp.ensign.eth", ALICE)
    assert await chain.ens.address("temp.ensign.eth") == ALICE
    chain.revert(snapshot)
    assert await chain.ens.address("temp.ensign.eth") is None
    await chain.set_text("temp.ensign.eth", "k", "v")  # PublicResolver is redeployed after the revert
    assert await chain.ens.get_text("temp.ensign.eth", "k") == "v"


async def test_time_travel_mines_a_block_at_exactly_the_given_time(chain):
    before = chain.latest_timestamp()
    number = await chain.w3.eth.block_number
    assert chain.advance_time(3600) == before + 3600
    assert chain.latest_timestamp() == before + 3600
    assert (await chain.w3.eth.get_block("latest"))["timestamp"] == before + 3600
    assert await chain.w3.eth.block_number == number + 1
    chain.advance_time(1)
    assert chain.latest_timestamp() == before + 3601
    with pytest.raises(ValueError):
        chain.time_travel(before)


async def test_ensure_fresh_mines_only_when_the_newest_block_is_old(chain, monkeypatch):
    latest = chain.latest_timestamp()
    number = await chain.w3.eth.block_number
    monkeypatch.setattr(devchain_module, "time", types.SimpleNamespace(time=lambda: latest + 100))
    chain.ensure_fresh(max_age=200)
    assert await chain.w3.eth.block_number == number
    chain.ensure_fresh(max_age=50)
    assert await chain.w3.eth.block_number == number + 1


# -- ENS end to end: web3 AsyncENS → UR stand-in → batch gateway → gateway → resolveWithProof -----------


async def test_get_text_resolves_through_the_offchain_resolver(chain):
    assert await chain.ens.get_text("alice.user.ensign.eth", "email") == "alice@example.com"
    assert await chain.ens.get_text("alice.user.ensign.eth", "network.dm3.profile") == "data:application/json,{}"


async def test_address_resolves_through_the_offchain_resolver(chain):
    assert await chain.ens.address("alice.user.ensign.eth") == ALICE
    assert await chain.ens.address("alice.user.ensign.eth", coin_type=60) == ALICE


async def test_wildcard_subname_resolves(chain):
    name = f"{WILD.lower()}.addr.ensign.eth"
    assert await chain.ens.address(name) == WILD
    assert await chain.ens.get_text(name, "email") == "wild@example.com"
    resolver = await chain.ens.resolver(name)
    assert resolver is not None and resolver.address == chain.offchain_resolver.address


async def test_unknown_names_are_not_found(chain):
    # Under an offchain parent: the gateway answers "no record".
    assert await chain.ens.address("nobody.user.ensign.eth") is None
    assert await chain.ens.get_text("nobody.user.ensign.eth", "email") == ""
    assert await chain.ens.get_text("alice.user.ensign.eth", "no-such-key") == ""
    # No resolver at all: web3's own not-found outcomes, not eth-tester's TransactionFailed.
    assert await chain.ens.address("nobody.example") is None
    assert await chain.ens.resolver("nobody.example") is None
    with pytest.raises(ResolverNotFound):
        await chain.ens.get_text("nobody.example", "email")


async def test_on_chain_records_resolve_through_the_universal_resolver(chain):
    assert await chain.ens.get_text(DS_NAME, "network.dm3.deliveryService") == DS_PROFILE
    await chain.set_addr("bob.ensign.eth", ALICE)
    assert await chain.ens.address("bob.ensign.eth") == ALICE


async def test_an_answer_from_another_key_is_refused_end_to_end(chain, gateway):
    # A second resolver trusting a different signer: the gateway's answers no longer verify.
    other = await chain.deploy_offchain_resolver(gateway.url, [Account.create().address])
    await chain.set_resolver("other.ensign.eth", other.address)
    assert await chain.ens.address("alice.other.ensign.eth") is None
    with pytest.raises(ResolverNotFound):
        await chain.ens.get_text("alice.other.ensign.eth", "email")


# -- JSON-RPC server ----------------------------------------------------------------------------------


async def test_rpc_answers_chain_identity(chain, rpc, http):
    assert (await rpc_call(http, rpc, "eth_chainId"))["result"] == hex(chain.chain_id)
    assert (await rpc_call(http, rpc, "net_version"))["result"] == str(chain.chain_id)
    assert (await rpc_call(http, rpc, "eth_blockNumber"))["result"] == hex(await chain.w3.eth.block_number)
    assert (await rpc_call(http, rpc, "eth_accounts"))["result"] == chain.accounts
    code = (await rpc_call(http, rpc, "eth_getCode", [ENS_REGISTRY_ADDRESS, "latest"]))["result"]
    assert code == "0x" + artifact("ENSRegistry").runtime.hex()
    slot = hex(hashmap_slot(0, b"\x00" * 32))
    stored = (await rpc_call(http, rpc, "eth_getStorageAt", [ENS_REGISTRY_ADDRESS, slot, "latest"]))["result"]
    assert to_checksum_address("0x" + stored[-40:]) == chain.deployer


async def test_rpc_call_revert_has_the_geth_shape_with_offchain_lookup_bytes(chain, rpc, http):
    name = "alice.user.ensign.eth"
    call_data = ccip.encode_resolve_call(ccip.dns_encode(name), ccip.encode_text_call(ccip.namehash(name), "email"))
    body = await rpc_call(http, rpc, "eth_call", [{"to": chain.offchain_resolver.address, "data": "0x" + call_data.hex()}, "latest"])
    expected = ccip.encode_offchain_lookup(
        ccip.OffchainLookup(
            sender=chain.offchain_resolver.address,
            urls=(await chain.offchain_resolver.functions.url().call(),),
            call_data=call_data,
            callback=ccip.RESOLVE_WITH_PROOF_SELECTOR,
            extra_data=ccip.extra_data_for(call_data, chain.offchain_resolver.address),
        )
    )
    assert body == {"jsonrpc": "2.0", "id": 7, "error": {"code": 3, "message": "execution reverted", "data": "0x" + expected.hex()}}


async def test_rpc_call_from_an_unfunded_address_works_like_geth(chain, rpc, http):
    stranger = Account.create().address
    data = chain.registry.functions.owner(b"\x00" * 32)._encode_transaction_data()
    body = await rpc_call(http, rpc, "eth_call", [{"from": stranger, "to": ENS_REGISTRY_ADDRESS, "data": data}, "latest"])
    assert to_checksum_address("0x" + body["result"][-40:]) == chain.deployer
    assert await chain.w3.eth.get_balance(stranger) == 0


async def test_rpc_error_string_revert_carries_the_reason(chain, rpc, http):
    call = chain.registry.functions.setResolver(b"\x00" * 32, ALICE)
    data = call._encode_transaction_data()
    body = await rpc_call(http, rpc, "eth_call", [{"from": chain.accounts[4], "to": ENS_REGISTRY_ADDRESS, "data": data}])
    reason = "ENSRegistry: not authorised"
    assert body["error"] == {
        "code": 3,
        "message": f"execution reverted: {reason}",
        "data": "0x" + (keccak(text="Error(string)")[:4] + abi_encode(["string"], [reason])).hex(),
    }
    estimate = await rpc_call(http, rpc, "eth_estimateGas", [{"from": chain.accounts[4], "to": ENS_REGISTRY_ADDRESS, "data": data}])
    assert estimate["error"]["code"] == 3 and estimate["error"]["data"] == body["error"]["data"]


async def test_rpc_protocol_errors(rpc, http):
    assert (await rpc_call(http, rpc, "eth_mine_gold"))["error"]["code"] == -32601
    assert (await rpc_call(http, rpc, "eth_getBalance", ["not-an-address"]))["error"]["code"] == -32602
    async with http.post(rpc.url, data=b"{not json") as response:
        assert (await response.json())["error"]["code"] == -32700
    async with http.post(rpc.url, json={"jsonrpc": "2.0", "id": 1}) as response:
        assert (await response.json())["error"]["code"] == -32600
    async with http.post(rpc.url, json=[]) as response:
        assert (await response.json())["error"]["code"] == -32600


async def test_rpc_batch_answers_each_request_and_skips_notifications(chain, rpc, http):
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
        {"jsonrpc": "2.0", "method": "eth_blockNumber", "params": []},
        {"jsonrpc": "2.0", "id": "b", "method": "nope", "params": []},
    ]
    async with http.post(rpc.url, json=batch) as response:
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        body = await response.json()
    assert body == [
        {"jsonrpc": "2.0", "id": 1, "result": hex(chain.chain_id)},
        {"jsonrpc": "2.0", "id": "b", "error": {"code": -32601, "message": "the method nope does not exist/is not available"}},
    ]


async def test_rpc_send_transaction_and_read_it_back(chain, rpc, http):
    sender, receiver = chain.accounts[1], chain.accounts[2]
    balance = await chain.w3.eth.get_balance(receiver)
    tx_hash = (await rpc_call(http, rpc, "eth_sendTransaction", [{"from": sender, "to": receiver, "value": "0x2a"}]))["result"]
    receipt = (await rpc_call(http, rpc, "eth_getTransactionReceipt", [tx_hash]))["result"]
    assert receipt["status"] == "0x1" and receipt["transactionHash"] == tx_hash
    assert receipt["logsBloom"] == "0x" + "00" * 256
    tx = (await rpc_call(http, rpc, "eth_getTransactionByHash", [tx_hash]))["result"]
    assert (tx["from"], tx["to"], tx["value"], tx["input"]) == (sender, receiver, "0x2a", "0x")
    block = (await rpc_call(http, rpc, "eth_getBlockByNumber", [receipt["blockNumber"], True]))["result"]
    assert block["transactions"][0]["hash"] == tx_hash
    assert len(block["logsBloom"]) == 2 + 512 and block["miner"] == "0x" + "00" * 20
    assert (await rpc_call(http, rpc, "eth_getBlockByHash", [block["hash"], False]))["result"]["transactions"] == [tx_hash]
    assert await chain.w3.eth.get_balance(receiver) == balance + 42
    assert (await rpc_call(http, rpc, "eth_getTransactionReceipt", ["0x" + "00" * 32]))["result"] is None
    refused = await rpc_call(http, rpc, "eth_sendTransaction", [{"from": Account.create().address, "to": receiver}])
    assert refused["error"]["code"] == -32000


async def test_rpc_send_raw_transaction_with_events(chain, rpc, http):
    key = chain.private_keys[3]
    sender = chain.accounts[3]
    data = chain.registry.functions.setApprovalForAll(chain.accounts[4], True)._encode_transaction_data()
    nonce = int((await rpc_call(http, rpc, "eth_getTransactionCount", [sender, "latest"]))["result"], 16)
    base_fee = int((await rpc_call(http, rpc, "eth_getBlockByNumber", ["latest", False]))["result"]["baseFeePerGas"], 16)
    tip = int((await rpc_call(http, rpc, "eth_maxPriorityFeePerGas"))["result"], 16)
    signed = Account.sign_transaction(
        {
            "type": 2,
            "chainId": chain.chain_id,
            "nonce": nonce,
            "to": ENS_REGISTRY_ADDRESS,
            "data": data,
            "gas": 100_000,
            "maxFeePerGas": 2 * base_fee + tip,
            "maxPriorityFeePerGas": tip,
            "value": 0,
        },
        key,
    )
    tx_hash = (await rpc_call(http, rpc, "eth_sendRawTransaction", ["0x" + signed.raw_transaction.hex()]))["result"]
    receipt = (await rpc_call(http, rpc, "eth_getTransactionReceipt", [tx_hash]))["result"]
    assert receipt["status"] == "0x1"
    (log,) = receipt["logs"]
    assert log["address"] == ENS_REGISTRY_ADDRESS and log["removed"] is False
    assert log["topics"][0] == "0x" + keccak(text="ApprovalForAll(address,address,bool)").hex()
    assert receipt["logsBloom"] != "0x" + "00" * 256
    logs = (await rpc_call(http, rpc, "eth_getLogs", [{"fromBlock": receipt["blockNumber"], "toBlock": receipt["blockNumber"]}]))["result"]
    assert [entry["transactionHash"] for entry in logs] == [tx_hash]
    assert await chain.registry.functions.isApprovedForAll(sender, chain.accounts[4]).call() is True


async def test_rpc_fee_methods_and_test_controls(chain, rpc, http):
    gas_price = int((await rpc_call(http, rpc, "eth_gasPrice"))["result"], 16)
    assert gas_price > int((await rpc_call(http, rpc, "eth_maxPriorityFeePerGas"))["result"], 16)
    newest = await chain.w3.eth.block_number
    history = (await rpc_call(http, rpc, "eth_feeHistory", ["0x2", "latest", [50]]))["result"]
    assert history["oldestBlock"] == hex(newest - 1)
    assert len(history["gasUsedRatio"]) == 2 and isinstance(history["gasUsedRatio"][0], float)
    assert len(history["baseFeePerGas"]) == 3 and len(history["reward"]) == 2
    newest_block = await chain.w3.eth.get_block(newest)
    assert history["baseFeePerGas"][1] == hex(newest_block["baseFeePerGas"])
    snapshot = (await rpc_call(http, rpc, "evm_snapshot"))["result"]
    number = await chain.w3.eth.block_number
    await rpc_call(http, rpc, "evm_mine")
    assert await chain.w3.eth.block_number == number + 1
    assert (await rpc_call(http, rpc, "evm_revert", [snapshot]))["result"] is True
    assert await chain.w3.eth.block_number == number


async def test_rpc_keeps_an_idle_chain_fresh(chain, rpc, http, monkeypatch):
    number = await chain.w3.eth.block_number
    await rpc_call(http, rpc, "eth_chainId")
    assert await chain.w3.eth.block_number == number
    # Thirteen hours later the newest block is older than the default 12 h: the next request mines one.
    later = chain.latest_timestamp() + 13 * 3600
    monkeypatch.setattr(devchain_module, "time", types.SimpleNamespace(time=lambda: later))
    await rpc_call(http, rpc, "eth_chainId")
    assert await chain.w3.eth.block_number == number + 1


async def test_web3_over_http_resolves_offchain_names(chain, rpc):
    provider = AsyncHTTPProvider(rpc.url)
    provider.ccip_read_allow_http = True
    w3 = AsyncWeb3(provider)
    try:
        assert await w3.eth.chain_id == chain.chain_id
        assert await w3.eth.get_balance(chain.deployer) > 0
        ns = AsyncENS.from_web3(w3)
        assert await ns.get_text("alice.user.ensign.eth", "email") == "alice@example.com"
        assert await ns.address(f"{WILD.lower()}.addr.ensign.eth") == WILD
        assert await ns.get_text(DS_NAME, "network.dm3.deliveryService") == DS_PROFILE
        # Over JSON-RPC, reverts are ContractLogicError natively: web3's not-found paths.
        assert await ns.address("nobody.example") is None
    finally:
        await provider.disconnect()


# -- ethers 5 (what the dm3 libraries use) against the JSON-RPC server --------------------------------

# ethers is installed by the interop vectors' `npm ci` (specs/vectors); without it the test skips.
ETHERS_MODULES = Path(__file__).resolve().parents[1] / "specs" / "vectors" / "node_modules"
ETHERS_SCRIPT = """
const { ethers } = require("ethers");
(async () => {
  const [url, chainId, ensAddress, ...names] = process.argv.slice(1);
  const provider = new ethers.providers.StaticJsonRpcProvider(url, { name: "dev", chainId: Number(chainId), ensAddress });
  const out = { version: ethers.version };
  for (const name of names) {
    const resolver = await provider.getResolver(name);
    out[name] = resolver && { resolver: resolver.address, email: await resolver.getText("email"), addr: await resolver.getAddress() };
  }
  console.log(JSON.stringify(out));
})().catch((error) => { console.error(error); process.exit(1); });
"""


@pytest.mark.skipif(
    shutil.which("node") is None or not (ETHERS_MODULES / "ethers").is_dir(),
    reason="needs node and ethers 5 from specs/vectors (npm ci there)",
)
async def test_ethers5_follows_ccip_read_through_the_rpc_server(chain, rpc):
    wildcard = f"{WILD.lower()}.addr.ensign.eth"
    process = await asyncio.create_subprocess_exec(
        "node", "-e", ETHERS_SCRIPT, rpc.url, str(chain.chain_id), ENS_REGISTRY_ADDRESS,
        "alice.user.ensign.eth", wildcard, "nobody.user.ensign.eth", "nobody.example",
        env={"NODE_PATH": str(ETHERS_MODULES), "PATH": "/usr/local/bin:/usr/bin:/bin"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode()
    result = json.loads(stdout)
    assert result["version"].startswith("ethers/5.")
    resolver = chain.offchain_resolver.address
    assert result["alice.user.ensign.eth"] == {"resolver": resolver, "email": "alice@example.com", "addr": ALICE}
    assert result[wildcard] == {"resolver": resolver, "email": "wild@example.com", "addr": WILD}
    assert result["nobody.user.ensign.eth"] == {"resolver": resolver, "email": None, "addr": None}
    assert result["nobody.example"] is None
