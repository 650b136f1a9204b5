"""Profiles in ENS, end to end: backend (real Redis) → gateway → embedded chain → readers.

Every test runs the production apps on 127.0.0.1 random ports: the profile backend
(``backend.app.create_app``) on a real Redis under the test's own key prefix, the gateway
(``resolver.gateway.create_app``) reading it over HTTP, and the embedded chain with our
OffchainResolver pointing at the gateway. Readers are web3.py's own ``AsyncENS`` and our
``NameLookup``; the contract's ``resolveWithProof`` judges the gateway's real answers.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from eth_abi import decode as abi_decode
from eth_account import Account
from web3.exceptions import ContractLogicError, OffchainLookup

from ensign.config import GatewaySettings
from ensign.errors import NotFound, ServiceUnavailable
from ensign.protocol.profile import profile_json_data_uri
from ensign.ens import ccip
from resolver.gateway import create_app as create_gateway

from tests.stack import PROFILE_KEY, Stack
from tests.wallets import ADDR_DOMAIN, USER_DOMAIN, Wallet


# -- resolution -----------------------------------------------------------------------------------


async def test_registered_profile_resolves_through_web3_ens_and_the_lookup(stack: Stack) -> None:
    alice = Wallet.create()
    signed = alice.profile()
    response = await stack.register(alice, signed)
    assert response.status == 200
    name = alice.address_name

    # web3.py's own ENS API: Universal Resolver → batch gateway → our gateway → backend.
    assert await stack.chain.ens.get_text(name, PROFILE_KEY) == profile_json_data_uri(signed)
    assert await stack.chain.ens.address(name) == alice.address
    assert await stack.chain.ens.address(name, coin_type=60) == alice.address
    assert await stack.chain.ens.get_text(name, "email") == ""

    resolved = await stack.lookup.user_profile(name)
    assert resolved.address == alice.address
    assert resolved.signed_profile == signed
    assert await stack.lookup.address(name) == alice.address


async def test_alias_under_the_user_domain_resolves_by_wildcard(stack: Stack) -> None:
    alice = Wallet.create()
    signed = alice.profile()
    assert (await stack.register(alice, signed)).status == 200
    alias = f"alice{alice.address[2:8].lower()}.{USER_DOMAIN}"
    await stack.claim(alice, alias)

    # Only user.ensign.eth has a resolver on chain; the alias exists only in the backend.
    assert await stack.chain.registry.functions.resolver(ccip.namehash(alias)).call() == "0x" + "00" * 20
    assert await stack.chain.ens.address(alias) == alice.address
    assert await stack.chain.ens.get_text(alias, PROFILE_KEY) == profile_json_data_uri(signed)
    resolved = await stack.lookup.user_profile(alias)
    assert (resolved.name, resolved.address, resolved.signed_profile) == (alias, alice.address, signed)


async def test_unknown_names_are_no_record_not_an_exception(stack: Stack) -> None:
    for name in (f"nobody.{USER_DOMAIN}", f"{'0x' + '12' * 20}.{ADDR_DOMAIN}", "nothing-here.eth"):
        assert await stack.chain.ens.address(name) is None
        with pytest.raises(NotFound):
            await stack.lookup.user_profile(name)
        with pytest.raises(NotFound):
            await stack.lookup.address(name)
    # Under our domains the gateway answers "no record" (an empty text), not a revert.
    assert await stack.chain.ens.get_text(f"nobody.{USER_DOMAIN}", PROFILE_KEY) == ""


async def test_a_replayed_old_profile_is_refused(stack: Stack) -> None:
    alice = Wallet.create()
    old = alice.profile("ds.ensign.eth")
    new = alice.profile("ds2.ensign.eth")
    assert (await stack.register(alice, old)).status == 200
    assert (await stack.register(alice, new)).status == 200
    replay = await stack.register(alice, old)
    assert replay.status == 409
    assert await stack.chain.ens.get_text(alice.address_name, PROFILE_KEY) == profile_json_data_uri(new)
    assert (await stack.lookup.user_profile(alice.address_name)).signed_profile == new


async def test_backend_down_is_unavailable_not_missing(stack: Stack) -> None:
    alice = Wallet.create()
    assert (await stack.register(alice)).status == 200
    await stack.backend.close()
    call_data = ccip.encode_resolve_call(
        ccip.dns_encode(alice.address_name), ccip.encode_text_call(ccip.namehash(alice.address_name), PROFILE_KEY)
    )
    async with stack.http.get(stack.gateway.make_url(f"/{stack.chain.offchain_resolver.address}/0x{call_data.hex()}.json")) as r:
        assert r.status == 503
        assert (await r.json())["error"] == "unavailable"
    with pytest.raises(ServiceUnavailable):
        await stack.lookup.user_profile(alice.address_name)


# -- the contract judges the gateway's answers ------------------------------------------------------


async def resolver_lookup(stack: Stack, name: str, record_call: bytes) -> Any:
    """The resolver's own OffchainLookup for ``record_call`` of ``name`` (CCIP-Read switched off)."""
    resolver = stack.chain.offchain_resolver
    with pytest.raises(OffchainLookup) as info:
        await resolver.functions.resolve(ccip.dns_encode(name), record_call).call(ccip_read_enabled=False)
    return info.value.payload


async def test_resolver_accepts_the_gateway_answer(stack: Stack) -> None:
    alice = Wallet.create()
    signed = alice.profile()
    assert (await stack.register(alice, signed)).status == 200
    name = alice.address_name
    node = ccip.namehash(name)
    resolver = stack.chain.offchain_resolver
    for record_call, abi_type, expected in (
        (ccip.encode_text_call(node, PROFILE_KEY), "string", profile_json_data_uri(signed)),
        (ccip.encode_addr_call(node), "address", alice.address.lower()),
        (ccip.encode_addr_call(node, 60), "bytes", bytes.fromhex(alice.address[2:])),
        (ccip.encode_contenthash_call(node), "bytes", b""),
    ):
        payload = await resolver_lookup(stack, name, record_call)
        assert payload["sender"].lower() == resolver.address.lower()
        assert list(payload["urls"]) == [stack.chain.gateway_url]
        answer = await stack.gateway_answer(bytes(payload["callData"]))
        result = await resolver.functions.resolveWithProof(answer, payload["extraData"]).call(ccip_read_enabled=False)
        assert abi_decode([abi_type], result) == (expected,)


async def test_resolver_refuses_an_expired_answer(stack: Stack) -> None:
    alice = Wallet.create()
    assert (await stack.register(alice)).status == 200
    name = alice.address_name
    payload = await resolver_lookup(stack, name, ccip.encode_text_call(ccip.namehash(name), PROFILE_KEY))
    answer = await stack.gateway_answer(bytes(payload["callData"]))
    expires = ccip.decode_response(answer).expires
    resolver = stack.chain.offchain_resolver
    # Still valid at its last second, refused one second later.
    stack.chain.time_travel(max(expires, stack.chain.latest_timestamp() + 1))
    await resolver.functions.resolveWithProof(answer, payload["extraData"]).call(ccip_read_enabled=False)
    stack.chain.time_travel(expires + 1)
    with pytest.raises(ContractLogicError, match="Signature expired"):
        await resolver.functions.resolveWithProof(answer, payload["extraData"]).call(ccip_read_enabled=False)


async def test_resolver_refuses_an_answer_from_an_unknown_signer(stack: Stack) -> None:
    alice = Wallet.create()
    assert (await stack.register(alice)).status == 200
    name = alice.address_name
    rogue_settings = GatewaySettings(signer_key=Account.create().key.hex(), backend_url=str(stack.backend.make_url("/")))
    rogue = TestServer(create_gateway(rogue_settings, batch_gateway=True), host="127.0.0.1")
    await rogue.start_server()
    try:
        payload = await resolver_lookup(stack, name, ccip.encode_text_call(ccip.namehash(name), PROFILE_KEY))
        answer = await stack.gateway_answer(bytes(payload["callData"]), gateway=rogue)
        with pytest.raises(ContractLogicError, match="Invalid sigature"):
            await stack.chain.offchain_resolver.functions.resolveWithProof(answer, payload["extraData"]).call(
                ccip_read_enabled=False
            )

        # The same through the whole read path: a resolver trusting our key, served by the rogue.
        impostor = await stack.chain.deploy_offchain_resolver(
            f"http://127.0.0.1:{rogue.port}/{{sender}}/{{data}}.json", [stack.signer.address]
        )
        await stack.chain.set_resolver("rogue.ensign.eth", impostor.address)
        assert await stack.chain.ens.address("alice.rogue.ensign.eth") is None
        with pytest.raises(NotFound, match="Invalid sigature"):
            await stack.lookup.address("alice.rogue.ensign.eth")
    finally:
        await rogue.close()


async def test_answer_for_one_resolver_is_refused_by_another(stack: Stack) -> None:
    alice = Wallet.create()
    assert (await stack.register(alice)).status == 200
    name = alice.address_name
    payload = await resolver_lookup(stack, name, ccip.encode_text_call(ccip.namehash(name), PROFILE_KEY))
    answer = await stack.gateway_answer(bytes(payload["callData"]))
    other = await stack.chain.deploy_offchain_resolver(stack.chain.gateway_url or "", [stack.signer.address])
    extra_for_other = ccip.extra_data_for(bytes(payload["callData"]), other.address)
    with pytest.raises(ContractLogicError, match="Invalid sigature"):
        await other.functions.resolveWithProof(answer, extra_for_other).call(ccip_read_enabled=False)


# -- bad input ------------------------------------------------------------------------------------


async def test_bad_input_to_every_gateway_endpoint_is_a_4xx_json_error(stack: Stack) -> None:
    resolver = stack.chain.offchain_resolver.address
    name = f"x.{ADDR_DOMAIN}"
    mismatched = ccip.encode_resolve_call(ccip.dns_encode(name), ccip.encode_text_call(b"\x01" * 32, PROFILE_KEY))
    cases: list[tuple[str, str, Any, int]] = [
        ("GET", "/0x1234/0x9061b923.json", None, 400),
        ("GET", f"/{resolver}/nothex.json", None, 400),
        ("GET", f"/{resolver}/0x12345678.json", None, 404),
        ("GET", f"/{resolver}/0x{mismatched.hex()}.json", None, 400),
        ("GET", f"/{resolver}/0x9061b923deadbeef.json", None, 400),
        ("POST", "/", b"not json", 400),
        ("POST", "/", b"[]", 400),
        ("POST", "/", {"sender": resolver}, 400),
        ("POST", "/", {"sender": resolver, "data": 7}, 400),
        ("POST", "/", {"sender": "0x12", "data": "0x"}, 400),
        ("POST", "/", {"sender": resolver, "data": "0x" + "00" * 70_000}, 413),
        ("POST", "/health", {}, 405),
        ("PUT", "/", {}, 405),
        ("GET", "/no/such/path", None, 404),
    ]
    for method, path, body, status in cases:
        kwargs: dict[str, Any] = {"data": body} if isinstance(body, bytes) else {"json": body}
        async with stack.http.request(method, stack.gateway.make_url(path), **kwargs) as response:
            assert response.status == status, (method, path, await response.text())
            assert response.content_type == "application/json"
            error = await response.json()
            assert isinstance(error["error"], str) and isinstance(error["message"], str)
            assert response.headers["Access-Control-Allow-Origin"] == "*"


# -- figures ----------------------------------------------------------------------------------------


async def test_lookup_latency(stack: Stack, record_property: Any) -> None:
    """Cold (cache empty: chain + batch gateway + gateway + backend + Redis) vs warm (cache) lookups."""
    users = [Wallet.create() for _ in range(6)]
    for user in users:
        assert (await stack.register(user)).status == 200
    await stack.lookup.user_profile(users[0].address_name)  # first call pays one-off set-up
    cold = []
    for user in users[1:]:
        start = time.perf_counter()
        await stack.lookup.user_profile(user.address_name)
        cold.append(time.perf_counter() - start)
    warm = []
    for _ in range(200):
        start = time.perf_counter()
        await stack.lookup.user_profile(users[1].address_name)
        warm.append(time.perf_counter() - start)
    cold_ms, warm_ms = statistics.median(cold) * 1000, statistics.median(warm) * 1000
    record_property("lookup_cold_ms", round(cold_ms, 2))
    record_property("lookup_warm_ms", round(warm_ms, 4))
    print(f"\nuser_profile lookup: cold median {cold_ms:.1f} ms (n={len(cold)}), warm median {warm_ms:.3f} ms (n=200)")
    assert warm_ms * 20 < cold_ms
