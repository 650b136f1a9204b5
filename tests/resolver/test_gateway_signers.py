"""The gateway's signer rotation (issue 14, point 6): a gateway holding a next signer key signs with
it once told to, and ENS clients (web3's ENS and our lookup, through the Universal Resolver and the
OffchainResolver's own signature check) accept its answers exactly when the resolver lists it."""

from __future__ import annotations

from aiohttp.test_utils import TestServer
from eth_account import Account
import pytest

from ensign.config import ConfigError, GatewaySettings
from ensign.errors import NotFound
from ensign.protocol.profile import profile_json_data_uri
from resolver.gateway import create_app as create_gateway
from tests.stack import PROFILE_KEY, Stack
from tests.wallets import ADDR_DOMAIN, Wallet


async def _gateway(stack: Stack, settings: GatewaySettings) -> tuple[TestServer, str]:
    server = TestServer(create_gateway(settings), host="127.0.0.1")
    await server.start_server()
    return server, f"http://127.0.0.1:{server.port}/{{sender}}/{{data}}.json"


async def test_answers_signed_by_the_next_signer_verify_when_the_resolver_lists_both(stack: Stack) -> None:
    alice = Wallet.create()
    signed = alice.profile()
    assert (await stack.register(alice, signed)).status == 200
    current, upcoming = stack.signer, Account.create()
    settings = GatewaySettings(
        signer_key=current.key.hex(),
        next_signer_key=upcoming.key.hex(),
        backend_url=str(stack.backend.make_url("/")),
        answer_reuse=0,
    )
    before, before_url = await _gateway(stack, settings)
    after, after_url = await _gateway(stack, GatewaySettings(**{**settings.__dict__, "sign_with_next": True}))
    try:
        async with stack.http.get(before.make_url("/health")) as response:
            health = await response.json()
        assert health["signer"] == current.address
        assert health["signers"] == [current.address, upcoming.address]

        # The resolver that lists both: answers of either gateway verify.
        both = await stack.chain.deploy_offchain_resolver(after_url, [current.address, upcoming.address])
        await stack.chain.set_resolver(ADDR_DOMAIN, both.address)
        stack.lookup.forget(alice.address_name)
        assert await stack.chain.ens.get_text(alice.address_name, PROFILE_KEY) == profile_json_data_uri(signed)
        assert (await stack.lookup.user_profile(alice.address_name)).signed_profile == signed
        both_before = await stack.chain.deploy_offchain_resolver(before_url, [current.address, upcoming.address])
        await stack.chain.set_resolver(ADDR_DOMAIN, both_before.address)
        stack.lookup.forget(alice.address_name)
        assert (await stack.lookup.user_profile(alice.address_name)).signed_profile == signed

        # A resolver that lists only the current signer refuses what the next one signed.
        only_current = await stack.chain.deploy_offchain_resolver(after_url, [current.address])
        await stack.chain.set_resolver(ADDR_DOMAIN, only_current.address)
        stack.lookup.forget(alice.address_name)
        with pytest.raises(NotFound, match="Invalid sigature"):  # sic, the contract's message
            await stack.lookup.user_profile(alice.address_name)
    finally:
        await before.close()
        await after.close()


def test_sign_with_next_needs_a_next_signer_key() -> None:
    key = Account.create().key.hex()
    with pytest.raises(ConfigError, match="GATEWAY_NEXT_SIGNER_KEY"):
        GatewaySettings.from_env({"GATEWAY_SIGNER_KEY": key, "GATEWAY_SIGN_WITH_NEXT": "yes"})
    settings = GatewaySettings.from_env(
        {"GATEWAY_SIGNER_KEY": key, "GATEWAY_NEXT_SIGNER_KEY": Account.create().key.hex(), "GATEWAY_SIGN_WITH_NEXT": "yes"}
    )
    assert settings.sign_with_next and settings.next_signer_key is not None
    assert "next_signer_key" not in repr(settings) or settings.next_signer_key not in repr(settings)
