"""``ensign dev``: the stack a developer runs, used the way their tools use it.

The chain is reached only through its JSON-RPC server (as ethers, viem or a browser would), the
backend only over HTTP, and profiles come back through ENS: JSON-RPC → Universal Resolver →
OffchainResolver → CCIP-Read gateway → backend.
"""

from __future__ import annotations

import dataclasses
import io
import json
import socket
from pathlib import Path
from typing import Any

import aiohttp
from eth_account import Account
from web3 import AsyncHTTPProvider, AsyncWeb3
from ens import AsyncENS

from ensign.config import ENS_REGISTRY_ADDRESS, ConfigError
from stack.demo import DEMO_TEXT, run_demo
from stack.devstack import DevStack, DevStackSettings, client_config, print_table
from ensign.protocol.keys import profile_keys_from_wallet
from ensign.protocol.models import UserProfile
from ensign.protocol.profile import load_user_profile, parse_profile_record, sign_profile

from ensign.protocol.records import PROFILE_RECORD_NAME as PROFILE_KEY


def ports_zero(data_dir: Path, **overrides: Any) -> DevStackSettings:
    return DevStackSettings(
        data_dir=data_dir, chain_port=0, backend_port=0, gateway_port=0, delivery_port=0, **overrides
    )


async def register(http: aiohttp.ClientSession, stack: DevStack) -> tuple[str, dict[str, Any]]:
    account = Account.create()
    private_key = "0x" + bytes(account.key).hex()
    keys = profile_keys_from_wallet(private_key)
    profile = UserProfile(
        public_encryption_key=keys.encryption.public_key,
        public_signing_key=keys.signing.public_key,
        delivery_services=("ds.ensign.eth",),
    )
    signed = sign_profile(private_key, profile).to_json()
    body = {"signedUserProfile": signed, "address": account.address, "subdomain": "addr.ensign.eth"}
    async with http.post(f"{stack.backend_url}/profile/address", json=body) as response:
        assert response.status == 200, await response.text()
        name = (await response.json())["name"]
    return name, signed


async def resolve_over_json_rpc(stack: DevStack, name: str) -> tuple[str | None, str]:
    provider = AsyncHTTPProvider(stack.chain_url)
    provider.ccip_read_allow_http = True
    w3 = AsyncWeb3(provider)
    ens = AsyncENS.from_web3(w3, ENS_REGISTRY_ADDRESS)
    try:
        return await ens.address(name), await ens.get_text(name, PROFILE_KEY)
    finally:
        await provider.disconnect()


async def test_dev_stack_serves_a_registered_profile_through_ens_over_json_rpc(
    tmp_path: Path, redis_url: str, redis_prefix: str, redis: Any
) -> None:
    stack = await DevStack(ports_zero(tmp_path, redis_url=redis_url, redis_prefix=redis_prefix)).start()
    try:
        async with aiohttp.ClientSession() as http:
            name, signed = await register(http, stack)
            address, text = await resolve_over_json_rpc(stack, name)
        assert address is not None and address.lower() == name.split(".")[0]
        record = parse_profile_record(text)
        assert load_user_profile(record.value).to_json() == signed  # type: ignore[union-attr]
        # Everything the backend stored is under the stack's prefix, nowhere else.
        assert [key async for key in redis.scan_iter(match=f"{redis_prefix}*")]
    finally:
        await stack.close()


async def test_dev_stack_restart_keeps_profiles_and_gateway_key(tmp_path: Path) -> None:
    first = await DevStack(ports_zero(tmp_path)).start()
    try:
        async with aiohttp.ClientSession() as http:
            name, signed = await register(http, first)
        signer = first.gateway_signer
    finally:
        await first.close()
    secrets_file = tmp_path / "dev-secrets.json"
    assert secrets_file.stat().st_mode & 0o777 == 0o600

    second = await DevStack(ports_zero(tmp_path)).start()
    try:
        assert second.gateway_signer == signer
        _, text = await resolve_over_json_rpc(second, name)
        assert load_user_profile(parse_profile_record(text).value).to_json() == signed  # type: ignore[union-attr]
    finally:
        await second.close()


async def test_endpoint_table_names_every_service(tmp_path: Path, redis_url: str, redis_prefix: str) -> None:
    stack = await DevStack(ports_zero(tmp_path, redis_url=redis_url, redis_prefix=redis_prefix)).start()
    try:
        out = io.StringIO()
        print_table(stack, out)
        table = out.getvalue()
        for url in (stack.chain_url, stack.backend_url, stack.gateway_url):
            assert url in table
        assert ENS_REGISTRY_ADDRESS in table and "addr.ensign.eth" in table
        stored = json.loads((tmp_path / "dev-secrets.json").read_text())
        for secret in ("gatewaySignerKey", "signingPrivateKey", "encryptionPrivateKey", "jwtSecret"):
            assert stored[secret] not in table
    finally:
        await stack.close()


async def test_a_port_in_use_stops_start_up_with_a_message_naming_it(
    tmp_path: Path, redis_url: str, redis_prefix: str, unused_tcp_port: int
) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", unused_tcp_port))
    blocker.listen()
    try:
        settings = dataclasses.replace(
            ports_zero(tmp_path, redis_url=redis_url, redis_prefix=redis_prefix), backend_port=unused_tcp_port
        )
        try:
            await DevStack(settings).start()
        except ConfigError as error:
            assert f"backend on port {unused_tcp_port}" in error.message
        else:
            raise AssertionError("start-up should have failed")
    finally:
        blocker.close()


async def test_dev_stack_publishes_its_delivery_service_through_ens(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    stack = await DevStack(ports_zero(tmp_path, redis_url=redis_url, redis_prefix=redis_prefix)).start()
    try:
        assert stack.lookup is not None
        profile = await stack.lookup.delivery_service_profile("ds.ensign.eth")
        stored = json.loads((tmp_path / "dev-secrets.json").read_text())
        assert profile.url == stack.delivery_url
        assert profile.public_signing_key == stored["signingPublicKey"]
        assert profile.public_encryption_key == stored["encryptionPublicKey"]
        async with aiohttp.ClientSession() as http, http.get(f"{stack.delivery_url}/health") as response:
            assert response.status == 200
            assert (await response.json())["status"] == "ok"
    finally:
        await stack.close()


async def test_an_older_secrets_file_keeps_its_gateway_key_and_gains_delivery_keys(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    old_key = "0x" + "ab" * 32
    (tmp_path / "dev-secrets.json").write_text(json.dumps({"gatewaySignerKey": old_key}))
    stack = await DevStack(ports_zero(tmp_path, redis_url=redis_url, redis_prefix=redis_prefix)).start()
    try:
        assert stack.gateway_signer == Account.from_key(old_key).address
        stored = json.loads((tmp_path / "dev-secrets.json").read_text())
        assert stored["gatewaySignerKey"] == old_key
        assert {"signingPrivateKey", "encryptionPrivateKey", "jwtSecret"} <= stored.keys()
        assert (tmp_path / "dev-secrets.json").stat().st_mode & 0o777 == 0o600
    finally:
        await stack.close()


async def test_demo_delivers_a_message_end_to_end_through_the_dev_stack(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    stack = await DevStack(ports_zero(tmp_path, redis_url=redis_url, redis_prefix=redis_prefix)).start()
    try:
        out = io.StringIO()
        message = await run_demo(client_config(stack), "user.ensign.eth", out)
        assert message.text == DEMO_TEXT
        assert message.receiver.startswith("bob-") and message.receiver.endswith(".user.ensign.eth")
        assert message.sender.endswith(".addr.ensign.eth")
        printed = out.getvalue()
        assert "received over socket.io" in printed and "acknowledged" in printed
        assert printed.rstrip().endswith("Demo complete.")
    finally:
        await stack.close()


async def test_dev_stack_has_a_contract_wallet_user_that_receives_and_answers(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    from ensign.client import Client, Wallet

    stack = await DevStack(ports_zero(tmp_path, redis_url=redis_url, redis_prefix=redis_prefix)).start()
    try:
        assert stack.chain is not None and stack.lookup is not None
        # On chain: a contract (code at the address), named wallet.ensign.eth, with a profile the
        # owner key signed for the contract.
        assert len(await stack.chain.w3.eth.get_code(stack.wallet_address)) > 0
        resolved = await stack.lookup.user_profile("wallet.ensign.eth")
        assert resolved.address == stack.wallet_address != stack.wallet_owner
        out = io.StringIO()
        print_table(stack, out)
        assert f"wallet.ensign.eth = {stack.wallet_address}" in out.getvalue()

        # The owner (the chain's second account) uses it through the SDK; a new user writes to it.
        owner = Wallet.from_private_key(stack.chain.private_keys[1])
        config = client_config(stack)
        safe = Client(Wallet.contract(stack.wallet_address, owner), config, name="wallet.ensign.eth")
        alice = Client(Wallet.from_private_key("0x" + bytes(Account.create().key).hex()), config)
        async with safe, alice:
            await alice.setup()
            sent = await alice.send("wallet.ensign.eth", "hello, wallet")
            [received] = (await safe.fetch()).messages
            assert (received.id, received.text, received.sender) == (sent.id, "hello, wallet", alice.name)
            await safe.send(alice.name, "hello back")
            assert [m.text for m in (await alice.fetch()).messages] == ["hello back"]
    finally:
        await stack.close()
