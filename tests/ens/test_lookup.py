"""NameLookup against the embedded chain: Universal Resolver → batch gateway → our gateway.

One chain, gateway and link server per module (one event loop for the module); each test uses
its own names, so the shared in-memory record source never mixes tests up. The full stack with
the real backend and Redis is tests/test_profiles_e2e.py.
"""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer
from eth_account import Account
from eth_utils.crypto import keccak

from ensign.config import ChainSettings, GatewaySettings
from stack.devchain import DevChain
from ensign.errors import InvalidRequest, NotFound, ServiceUnavailable
from ensign.protocol.canonical import stringify
from ensign.protocol.keys import random_encryption_key_pair, random_signing_key_pair
from ensign.protocol.models import DeliveryServiceProfile, SignedUserProfile, UserProfile
from ensign.protocol.profile import profile_hash, profile_json_data_uri, sign_profile
from ensign.ens.cache import CacheSettings
from ensign.ens import ccip
from resolver.gateway import create_app
from ensign.ens.lookup import LinkPolicy, NameLookup, is_public_ip, open_lookup
from resolver.records import InMemoryRecordSource, NameRecords

pytestmark = pytest.mark.asyncio(loop_scope="module")

from ensign.protocol.records import PROFILE_RECORD_NAME as PROFILE_KEY
from ensign.protocol.records import REVOCATION_RECORD_NAME
DS_KEY = "network.dm3.deliveryService"


class CountingSource(InMemoryRecordSource):
    """In-memory records that count reads per name and can play "backend down" for some names."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: Counter[str] = Counter()
        self.down: set[str] = set()

    async def records(self, name: str) -> NameRecords | None:
        self.reads[name] += 1
        if name in self.down:
            from ensign.errors import ServiceUnavailable as Down

            raise Down("the profile backend cannot be reached")
        return await super().records(name)


@dataclass
class Stack:
    chain: DevChain
    source: CountingSource
    links: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    link_base: str = ""
    # Requests the gateway answered: "batch" (ENSIP-21 query from the Universal Resolver) or "record".
    gateway_requests: Counter[str] = field(default_factory=Counter)

    def link(self, body: Any, *, status: int = 200, dm3_hash: str | None = "auto", raw: bytes | None = None) -> str:
        """Serve ``body`` at a fresh path of the link server; the URL, with ``?dm3Hash=`` by default."""
        path = f"/p/{uuid.uuid4().hex}"
        self.links[path] = (status, raw if raw is not None else json.dumps(body).encode())
        url = self.link_base + path
        if dm3_hash == "auto":
            dm3_hash = profile_hash(body)
        return url if dm3_hash is None else f"{url}?dm3Hash={dm3_hash}"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def stack() -> AsyncIterator[Stack]:
    signer = Account.create()
    source = CountingSource()
    # No reuse of signed answers: these tests count the lookup's own reads of the records.
    gateway_app = create_app(GatewaySettings(signer_key=signer.key.hex(), answer_reuse=0), records=source, batch_gateway=True)
    gateway_requests: Counter[str] = Counter()

    async def count_request(request: web.Request, response: web.StreamResponse) -> None:
        gateway_requests["batch" if f"/0x{ccip.BATCH_QUERY_SELECTOR.hex()}" in request.path else "record"] += 1

    gateway_app.on_response_prepare.append(count_request)
    gateway = TestServer(gateway_app, host="127.0.0.1")
    await gateway.start_server()
    links: dict[str, tuple[int, bytes]] = {}

    async def serve_link(request: web.Request) -> web.Response:
        status, body = links.get(request.path, (404, b'{"error":"not_found"}'))
        return web.Response(status=status, body=body, content_type="application/json")

    link_app = web.Application()
    link_app.router.add_get("/p/{id}", serve_link)
    link_server = TestServer(link_app, host="127.0.0.1")
    await link_server.start_server()
    chain = await DevChain(
        gateway_url=f"http://127.0.0.1:{gateway.port}/{{sender}}/{{data}}.json",
        signers=[signer.address],
        offchain_names=["addr.ensign.eth", "user.ensign.eth"],
    ).start()
    yield Stack(
        chain=chain,
        source=source,
        links=links,
        link_base=f"http://127.0.0.1:{link_server.port}",
        gateway_requests=gateway_requests,
    )
    await chain.close()
    await link_server.close()
    await gateway.close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest_asyncio.fixture(loop_scope="module")
async def clock() -> FakeClock:
    return FakeClock()


@pytest_asyncio.fixture(loop_scope="module")
async def lookup(stack: Stack, clock: FakeClock) -> AsyncIterator[NameLookup]:
    lookup = await open_lookup(ChainSettings(), w3=stack.chain.w3)
    lookup.cache._clock = clock  # step cache time by hand
    yield lookup
    await lookup.close()


def new_user() -> tuple[Any, SignedUserProfile]:
    wallet = Account.create()
    profile = UserProfile(
        public_encryption_key=random_encryption_key_pair().public_key,
        public_signing_key=random_signing_key_pair().public_key,
        delivery_services=("ds.ensign.eth",),
    )
    return wallet, sign_profile(wallet.key.hex(), profile)


def register(stack: Stack, address: str | None, profile_text: str | None, *, name: str | None = None) -> str:
    """Put records for a fresh name under user.ensign.eth into the gateway's source; the name."""
    name = name or f"u{uuid.uuid4().hex[:10]}.user.ensign.eth"
    texts = {PROFILE_KEY: profile_text} if profile_text is not None else {}
    stack.source.set(NameRecords(name=name, address=address, texts=texts))
    return name


def ds_profile(url: str = "https://ds.example/") -> DeliveryServiceProfile:
    return DeliveryServiceProfile(
        public_encryption_key=random_encryption_key_pair().public_key,
        public_signing_key=random_signing_key_pair().public_key,
        url=url,
    )


# -- addresses and profiles ------------------------------------------------------------------------


async def test_address_and_profile_of_a_registered_name(stack: Stack, lookup: NameLookup) -> None:
    wallet, signed = new_user()
    name = register(stack, wallet.address, profile_json_data_uri(signed))
    assert await lookup.address(name) == wallet.address
    resolved = await lookup.user_profile(name)
    assert resolved.name == name
    assert resolved.address == wallet.address
    assert resolved.signed_profile == signed


async def test_any_subname_resolves_through_the_wildcard_resolver(stack: Stack, lookup: NameLookup) -> None:
    wallet, signed = new_user()
    # Neither name exists on chain: only addr.ensign.eth has a resolver.
    for name in (f"{wallet.address.lower()}.addr.ensign.eth", f"deep.sub.x{uuid.uuid4().hex[:6]}.addr.ensign.eth"):
        register(stack, wallet.address, profile_json_data_uri(signed), name=name)
        assert (await lookup.user_profile(name)).address == wallet.address


async def test_input_names_are_normalised(stack: Stack, lookup: NameLookup) -> None:
    wallet, signed = new_user()
    name = register(stack, wallet.address, profile_json_data_uri(signed))
    assert (await lookup.user_profile(name.upper())).name == name


async def test_unknown_names_are_not_found(stack: Stack, lookup: NameLookup) -> None:
    for name in ("nobody.user.ensign.eth", "nothing-here.eth", "no.such.tld"):
        with pytest.raises(NotFound):
            await lookup.user_profile(name)
        with pytest.raises(NotFound):
            await lookup.address(name)
        with pytest.raises(NotFound):
            await lookup.delivery_service_profile(name)
    assert await lookup.text("nobody.user.ensign.eth", "email") == ""


@pytest.mark.parametrize("name", ["", "   ", "eth", "a..eth", "bad name.eth"])
async def test_invalid_names_are_invalid_requests(lookup: NameLookup, name: str) -> None:
    with pytest.raises(InvalidRequest):
        await lookup.address(name)


async def test_profile_signed_by_someone_else_is_invalid(stack: Stack, lookup: NameLookup) -> None:
    wallet, _ = new_user()
    _, foreign = new_user()
    name = register(stack, wallet.address, profile_json_data_uri(foreign))
    with pytest.raises(InvalidRequest, match="not signed by the name's address") as info:
        await lookup.user_profile(name)
    assert info.value.code == "invalid_profile"


async def test_profile_without_an_address_record_is_invalid(stack: Stack, lookup: NameLookup) -> None:
    _, signed = new_user()
    name = register(stack, None, profile_json_data_uri(signed))
    with pytest.raises(InvalidRequest, match="no address record"):
        await lookup.user_profile(name)


async def test_name_with_address_but_no_profile_is_not_found(stack: Stack, lookup: NameLookup) -> None:
    wallet, _ = new_user()
    name = register(stack, wallet.address, None)
    assert await lookup.address(name) == wallet.address
    with pytest.raises(NotFound, match="no dm3 profile"):
        await lookup.user_profile(name)


@pytest.mark.parametrize(
    "text, reason",
    [
        ("hello", "malformed"),
        ("data:text/plain,{}", "malformed"),
        ('data:application/json,{"profile":{}}', "invalid"),
        ('{"profile": 1, "signature": "0x"}', "invalid"),
    ],
)
async def test_malformed_profile_records_are_invalid(stack: Stack, lookup: NameLookup, text: str, reason: str) -> None:
    wallet, _ = new_user()
    name = register(stack, wallet.address, text)
    with pytest.raises(InvalidRequest, match=reason) as info:
        await lookup.user_profile(name)
    assert info.value.code == "invalid_profile"


async def test_raw_json_and_base64_data_uri_profiles_are_accepted(stack: Stack, lookup: NameLookup) -> None:
    import base64

    wallet, signed = new_user()
    for text in (
        stringify(signed.to_json()),
        "data:application/json;base64," + base64.b64encode(stringify(signed.to_json()).encode()).decode(),
    ):
        name = register(stack, wallet.address, text)
        assert (await lookup.user_profile(name)).signed_profile == signed


# -- linked profiles ------------------------------------------------------------------------------


async def test_linked_profile_is_fetched_and_hash_checked(stack: Stack, lookup: NameLookup) -> None:
    wallet, signed = new_user()
    name = register(stack, wallet.address, stack.link(signed.to_json()))
    assert (await lookup.user_profile(name)).signed_profile == signed


@pytest.mark.parametrize(
    "make_link, error, match",
    [
        (lambda s, p: s.link(p, dm3_hash="0x" + "00" * 32), InvalidRequest, "dm3Hash"),
        (lambda s, p: s.link(p, dm3_hash=None), InvalidRequest, "no dm3Hash"),
        (lambda s, p: s.link(p, status=404), InvalidRequest, "HTTP 404"),
        (lambda s, p: s.link(p, raw=b"<html>", dm3_hash="0x00"), InvalidRequest, "not JSON"),
        (lambda s, p: s.link(p, raw=b" " * 70_000, dm3_hash="0x00"), InvalidRequest, "larger than"),
        (lambda s, p: s.link(p, status=502), ServiceUnavailable, "HTTP 502"),
    ],
)
async def test_bad_profile_links(stack: Stack, lookup: NameLookup, make_link: Any, error: type, match: str) -> None:
    wallet, signed = new_user()
    name = register(stack, wallet.address, make_link(stack, signed.to_json()))
    with pytest.raises(error, match=match):
        await lookup.user_profile(name)


async def test_unreachable_link_host_is_service_unavailable(stack: Stack, lookup: NameLookup) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    wallet, signed = new_user()
    name = register(stack, wallet.address, f"http://127.0.0.1:{port}/p?dm3Hash={profile_hash(signed.to_json())}")
    with pytest.raises(ServiceUnavailable, match="cannot be reached"):
        await lookup.user_profile(name)


async def test_production_link_policy_refuses_http_and_private_hosts(stack: Stack) -> None:
    strict = NameLookup(stack.chain.w3, link_policy=LinkPolicy())
    wallet, signed = new_user()
    served = stack.link(signed.to_json())  # http://127.0.0.1:<port>/p/…?dm3Hash=…
    port = served.split(":")[2].split("/")[0]
    path = served.split(port, 1)[1]
    try:
        for url, match in (
            (served, "must use https"),
            (f"https://127.0.0.1:{port}{path}", "public host"),
            (f"https://[::1]:{port}{path}", "public host"),
            (f"https://localhost:{port}{path}", "public host"),
        ):
            name = register(stack, wallet.address, url)
            with pytest.raises(InvalidRequest, match=match):
                await strict.user_profile(name)
    finally:
        await strict.close()


@pytest.mark.parametrize(
    "ip, public",
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("0.0.0.0", False),
        ("::1", False),
        ("fe80::1%eth0", False),
        ("fc00::1", False),
        ("::ffff:127.0.0.1", False),
        ("224.0.0.1", False),
        ("not-an-ip", False),
    ],
)
async def test_is_public_ip(ip: str, public: bool) -> None:
    assert is_public_ip(ip) is public


# -- delivery-service profiles --------------------------------------------------------------------


async def test_delivery_service_profile_in_every_accepted_form(stack: Stack, lookup: NameLookup) -> None:
    profile = ds_profile()
    for text in (
        profile_json_data_uri(profile),
        json.dumps(profile.to_json()),  # raw JSON, as dm3's installers publish it
        stack.link(profile.to_json()),
    ):
        name = f"ds{uuid.uuid4().hex[:8]}.user.ensign.eth"
        stack.source.set(NameRecords(name=name, texts={DS_KEY: text}))
        assert await lookup.delivery_service_profile(name) == profile


async def test_invalid_delivery_service_profiles(stack: Stack, lookup: NameLookup) -> None:
    profile = ds_profile()
    for text, match in (
        ('{"url": "https://ds.example/"}', "invalid"),
        (stack.link(profile.to_json(), dm3_hash=None), "no dm3Hash"),
        ("ftp://ds.example/profile", "malformed"),
    ):
        name = f"ds{uuid.uuid4().hex[:8]}.user.ensign.eth"
        stack.source.set(NameRecords(name=name, texts={DS_KEY: text}))
        with pytest.raises(InvalidRequest, match=match):
            await lookup.delivery_service_profile(name)


# -- caching --------------------------------------------------------------------------------------


async def test_answers_are_cached_until_their_ttl(stack: Stack, lookup: NameLookup, clock: FakeClock) -> None:
    wallet, signed = new_user()
    name = register(stack, wallet.address, profile_json_data_uri(signed))
    await lookup.user_profile(name)
    reads = stack.source.reads[name]
    stack.source.remove(name)
    assert (await lookup.user_profile(name)).address == wallet.address
    assert await lookup.address(name) == wallet.address
    assert stack.source.reads[name] == reads  # served from memory
    clock.now += lookup.cache.settings.ttl
    with pytest.raises(NotFound):
        await lookup.user_profile(name)


async def test_misses_are_cached_for_the_negative_ttl(stack: Stack, lookup: NameLookup, clock: FakeClock) -> None:
    wallet, signed = new_user()
    name = f"late{uuid.uuid4().hex[:8]}.user.ensign.eth"
    with pytest.raises(NotFound):
        await lookup.user_profile(name)
    register(stack, wallet.address, profile_json_data_uri(signed), name=name)
    with pytest.raises(NotFound, match="no dm3 profile"):
        await lookup.user_profile(name)
    clock.now += lookup.cache.settings.negative_ttl
    assert (await lookup.user_profile(name)).address == wallet.address


async def test_forget_drops_a_names_answers(stack: Stack, lookup: NameLookup) -> None:
    wallet, signed = new_user()
    name = register(stack, wallet.address, profile_json_data_uri(signed))
    await lookup.user_profile(name)
    _, newer = new_user()
    other = Account.create()
    register(stack, other.address, profile_json_data_uri(sign_profile(other.key.hex(), newer.profile)), name=name)
    assert (await lookup.user_profile(name)).address == wallet.address
    lookup.forget(name)
    assert (await lookup.user_profile(name)).address == other.address


async def test_concurrent_lookups_share_one_resolution(stack: Stack, lookup: NameLookup) -> None:
    wallet, signed = new_user()
    name = register(stack, wallet.address, profile_json_data_uri(signed))
    results = await asyncio.gather(*(lookup.user_profile(name) for _ in range(8)))
    assert {r.address for r in results} == {wallet.address}
    # the profile text, the revocation-list text and the addr query, whatever the number of callers
    assert stack.source.reads[name] == 3


@pytest.fixture
def chain_calls(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The function selector of every ``eth_call`` the chain executes during the test, in order."""
    backend = stack.chain.tester.backend
    selectors: list[bytes] = []
    call = backend.call

    def counting_call(transaction: dict[str, Any], block_number: Any = "latest") -> bytes:
        selectors.append(bytes(transaction["data"])[:4])
        return call(transaction, block_number)

    monkeypatch.setattr(backend, "call", counting_call)
    return selectors


async def test_cold_profile_lookup_is_one_universal_resolver_call(
    stack: Stack, lookup: NameLookup, chain_calls: list[bytes]
) -> None:
    wallet, signed = new_user()
    name = register(stack, wallet.address, profile_json_data_uri(signed))
    stack.gateway_requests.clear()
    assert (await lookup.user_profile(name)).address == wallet.address
    # resolve(name, multicall([profile, addr, revocation list])), then its callback: two eth_calls,
    # one batch query carrying the three records (the gateway answers each), instead of two
    # eth_calls and one batch query per record.
    assert chain_calls == [ccip.RESOLVE_SELECTOR, keccak(text="resolveMulticallCallback(bytes,bytes)")[:4]]
    assert stack.gateway_requests == Counter(batch=1, record=3)
    # The records are cached by the profile lookup: reading them again costs nothing more.
    assert await lookup.address(name) == wallet.address
    assert await lookup.text(name, PROFILE_KEY) == profile_json_data_uri(signed)
    assert await lookup.text(name, REVOCATION_RECORD_NAME) == ""
    assert len(chain_calls) == 2


async def test_a_name_without_resolver_is_asked_once_for_both_records(
    lookup: NameLookup, chain_calls: list[bytes]
) -> None:
    name = f"x{uuid.uuid4().hex[:8]}.nothing-here.eth"
    with pytest.raises(NotFound):
        await lookup.user_profile(name)
    with pytest.raises(NotFound):
        await lookup.address(name)
    with pytest.raises(NotFound):
        await lookup.text(name, PROFILE_KEY)
    assert chain_calls == [ccip.RESOLVE_SELECTOR]  # the one multicall; its refusal answers the others


async def test_size_bound_holds(stack: Stack) -> None:
    small = await open_lookup(ChainSettings(), w3=stack.chain.w3, cache=CacheSettings(max_entries=3))
    try:
        for _ in range(3):
            wallet, signed = new_user()
            await small.user_profile(register(stack, wallet.address, profile_json_data_uri(signed)))
        assert len(small.cache) == 3
    finally:
        await small.close()


# -- outages --------------------------------------------------------------------------------------


async def test_backend_outage_is_service_unavailable_and_not_cached(stack: Stack, lookup: NameLookup) -> None:
    wallet, signed = new_user()
    name = register(stack, wallet.address, profile_json_data_uri(signed))
    stack.source.down.add(name)
    with pytest.raises(ServiceUnavailable, match="HTTP 503"):
        await lookup.user_profile(name)
    with pytest.raises(ServiceUnavailable):
        await lookup.address(name)
    stack.source.down.discard(name)
    assert (await lookup.user_profile(name)).address == wallet.address


async def test_unreachable_node_is_service_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    lookup = await open_lookup(ChainSettings(rpc_url=f"http://127.0.0.1:{port}"))
    try:
        with pytest.raises(ServiceUnavailable, match="node cannot be reached"):
            await lookup.address("alice.eth")
        # Production keeps web3's safe CCIP-Read policy.
        assert lookup.w3.provider.ccip_read_allow_http is False
        assert lookup.link_policy == LinkPolicy()
    finally:
        await lookup.close()


async def test_embedded_chain_needs_its_web3() -> None:
    with pytest.raises(ValueError, match="embedded chain"):
        await open_lookup(ChainSettings())


@pytest.mark.parametrize(
    "url, allowed",
    [
        ("https://8.8.8.8/{sender}/{data}.json", True),
        ("https://127.0.0.1/x", False),
        ("https://[::1]/x", False),
        ("https://10.0.0.8/x", False),
        ("https://169.254.169.254/latest/meta-data", False),
        ("https://localhost/x", False),
        ("https:///x", False),
    ],
)
async def test_production_gateway_url_policy_holds_even_after_the_dev_chain_loosened_web3(
    stack: Stack, url: str, allowed: bool
) -> None:
    from web3.exceptions import Web3ValidationError

    from ensign.ens.lookup import production_web3, public_gateway_only

    # The module fixture started a DevChain, which removed loopback from web3's own block list.
    w3 = production_web3("https://rpc.example")
    assert w3.provider.ccip_read_allow_http is False
    assert w3.provider.ccip_read_url_validator is public_gateway_only
    if allowed:
        await public_gateway_only(url)
    else:
        with pytest.raises(Web3ValidationError):
            await public_gateway_only(url)
