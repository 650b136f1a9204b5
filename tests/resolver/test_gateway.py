"""The CCIP-Read gateway through its real aiohttp app, with an in-memory record source.

Answers are checked by decoding them and recovering the signer the way the resolver contracts do
(ensign/ens/ccip.py); tests/test_profiles_e2e.py checks the same answers against the contract.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from eth_abi import decode as abi_decode
from eth_account import Account

from ensign.config import GatewaySettings
from ensign.ens import ccip
from resolver.gateway import AnswerCache, create_app
from resolver.records import InMemoryRecordSource, NameRecords

SIGNER = Account.create()
RESOLVER = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
ALICE_ADDRESS = "0x71C7656EC7ab88b098defB751B7401B5f6d8976F"
PROFILE = 'data:application/json,{"profile":{"deliveryServices":["ds.ensign.eth"]},"signature":"0x"}'
ALICE = NameRecords(
    name="alice.user.ensign.eth",
    address=ALICE_ADDRESS,
    texts={"network.dm3.profile": PROFILE, "email": "alice@example.com"},
    contenthash=bytes.fromhex("e30101701220") + b"\x11" * 32,
)


def settings(**overrides: Any) -> GatewaySettings:
    return GatewaySettings(signer_key=SIGNER.key.hex(), **overrides)


@pytest.fixture
async def client(aiohttp_client: Any) -> TestClient:
    return await aiohttp_client(create_app(settings(), records=InMemoryRecordSource([ALICE])))


@pytest.fixture
async def dm3_client(aiohttp_client: Any) -> TestClient:
    return await aiohttp_client(create_app(settings(answer_format="dm3"), records=InMemoryRecordSource([ALICE])))


def call(name: str, record_call: bytes, context: bytes | None = None) -> bytes:
    return ccip.encode_resolve_call(ccip.dns_encode(name), record_call, context)


def text_call(name: str, key: str) -> bytes:
    return call(name, ccip.encode_text_call(ccip.namehash(name), key))


async def get(client: TestClient, call_data: bytes, sender: str = RESOLVER) -> tuple[int, dict[str, Any]]:
    response = await client.get(f"/{sender.lower()}/0x{call_data.hex()}.json")
    return response.status, await response.json()


async def answer(
    client: TestClient, call_data: bytes, variant: ccip.CcipVariant = ccip.CcipVariant.ENSDOMAINS
) -> ccip.SignedResponse:
    """GET the answer and check its signature recovers to the gateway's key, as the contract does."""
    status, body = await get(client, call_data)
    assert status == 200, body
    signed = ccip.decode_response(bytes.fromhex(body["data"][2:]))
    signer = ccip.recover_signer(RESOLVER, signed.expires, call_data, signed.result, signed.signature, variant)
    assert signer == SIGNER.address
    return signed


# -- records --------------------------------------------------------------------------------------


async def test_profile_text_record_is_signed_with_the_raw_digest_and_a_compact_signature(client: TestClient) -> None:
    before = int(time.time())
    signed = await answer(client, text_call("alice.user.ensign.eth", "network.dm3.profile"))
    assert abi_decode(["string"], signed.result) == (PROFILE,)
    assert len(signed.signature) == 64
    assert before + 300 <= signed.expires <= int(time.time()) + 300


async def test_other_text_keys_are_served_and_unknown_keys_are_empty(client: TestClient) -> None:
    signed = await answer(client, text_call("alice.user.ensign.eth", "email"))
    assert abi_decode(["string"], signed.result) == ("alice@example.com",)
    signed = await answer(client, text_call("alice.user.ensign.eth", "avatar"))
    assert abi_decode(["string"], signed.result) == ("",)


async def test_addr_is_an_abi_encoded_address(client: TestClient) -> None:
    node = ccip.namehash("alice.user.ensign.eth")
    signed = await answer(client, call("alice.user.ensign.eth", ccip.encode_addr_call(node)))
    assert len(signed.result) == 32
    assert abi_decode(["address"], signed.result) == (ALICE_ADDRESS.lower(),)


async def test_addr_with_coin_type_60_is_the_address_as_bytes_and_other_coins_are_empty(client: TestClient) -> None:
    node = ccip.namehash("alice.user.ensign.eth")
    signed = await answer(client, call("alice.user.ensign.eth", ccip.encode_addr_call(node, 60)))
    assert abi_decode(["bytes"], signed.result) == (bytes.fromhex(ALICE_ADDRESS[2:]),)
    signed = await answer(client, call("alice.user.ensign.eth", ccip.encode_addr_call(node, 0)))
    assert abi_decode(["bytes"], signed.result) == (b"",)


async def test_contenthash(client: TestClient) -> None:
    node = ccip.namehash("alice.user.ensign.eth")
    signed = await answer(client, call("alice.user.ensign.eth", ccip.encode_contenthash_call(node)))
    assert abi_decode(["bytes"], signed.result) == (ALICE.contenthash,)


async def test_unknown_name_is_answered_with_signed_empty_records(client: TestClient) -> None:
    name = "nobody.user.ensign.eth"
    node = ccip.namehash(name)
    signed = await answer(client, text_call(name, "network.dm3.profile"))
    assert abi_decode(["string"], signed.result) == ("",)
    signed = await answer(client, call(name, ccip.encode_addr_call(node)))
    assert abi_decode(["address"], signed.result) == ("0x" + "00" * 20,)
    signed = await answer(client, call(name, ccip.encode_contenthash_call(node)))
    assert abi_decode(["bytes"], signed.result) == (b"",)


async def test_signature_ttl_comes_from_the_settings(aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_app(settings(signature_ttl=30), records=InMemoryRecordSource([ALICE])))
    signed = await answer(client, text_call("alice.user.ensign.eth", "email"))
    assert abs(signed.expires - (time.time() + 30)) <= 2


async def test_signature_expiry_counts_from_the_injected_clock(aiohttp_client: Any) -> None:
    app = create_app(settings(signature_ttl=30), records=InMemoryRecordSource([ALICE]), clock=lambda: 1_700_000_000.5)
    signed = await answer(await aiohttp_client(app), text_call("alice.user.ensign.eth", "email"))
    assert signed.expires == 1_700_000_030


async def test_post_and_get_without_json_suffix_give_the_same_answer(client: TestClient) -> None:
    call_data = text_call("alice.user.ensign.eth", "email")
    response = await client.post("/", json={"sender": RESOLVER, "data": "0x" + call_data.hex()})
    assert response.status == 200
    posted = ccip.decode_response(bytes.fromhex((await response.json())["data"][2:]))
    response = await client.get(f"/{RESOLVER}/0x{call_data.hex()}")
    assert response.status == 200
    fetched = ccip.decode_response(bytes.fromhex((await response.json())["data"][2:]))
    assert posted.result == fetched.result
    for signed in (posted, fetched):
        assert ccip.recover_signer(RESOLVER, signed.expires, call_data, signed.result, signed.signature) == SIGNER.address


async def test_answer_is_bound_to_the_sender(client: TestClient) -> None:
    call_data = text_call("alice.user.ensign.eth", "email")
    signed = await answer(client, call_data)
    other = "0x" + "12" * 20
    assert ccip.recover_signer(other, signed.expires, call_data, signed.result, signed.signature) != SIGNER.address


# -- reused answers -------------------------------------------------------------------------------


async def test_a_repeated_request_gets_the_same_signed_answer_and_metrics_count_it(aiohttp_client: Any) -> None:
    source = InMemoryRecordSource([ALICE])
    client = await aiohttp_client(create_app(settings(), records=source))
    call_data = text_call("alice.user.ensign.eth", "email")
    first = await get(client, call_data)
    # Changed in the backend: the answer signed a moment ago is still valid and is sent again.
    source.set(NameRecords(name=ALICE.name, address=ALICE.address, texts={"email": "new@example.com"}))
    assert await get(client, call_data) == first
    assert await get(client, call_data, sender=RESOLVER.upper().replace("0X", "0x")) == first  # same address
    other_record = await answer(client, text_call("alice.user.ensign.eth", "network.dm3.profile"))
    assert abi_decode(["string"], other_record.result) == ("",)  # another record: read and signed anew
    metrics = await (await client.get("/metrics")).text()
    assert 'ensign_gateway_answers_total{source="signed"} 2.0' in metrics
    assert 'ensign_gateway_answers_total{source="cache"} 2.0' in metrics
    assert 'ensign_gateway_request_seconds_count{method="GET",route="/{sender}/{data}",status="200"} 4.0' in metrics


def test_an_answer_is_reused_for_the_reuse_time_never_past_half_its_validity_and_the_cache_is_bounded() -> None:
    cache = AnswerCache(reuse=5, size=2)
    cache.put("0xa", b"call", b"answer", now=1000.0, expires=1300)
    assert cache.get("0xa", b"call", 1004.9) == b"answer"
    assert cache.get("0xa", b"call", 1005.0) is None  # 5 s gone: read and sign anew
    cache.put("0xa", b"call", b"short", now=1000.0, expires=1006)
    assert cache.get("0xa", b"call", 1002.9) == b"short"
    assert cache.get("0xa", b"call", 1003.0) is None  # half of a 6 s validity
    off = AnswerCache(reuse=0)
    off.put("0xa", b"call", b"answer", now=1000.0, expires=1300)
    assert off.get("0xa", b"call", 1000.0) is None
    assert cache.get("0xb", b"call", 1000.0) is None
    cache.put("0xb", b"call", b"b", now=1000.0, expires=1300)
    cache.put("0xc", b"call", b"c", now=1000.0, expires=1300)
    assert cache.get("0xa", b"call", 1000.0) is None  # the oldest went first
    assert (cache.get("0xb", b"call", 1000.0), cache.get("0xc", b"call", 1000.0)) == (b"b", b"c")


# -- dm3 format -----------------------------------------------------------------------------------


async def test_dm3_format_signs_with_the_eip191_prefix_and_answers_raw_addresses(dm3_client: TestClient) -> None:
    name = "alice.user.ensign.eth"
    node = ccip.namehash(name)
    context = bytes.fromhex(ALICE_ADDRESS[2:])
    call_data = call(name, ccip.encode_addr_call(node), context)
    assert call_data[:4] == ccip.RESOLVE_WITH_CONTEXT_SELECTOR
    signed = await answer(dm3_client, call_data, ccip.CcipVariant.DM3)
    assert signed.result == bytes.fromhex(ALICE_ADDRESS[2:])
    assert len(signed.signature) == 65
    # The same bytes do not verify as an ensdomains (raw digest) signature.
    raw = ccip.recover_signer(RESOLVER, signed.expires, call_data, signed.result, signed.signature)
    assert raw != SIGNER.address

    signed = await answer(dm3_client, call(name, ccip.encode_text_call(node, "network.dm3.profile"), context), ccip.CcipVariant.DM3)
    assert abi_decode(["string"], signed.result) == (PROFILE,)
    # dm3's handler also accepts the plain resolve(bytes,bytes) call.
    signed = await answer(dm3_client, text_call(name, "email"), ccip.CcipVariant.DM3)
    assert abi_decode(["string"], signed.result) == ("alice@example.com",)


async def test_resolve_with_context_is_not_implemented_in_the_ensdomains_format(client: TestClient) -> None:
    name = "alice.user.ensign.eth"
    status, body = await get(client, call(name, ccip.encode_text_call(ccip.namehash(name), "email"), b"\x01"))
    assert status == 404
    assert body["message"] == "No implementation for function with selector 0xf8c30f63"


# -- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/0x1234/0x9061b923.json",  # short sender
        f"/{RESOLVER[2:]}/0x9061b923.json",  # sender without 0x
        f"/{RESOLVER[:-1]}g/0x9061b923.json",  # sender not hex
        f"/{RESOLVER}/9061b923.json",  # data without 0x
        f"/{RESOLVER}/0x9061b92.json",  # odd number of digits
        f"/{RESOLVER}/0xzz.json",  # not hex
    ],
)
async def test_malformed_sender_or_data_is_400_invalid_request_format(client: TestClient, path: str) -> None:
    response = await client.get(path)
    assert response.status == 400
    assert await response.json() == {"error": "invalid_request", "message": "Invalid request format"}


@pytest.mark.parametrize(
    "body",
    [
        {"data": "0x9061b923"},
        {"sender": RESOLVER},
        {"sender": 5, "data": "0x9061b923"},
        {"sender": RESOLVER, "data": ["0x"]},
    ],
)
async def test_malformed_post_body_is_400_invalid_request_format(client: TestClient, body: dict[str, Any]) -> None:
    response = await client.post("/", json=body)
    assert response.status == 400
    assert (await response.json())["message"] == "Invalid request format"


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1, 2]", b'"0x"'])
async def test_post_body_that_is_not_a_json_object_is_400(client: TestClient, raw: bytes) -> None:
    response = await client.post("/", data=raw, headers={"Content-Type": "application/json"})
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_json"


async def test_oversized_post_body_is_413(client: TestClient) -> None:
    response = await client.post("/", json={"sender": RESOLVER, "data": "0x" + "00" * 100_000})
    assert response.status == 413
    assert (await response.json())["error"] == "payload_too_large"


@pytest.mark.parametrize("data", ["0x", "0x12", "0xdeadbeef", "0x" + ccip.BATCH_QUERY_SELECTOR.hex()])
async def test_unknown_function_selector_is_404(client: TestClient, data: str) -> None:
    response = await client.get(f"/{RESOLVER}/{data}.json")
    assert response.status == 404
    body = await response.json()
    assert body["error"] == "not_found"
    assert body["message"] == f"No implementation for function with selector 0x{data[2:10]}"


async def test_namehash_mismatch_is_400(client: TestClient) -> None:
    record_call = ccip.encode_text_call(ccip.namehash("bob.user.ensign.eth"), "email")
    status, body = await get(client, call("alice.user.ensign.eth", record_call))
    assert status == 400
    assert body == {"error": "namehash_mismatch", "message": "name does not match namehash"}


async def test_name_that_is_not_normalised_is_400(client: TestClient) -> None:
    name = "Alice.user.ensign.eth"
    record_call = ccip.encode_text_call(ccip.namehash(name), "email")
    status, body = await get(client, call(name, record_call))
    assert status == 400
    assert body["error"] == "name_not_normalized"


async def test_unsupported_record_function_is_400(client: TestClient) -> None:
    name = "alice.user.ensign.eth"
    abi_call = bytes.fromhex("2203ab56") + ccip.namehash(name) + (1).to_bytes(32, "big")  # ABI(bytes32,uint256)
    status, body = await get(client, call(name, abi_call))
    assert status == 400
    assert body == {"error": "unsupported_record", "message": "unsupported record function 0x2203ab56"}


async def test_garbled_calldata_and_dns_name_are_400(client: TestClient) -> None:
    status, body = await get(client, ccip.RESOLVE_SELECTOR + b"\x00" * 10)
    assert status == 400 and body["error"] == "invalid_calldata"
    bad_dns = b"\x05alice\x03eth"  # no terminating zero byte
    status, body = await get(client, ccip.encode_resolve_call(bad_dns, ccip.encode_text_call(b"\x00" * 32, "k")))
    assert status == 400 and body["error"] == "invalid_dns_name"


async def test_unknown_path_and_method_are_json_errors(client: TestClient) -> None:
    response = await client.get("/a/b/c")
    assert response.status == 404 and (await response.json())["error"] == "not_found"
    response = await client.put("/")
    assert response.status == 405 and (await response.json())["error"] == "method_not_allowed"


# -- failures of the record source -----------------------------------------------------------------


async def test_backend_down_is_503_so_clients_try_the_next_url(aiohttp_client: Any) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = await aiohttp_client(create_app(settings(backend_url=f"http://127.0.0.1:{port}")))
    status, body = await get(client, text_call("alice.user.ensign.eth", "email"))
    assert status == 503
    assert body == {"error": "unavailable", "message": "the profile backend cannot be reached"}


class ExplodingSource:
    async def records(self, name: str) -> NameRecords | None:
        raise RuntimeError("connection string redis://:hunter2@db/0 rejected")

    async def close(self) -> None:
        return None


async def test_unexpected_failure_is_a_generic_500_without_internals(aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_app(settings(), records=ExplodingSource()))
    status, body = await get(client, text_call("alice.user.ensign.eth", "email"))
    assert status == 500
    assert body == {"error": "internal", "message": "internal server error"}


# -- CORS and health ------------------------------------------------------------------------------


async def test_every_answer_allows_any_origin(client: TestClient) -> None:
    call_data = text_call("alice.user.ensign.eth", "email")
    for response in (
        await client.get(f"/{RESOLVER}/0x{call_data.hex()}.json"),
        await client.get(f"/{RESOLVER}/0x{call_data.hex()}.json", headers={"Origin": "https://app.dm3.chat"}),
        await client.get("/0x12/0x.json"),
        await client.get("/health"),
    ):
        assert response.headers["Access-Control-Allow-Origin"] == "*"


async def test_preflight_is_answered(client: TestClient) -> None:
    response = await client.options(
        "/",
        headers={
            "Origin": "https://app.dm3.chat",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "Content-Type" in response.headers["Access-Control-Allow-Headers"]


async def test_health_names_the_signer_and_format(dm3_client: TestClient) -> None:
    response = await dm3_client.get("/health")
    assert response.status == 200
    assert await response.json() == {"status": "ok", "signer": SIGNER.address, "format": "dm3"}


# -- ENSIP-21 batch gateway -------------------------------------------------------------------------


@pytest.fixture
async def batch_client(aiohttp_client: Any) -> TestClient:
    return await aiohttp_client(
        create_app(settings(), records=InMemoryRecordSource([ALICE]), batch_gateway=True), server_kwargs={"host": "127.0.0.1"}
    )


def batch_query(client: TestClient, call_data: bytes, *templates: str) -> bytes:
    base = f"http://127.0.0.1:{client.server.port}"
    urls = tuple(t.replace("{base}", base) for t in templates)
    return ccip.encode_batch_query([ccip.BatchRequest(sender=RESOLVER, urls=urls, data=call_data)])


async def post_batch(client: TestClient, query: bytes) -> tuple[list[bool], list[bytes]]:
    ur = "0xeEeEEEeE14D718C2B47D9923Deab1335E144EeEe"
    response = await client.post("/", json={"sender": ur, "data": "0x" + query.hex()})
    assert response.status == 200, await response.text()
    return ccip.decode_batch_response(bytes.fromhex((await response.json())["data"][2:]))


async def test_batch_query_fetches_the_inner_request_with_the_resolver_as_sender(batch_client: TestClient) -> None:
    call_data = text_call("alice.user.ensign.eth", "email")
    failures, responses = await post_batch(batch_client, batch_query(batch_client, call_data, "{base}/{sender}/{data}.json"))
    assert failures == [False]
    signed = ccip.decode_response(responses[0])
    assert abi_decode(["string"], signed.result) == ("alice@example.com",)
    assert ccip.recover_signer(RESOLVER, signed.expires, call_data, signed.result, signed.signature) == SIGNER.address


async def test_batch_query_posts_when_the_template_has_no_data_and_moves_past_dead_urls(batch_client: TestClient) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/{{sender}}/{{data}}.json"
    call_data = text_call("alice.user.ensign.eth", "email")
    failures, responses = await post_batch(batch_client, batch_query(batch_client, call_data, dead, "{base}/"))
    assert failures == [False]
    assert abi_decode(["string"], ccip.decode_response(responses[0]).result) == ("alice@example.com",)


async def test_batch_query_reports_a_4xx_as_http_error(batch_client: TestClient) -> None:
    record_call = ccip.encode_text_call(ccip.namehash("bob.user.ensign.eth"), "email")
    call_data = call("alice.user.ensign.eth", record_call)
    failures, responses = await post_batch(batch_client, batch_query(batch_client, call_data, "{base}/{sender}/{data}.json"))
    assert failures == [True]
    assert responses[0] == ccip.encode_http_error(400, "name does not match namehash")


async def test_batch_query_refuses_nested_batches(batch_client: TestClient) -> None:
    inner = batch_query(batch_client, text_call("alice.user.ensign.eth", "email"), "{base}/")
    failures, responses = await post_batch(batch_client, batch_query(batch_client, inner, "{base}/"))
    assert failures == [True]
    assert responses[0] == ccip.encode_error("nested batch queries are not allowed")
