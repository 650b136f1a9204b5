"""Every ENS client resolves Ensign names on a running dev stack, with the client's defaults.

One :class:`~stack.devstack.DevStack` for the module, reached only over its JSON-RPC as a dapp
would. Three kinds of name: the delivery service's own (on-chain records), an address name
``0x<addr>.addr.ensign.eth`` and an alias ``<label>.user.ensign.eth`` (both offchain, through
CCIP-Read and the gateway). Each client reads text, address and the primary name (reverse
resolution, checked forward), and refuses a gateway answer that is expired or signed by a key
the resolver does not trust:

- viem 2, ethers 6 (registry only, and with the Universal Resolver named) and ethers 5 (as dm3's
  libraries use it) run under node from ``specs/vectors`` (``specs/vectors/ens-clients.mjs``);
- web3.py 8 ``AsyncENS`` over HTTP;
- the README's viem and ethers 6 snippets, run as written but for the RPC URL.

The node tests skip, with the reason, only without node or ``specs/vectors/node_modules`` (npm);
with ``CI=true`` they fail instead, because CI must run them.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from aiohttp import web
from ens import AsyncENS
from ens.exceptions import ResolverNotFound
from eth_utils.crypto import keccak
from web3.exceptions import ContractCustomError
from eth_abi.abi import decode as abi_decode
from eth_account import Account
from web3 import AsyncHTTPProvider, AsyncWeb3

from ensign.client import Client, Wallet
from ensign.config import ENS_REGISTRY_ADDRESS, GatewaySettings
from ensign.ens import ccip
from ensign.protocol.profile import DELIVERY_SERVICE_RECORD_NAME
from ensign.protocol.records import PROFILE_RECORD_NAME
from resolver.gateway import create_app as create_gateway
from stack.devchain import UNIVERSAL_RESOLVER_ADDRESS
from stack.devstack import DevStack, DevStackSettings, client_config
from tests.conftest import delete_prefixed

pytestmark = pytest.mark.asyncio(loop_scope="module")

ROOT = Path(__file__).resolve().parents[1]
VECTORS_DIR = ROOT / "specs" / "vectors"
CLIENTS_SCRIPT = VECTORS_DIR / "ens-clients.mjs"
README = ROOT / "README.md"
NODE_TIMEOUT = 60  # seconds for one node run
README_RPC = "http://127.0.0.1:8545"
README_ADDRESS = "0x2B5AD5c4795c026514f8317c7a215E218DcCD6cF"  # the snippets' "your address"


@dataclass
class Refused:
    """A name served by a gateway whose answers its resolver must refuse."""

    text: str  # the profile record that gateway answers with (what a client must not return)
    gateway_url: str
    resolver: str


@dataclass
class Names:
    """The names the stack serves, what they resolve to, and who has which primary name."""

    stack: DevStack
    expected: dict[str, tuple[str, str, str]]  # name -> (text record key, its value, address)
    primary: dict[str, str | None]  # address -> primary name a client must return
    refused: dict[str, Refused]  # names whose gateway answer must be refused
    user: tuple[str, str]  # an address whose address name is its primary name, and that name


async def _user(stack: DevStack, private_key: str, alias: str | None = None) -> tuple[str, str, str | None]:
    """Publish a profile for ``private_key`` (and claim ``alias``); returns (address, address name, alias)."""
    async with Client(Wallet.from_private_key(private_key), client_config(stack)) as client:
        registration = await client.publish_profile()
        if alias is not None:
            alias = (await client.claim_alias(alias)).name
        return client.address, registration.name, alias


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def _record(stack: DevStack, name: str, key: str) -> tuple[str, str]:
    """``(key, value)`` of a text record the stack publishes for ``name`` (read in process)."""
    assert stack.chain is not None
    text = await stack.chain.ens.get_text(name, key)
    assert text, f"{name} has no {key} record on the stack"
    return key, str(text)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def names(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> AsyncIterator[Names]:
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    settings = DevStackSettings(
        data_dir=tmp_path_factory.mktemp("ens-clients"),
        redis_url=redis_url,
        redis_prefix=prefix,
        chain_port=0,
        backend_port=0,
        gateway_port=0,
        delivery_port=0,
    )
    stack = await DevStack(settings).start()
    runners: list[web.AppRunner] = []
    redis = aioredis.from_url(redis_url)
    try:
        chain = stack.chain
        assert chain is not None
        ds_name = settings.delivery_name
        # Users whose keys are the chain's funded accounts, so they can send their own transactions.
        alice, alice_name, _ = await _user(stack, chain.private_keys[1])
        bob, bob_name, bob_alias = await _user(stack, chain.private_keys[2], f"bob{uuid.uuid4().hex[:6]}.user.ensign.eth")
        carol, carol_name, carol_alias = await _user(stack, chain.private_keys[3], f"carol{uuid.uuid4().hex[:6]}.user.ensign.eth")
        assert bob_alias is not None and carol_alias is not None
        # `ensign dev` gives its delivery service's name the deployer's address and primary name.
        operator = chain.deployer
        liar = chain.accounts[5]

        expected = {
            ds_name: (*await _record(stack, ds_name, DELIVERY_SERVICE_RECORD_NAME), operator),
            alice_name: (*await _record(stack, alice_name, PROFILE_RECORD_NAME), alice),
            bob_alias: (*await _record(stack, bob_alias, PROFILE_RECORD_NAME), bob),
        }

        # Primary names: set by the registrar's owner (in process and over JSON-RPC), and by a
        # user's own transaction through web3.py's ENS.setup_name, as a user would. A claim that
        # does not resolve back is worthless: liar claims bob's alias.
        async with _http_ens(stack) as ens:
            await ens.setup_name(bob_alias, bob)
            # Over JSON-RPC, the chain's deployer (the first unlocked account) sets anyone's.
            registrar = ens.w3.eth.contract(address=chain.reverse_registrar.address, abi=chain.reverse_registrar.abi)
            deployer = (await ens.w3.eth.accounts)[0]
            await registrar.functions.setNameForAddr(alice, alice_name).transact({"from": deployer})
        await chain.set_primary_name(liar, bob_alias)
        primary: dict[str, str | None] = {operator: ds_name, alice: alice_name, bob: bob_alias, liar: None}

        # Gateways whose answers the resolver must refuse: one signs with a key it does not trust,
        # one signs with the right key but answers already expired. Each serves one of carol's names.
        forged_runner, forged_url = await _serve(
            create_gateway(GatewaySettings(signer_key="0x" + bytes(Account.create().key).hex(), backend_url=stack.backend_url))
        )
        runners.append(forged_runner)
        secrets = json.loads((settings.data_dir / "dev-secrets.json").read_text())
        expired_runner, expired_url = await _serve(
            create_gateway(GatewaySettings(signer_key=secrets["gatewaySignerKey"], backend_url=stack.backend_url, signature_ttl=-3600))
        )
        runners.append(expired_runner)
        refused: dict[str, Refused] = {}
        for name, url in ((carol_name, forged_url), (carol_alias, expired_url)):
            _, text = await _record(stack, name, PROFILE_RECORD_NAME)
            resolver = await chain.deploy_offchain_resolver(f"{url}/{{sender}}/{{data}}.json", [stack.gateway_signer])
            await chain.set_resolver(name, resolver.address)
            refused[name] = Refused(text=text, gateway_url=url, resolver=resolver.address)

        yield Names(stack=stack, expected=expected, primary=primary, refused=refused, user=(alice, alice_name))
    finally:
        for runner in runners:
            await runner.cleanup()
        await stack.close()
        await delete_prefixed(redis, prefix)
        await redis.aclose()


class _http_ens:
    """web3.py's ``AsyncENS`` over the stack's JSON-RPC, as an application would open it."""

    def __init__(self, stack: DevStack) -> None:
        self.provider = AsyncHTTPProvider(stack.chain_url)
        self.provider.ccip_read_allow_http = True

    async def __aenter__(self) -> AsyncENS:
        return AsyncENS.from_web3(AsyncWeb3(self.provider), ENS_REGISTRY_ADDRESS)

    async def __aexit__(self, *exc: object) -> None:
        await self.provider.disconnect()


# -- node ---------------------------------------------------------------------------------------


def _need_node() -> None:
    reason = None
    if shutil.which("node") is None:
        reason = "node is not installed (the viem/ethers client tests run under node)"
    elif not (VECTORS_DIR / "node_modules" / "viem").is_dir():
        reason = "specs/vectors/node_modules is missing: npm ci --prefix specs/vectors (make test does it when npm exists)"
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} — CI=true, so the ENS client tests must run")
        pytest.skip(reason)


async def _node(*args: str, cwd: Path = VECTORS_DIR) -> str:
    _need_node()
    process = await asyncio.create_subprocess_exec(
        "node", *args, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=NODE_TIMEOUT)
    assert process.returncode == 0, stderr.decode()
    return stdout.decode()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def js_results(names: Names) -> dict[str, Any]:
    chain = names.stack.chain
    assert chain is not None
    request = {
        "rpc": names.stack.chain_url,
        "chainId": chain.chain_id,
        "registry": ENS_REGISTRY_ADDRESS,
        "universalResolver": UNIVERSAL_RESOLVER_ADDRESS,
        "key": PROFILE_RECORD_NAME,
        "names": [{"name": name, "key": key} for name, (key, _, _) in names.expected.items()],
        "addresses": list(names.primary),
        "refused": list(names.refused),
    }
    results: dict[str, Any] = json.loads(await _node(str(CLIENTS_SCRIPT), json.dumps(request)))
    return results


JS_CLIENTS = ["viem", "ethers6", "ethers6_universal", "ethers5"]


@pytest.mark.parametrize("client", JS_CLIENTS)
async def test_js_client_reads_text_and_address_of_every_kind_of_name(names: Names, js_results: dict[str, Any], client: str) -> None:
    result = js_results[client]
    for name, (_, text, address) in names.expected.items():
        assert result["names"][name] == {"text": text, "address": address}, (client, name)


@pytest.mark.parametrize("client", JS_CLIENTS)
async def test_js_client_reads_primary_names_checked_forward(names: Names, js_results: dict[str, Any], client: str) -> None:
    primary = js_results[client]["primary"]
    for address, name in names.primary.items():
        if name is not None:
            assert primary[address] == name, (client, address)
        elif client == "ethers6_universal":
            # ethers 6 passes the Universal Resolver's ReverseAddressMismatch up as an exception.
            assert primary[address] is None or "error" in primary[address], (client, address)
        else:
            assert primary[address] is None, (client, address)


async def test_refused_gateways_answer_with_the_real_record(names: Names) -> None:
    # The control for the refusal tests: the rogue gateways do answer, with the record itself.
    async with aiohttp.ClientSession() as http:
        for name, refused in names.refused.items():
            call = ccip.encode_resolve_call(ccip.dns_encode(name), ccip.encode_text_call(ccip.namehash(name), PROFILE_RECORD_NAME))
            url = f"{refused.gateway_url}/{refused.resolver.lower()}/0x{call.hex()}.json"
            async with http.get(url) as response:
                assert response.status == 200, await response.text()
                answer = ccip.decode_response(ccip.decode_hex((await response.json())["data"], "data"))
            assert abi_decode(["string"], answer.result) == (refused.text,), name


@pytest.mark.parametrize("client", JS_CLIENTS)
async def test_js_client_refuses_expired_and_wrongly_signed_answers(names: Names, js_results: dict[str, Any], client: str) -> None:
    for name, refused in names.refused.items():
        outcome = js_results[client]["refused"][name]
        # viem throws in strict mode and answers "no record" without it; ethers answers "no
        # record" (5 and 6 turn the resolver's revert into null) or throws. Never the record.
        for mode in ("strict", "lax"):
            assert refused.text not in json.dumps(outcome[mode]), (client, name, mode)
            assert outcome[mode] in ({"value": None}, None) or "error" in outcome[mode], (client, name, mode, outcome)
    if client == "viem":
        # viem sees the Universal Resolver's own error: the resolver refused the answer.
        assert {js_results[client]["refused"][name]["strict"]["error"] for name in names.refused} == {"ResolverError"}


async def test_js_clients_are_the_pinned_versions(js_results: dict[str, Any]) -> None:
    lock = json.loads((VECTORS_DIR / "package-lock.json").read_text())["packages"]
    assert js_results["viem"]["version"] == "viem/" + lock["node_modules/viem"]["version"]
    assert js_results["ethers6"]["version"] == "ethers/" + lock["node_modules/ethers6"]["version"]
    assert js_results["ethers5"]["version"] == "ethers/" + lock["node_modules/ethers"]["version"]
    assert js_results["viem"]["version"].startswith("viem/2.")
    assert js_results["ethers6"]["version"].startswith("ethers/6.")
    assert js_results["ethers5"]["version"].startswith("ethers/5.")


# -- web3.py ------------------------------------------------------------------------------------


async def test_web3py_reads_text_address_and_primary_names(names: Names) -> None:
    async with _http_ens(names.stack) as ens:
        for name, (key, text, address) in names.expected.items():
            assert await ens.get_text(name, key) == text, name
            assert await ens.address(name) == address, name
        for address, primary in names.primary.items():
            assert await ens.name(address) == primary, address


async def test_web3py_refuses_expired_and_wrongly_signed_answers(names: Names) -> None:
    async with _http_ens(names.stack) as ens:
        for name in names.refused:
            # The Universal Resolver reverts ResolverError(the resolver's refusal); web3.py raises.
            with pytest.raises(ResolverNotFound) as info:
                await ens.get_text(name, PROFILE_RECORD_NAME)
            cause: BaseException | None = info.value
            while cause is not None and not isinstance(cause, ContractCustomError):
                cause = cause.__cause__ or cause.__context__
            assert isinstance(cause, ContractCustomError), name
            assert str(cause.data).startswith("0x" + keccak(text="ResolverError(bytes)")[:4].hex()), name


# -- the README's snippets --------------------------------------------------------------------------


def _readme_snippet(marker: str) -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"```js\n(// " + re.escape(marker) + r"\n.*?)```", text, re.S)
    assert match, f"README has no js snippet starting with // {marker}"
    return match.group(1)


@pytest.mark.parametrize("marker", ["viem", "ethers 6"])
async def test_readme_snippet_resolves_the_delivery_service(names: Names, marker: str) -> None:
    snippet = _readme_snippet(marker)
    assert README_RPC in snippet and README_ADDRESS in snippet
    address, address_name = names.user
    # As written, but for the stack's port, a registered user's address, and ethers 6 under its
    # alias here (specs/vectors keeps ethers 5 as "ethers" for dm3's libraries).
    runnable = snippet.replace(README_RPC, names.stack.chain_url).replace(README_ADDRESS, address)
    runnable = runnable.replace("from 'ethers'", "from 'ethers6'")
    script = VECTORS_DIR / f".readme-{marker.replace(' ', '')}-{uuid.uuid4().hex[:8]}.mjs"
    script.write_text(runnable, encoding="utf-8")
    try:
        output = await _node(str(script))
    finally:
        script.unlink()
    _, text, _ = names.expected[names.stack.settings.delivery_name]
    # The delivery service's profile record, the user's address name's address, the user's primary name.
    assert output.split("\n")[:3] == [text, address, address_name]
