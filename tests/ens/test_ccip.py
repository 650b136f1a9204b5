"""ensign.ens.ccip: DNS names, calldata, results, signatures and the batch-gateway ABI.

The worked example follows EIP-3668 and ENS's OffchainResolver: resolver
0x5FbDB2315678afecb367f032d93F642f64180aa3, name alice.dm3.eth, key "email", value
"alice@example.com", expires 1700000000, signed with the standard test key 0xac09…ff80.
"""

from __future__ import annotations

import pytest
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_utils import keccak

from ens.exceptions import ENSException
from ens.utils import dns_encode_name, normal_name_to_hash, normalize_name, raw_name_to_hash
from ensign.errors import InvalidRequest
from ensign.ens import ccip

RESOLVER = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
TEST_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
TEST_SIGNER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
EXPIRES = 1700000000


def example_call_data() -> bytes:
    node = ccip.namehash("alice.dm3.eth")
    return ccip.encode_resolve_call(ccip.dns_encode("alice.dm3.eth"), ccip.encode_text_call(node, "email"))


def example_result() -> bytes:
    query = ccip.decode_resolve_request(example_call_data()).query
    return ccip.encode_result(query, "alice@example.com")


def assert_invalid(code: str, fn, *args, **kwargs) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        fn(*args, **kwargs)
    assert info.value.code == code, info.value.message
    assert info.value.status == 400
    return info.value


# -- the worked example ---------------------------------------------------------------------------


def test_selectors_match_the_reference():
    assert ccip.RESOLVE_SELECTOR.hex() == "9061b923"
    assert ccip.RESOLVE_WITH_CONTEXT_SELECTOR.hex() == "f8c30f63"
    assert ccip.RESOLVE_WITH_PROOF_SELECTOR.hex() == "f4d4d2f8"
    assert ccip.ADDR_SELECTOR.hex() == "3b3b57de"
    assert ccip.ADDR_COIN_SELECTOR.hex() == "f1cb7e06"
    assert ccip.TEXT_SELECTOR.hex() == "59d1d43c"
    assert ccip.CONTENTHASH_SELECTOR.hex() == "bc1c58d1"
    assert ccip.OFFCHAIN_LOOKUP_SELECTOR.hex() == "556f1830"
    assert ccip.BATCH_QUERY_SELECTOR.hex() == "a780bab6"
    assert ccip.HTTP_ERROR_SELECTOR.hex() == "01800152"


def test_dns_encoding_of_the_example_name():
    assert ccip.dns_encode("alice.dm3.eth").hex() == "05616c69636503646d3303657468" + "00"


def test_namehash_of_the_example_name():
    assert ccip.namehash("alice.dm3.eth").hex() == "e723057cfcea4caa8bb047bcedeadd72c3fe5658652300180c62686bccb3c192"


def test_example_call_data_layout():
    call_data = example_call_data()
    assert len(call_data) == 324
    words = [call_data[4 + 32 * i : 4 + 32 * (i + 1)].hex() for i in range(5)]
    assert call_data[:4].hex() == "9061b923"
    assert words[0] == "00" * 31 + "40"
    assert words[1] == "00" * 31 + "80"
    assert words[2] == "00" * 31 + "0f"
    assert words[3] == "05616c69636503646d3303657468" + "00" * 18
    assert words[4] == "00" * 31 + "84"
    assert call_data[4 + 160 : 4 + 168].hex() == "59d1d43ce723057c"
    assert keccak(call_data).hex().startswith("37e94071")
    assert keccak(call_data).hex().endswith("8d52ec")


def test_example_extra_data_is_call_data_and_resolver():
    call_data = example_call_data()
    extra = ccip.extra_data_for(call_data, RESOLVER)
    assert len(extra) == 448
    assert abi_decode(["bytes", "address"], extra) == (call_data, RESOLVER.lower())


def test_example_signature_hash_and_preimage():
    call_data, result = example_call_data(), example_result()
    assert keccak(result).hex().startswith("a6ae6aba") and keccak(result).hex().endswith("809dc3")
    digest = ccip.signature_hash(RESOLVER, EXPIRES, call_data, result)
    preimage = bytes.fromhex("1900") + bytes.fromhex(RESOLVER[2:]) + bytes.fromhex("000000006553f100")
    preimage += keccak(call_data) + keccak(result)
    assert len(preimage) == 94
    assert digest == keccak(preimage)
    assert digest.hex().startswith("e8312c76") and digest.hex().endswith("7f65")


def test_example_signature_is_the_reference_compact_signature():
    digest = ccip.signature_hash(RESOLVER, EXPIRES, example_call_data(), example_result())
    signature = ccip.sign_digest(TEST_KEY, digest)
    assert len(signature) == 64
    assert signature[:32].hex().startswith("ee38c089") and signature[:32].hex().endswith("5e7a")
    assert signature[32:].hex().startswith("5f0958d0") and signature[32:].hex().endswith("938b")


def test_example_response_layout():
    response = ccip.build_response(
        TEST_KEY, sender=RESOLVER, call_data=example_call_data(), result=example_result(), expires=EXPIRES
    )
    word = lambda i: response[32 * i : 32 * (i + 1)].hex()  # noqa: E731
    assert word(0) == "00" * 31 + "60"
    assert word(1).endswith("6553f100")
    assert word(2) == "00" * 31 + "e0"
    assert word(3) == "00" * 31 + "60"  # len(result) = 96
    assert response[128:224] == abi_encode(["string"], ["alice@example.com"])
    assert word(7) == "00" * 31 + "40"  # len(sig) = 64
    decoded = ccip.decode_response(response)
    assert decoded.result == example_result()
    assert decoded.expires == EXPIRES
    assert ccip.recover_signer(RESOLVER, EXPIRES, example_call_data(), decoded.result, decoded.signature) == TEST_SIGNER


def test_build_response_counts_ttl_from_now():
    response = ccip.build_response(
        TEST_KEY, sender=RESOLVER, call_data=example_call_data(), result=example_result(), ttl=300, now=1_000.9
    )
    assert ccip.decode_response(response).expires == 1300


# -- DNS names ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["eth", "alice.dm3.eth", "0x2b5ad5c4795c026514f8317c7a215e218dccd6cf.addr.ensign.eth", "ñandú.eth", "💩.eth"])
def test_dns_encode_matches_web3_and_round_trips(name):
    encoded = ccip.dns_encode(name)
    assert encoded == bytes(dns_encode_name(name))
    assert ccip.dns_decode(encoded) == name


def test_root_name_is_a_single_zero_byte():
    assert ccip.dns_encode("") == b"\x00"
    assert ccip.dns_decode(b"\x00") == ""


@pytest.mark.parametrize(
    "wire",
    [
        b"",  # nothing at all
        b"\x03eth",  # no terminating zero
        b"\x05eth\x00",  # label runs past the end
        b"\x03eth\x00\x00",  # bytes after the terminator
        b"\x02\xff\xfe\x00",  # not UTF-8
        b"\x03a.b\x00",  # a dot inside a label would change the name
        b"\x3f" + b"a" * 63 + b"\x3f" + b"b" * 63 + b"\x3f" + b"c" * 63 + b"\x3f" + b"d" * 63 + b"\x00",  # 257 bytes
    ],
)
def test_dns_decode_rejects_malformed_names(wire):
    assert_invalid("invalid_dns_name", ccip.dns_decode, wire)


def test_dns_encode_rejects_empty_labels_and_overlong_names():
    assert_invalid("invalid_dns_name", ccip.dns_encode, "alice..eth")
    assert_invalid("invalid_dns_name", ccip.dns_encode, ".".join(["a" * 60] * 5))


def test_namehash_agrees_with_web3_including_normalisation():
    for name in ("eth", "Alice.DM3.eth", "ñandú.eth"):
        assert ccip.namehash(name) == bytes(raw_name_to_hash(name))
    assert ccip.namehash("") == b"\x00" * 32
    assert_invalid("invalid_name", ccip.namehash, "a b.eth")


# Plain, mixed-case, unicode (folded, compatibility-mapped), emoji (incl. a ZWJ sequence), and the
# deep labels that only an ENSIP-10 wildcard resolver answers: dm3 address names, "_" labels.
WEB3_PARITY_NAMES = [
    "alice.user.ensign.eth",
    "Alice.DM3.eth",
    "Ñandú.ETH",
    "日本語.eth",
    "ﬁ.eth",
    "Ⅻ.eth",
    "🚀.eth",
    "👨\u200d👩\u200d👧.eth",
    "0x71C7656EC7ab88b098defB751B7401B5f6d8976F.addr.dm3.eth",
    "_dm3.deep.sub.alice.user.ensign.eth",
    "eth",
    "",
]


@pytest.mark.parametrize("name", WEB3_PARITY_NAMES)
def test_namehash_equals_web3_normal_name_to_hash(name):
    # The fast path (cached normalisation + one keccak per label) must stay byte-identical to web3.
    normal = normalize_name(name)
    expected = bytes(normal_name_to_hash(normal))
    assert ccip.namehash(name) == expected
    assert ccip.namehash(name) == expected  # again, now from the normalisation cache
    assert ccip.normal_namehash(normal) == expected


@pytest.mark.parametrize("name", ["*.user.ensign.eth", "a b.eth", "xn--ls8h.eth", "αβγ.eth"])
def test_names_web3_rejects_are_invalid_every_time(name):
    with pytest.raises(ENSException):
        normalize_name(name)
    # Failures are not cached: the second call fails the same way.
    assert_invalid("invalid_name", ccip.namehash, name)
    assert_invalid("invalid_name", ccip.namehash, name)


def test_unicode_and_emoji_requests_decode_with_their_namehash():
    for name in ("ñandú.eth", "🚀.user.ensign.eth", "0x71c7656ec7ab88b098defb751b7401b5f6d8976f.addr.dm3.eth"):
        node = bytes(raw_name_to_hash(name))
        request = ccip.decode_resolve_request(
            ccip.encode_resolve_call(ccip.dns_encode(name), ccip.encode_text_call(node, "email"))
        )
        assert (request.query.name, request.query.node) == (name, node)


# -- decoding requests ----------------------------------------------------------------------------


def test_decode_text_request():
    request = ccip.decode_resolve_request(example_call_data())
    assert request.query == ccip.RecordQuery(
        name="alice.dm3.eth", node=ccip.namehash("alice.dm3.eth"), kind=ccip.RecordKind.TEXT, key="email"
    )
    assert request.call_data == example_call_data()
    assert request.context is None
    assert request.variant_hint is ccip.CcipVariant.ENSDOMAINS


@pytest.mark.parametrize(
    ("record_call", "kind", "coin_type"),
    [
        (lambda node: ccip.encode_addr_call(node), ccip.RecordKind.ADDR, None),
        (lambda node: ccip.encode_addr_call(node, 0), ccip.RecordKind.ADDR, 0),
        (lambda node: ccip.encode_addr_call(node, 60), ccip.RecordKind.ADDR, 60),
        (lambda node: ccip.encode_contenthash_call(node), ccip.RecordKind.CONTENTHASH, None),
    ],
)
def test_decode_addr_and_contenthash_requests(record_call, kind, coin_type):
    name = "bob.user.ensign.eth"
    node = ccip.namehash(name)
    request = ccip.decode_resolve_request(ccip.encode_resolve_call(ccip.dns_encode(name), record_call(node)))
    assert request.query.kind is kind
    assert request.query.coin_type == coin_type
    assert request.query.name == name
    assert request.query.node == node


def test_decode_dm3_resolve_with_context():
    name = "bob.user.ensign.eth"
    owner = bytes.fromhex("2b5ad5c4795c026514f8317c7a215e218dccd6cf")
    call_data = ccip.encode_resolve_call(ccip.dns_encode(name), ccip.encode_addr_call(ccip.namehash(name)), owner)
    assert call_data[:4] == ccip.RESOLVE_WITH_CONTEXT_SELECTOR
    request = ccip.decode_resolve_request(call_data)
    assert request.context == owner
    assert request.variant_hint is ccip.CcipVariant.DM3
    assert request.query.kind is ccip.RecordKind.ADDR


def test_namehash_mismatch_is_refused():
    call_data = ccip.encode_resolve_call(
        ccip.dns_encode("alice.dm3.eth"), ccip.encode_text_call(ccip.namehash("mallory.dm3.eth"), "email")
    )
    assert_invalid("namehash_mismatch", ccip.decode_resolve_request, call_data)


def test_unnormalised_name_is_refused():
    name = "Alice.dm3.eth"
    call_data = ccip.encode_resolve_call(
        b"\x05Alice\x03dm3\x03eth\x00", ccip.encode_text_call(ccip.namehash(name), "email")
    )
    assert_invalid("name_not_normalized", ccip.decode_resolve_request, call_data)


def test_unknown_outer_selector_is_refused():
    assert_invalid("unsupported_selector", ccip.decode_resolve_request, bytes.fromhex("deadbeef") + b"\x00" * 64)


def test_unsupported_record_function_is_refused():
    node = ccip.namehash("alice.dm3.eth")
    name_call = keccak(text="name(bytes32)")[:4] + node
    call_data = ccip.encode_resolve_call(ccip.dns_encode("alice.dm3.eth"), name_call)
    assert_invalid("unsupported_record", ccip.decode_resolve_request, call_data)


@pytest.mark.parametrize(
    "call_data",
    [
        b"",
        ccip.RESOLVE_SELECTOR[:3],
        ccip.RESOLVE_SELECTOR + b"\x00" * 10,  # truncated ABI
        ccip.RESOLVE_SELECTOR + abi_encode(["bytes", "bytes"], [b"\x03eth\x00", b"\x01\x02"]),  # record call < 4 bytes
        ccip.RESOLVE_SELECTOR + abi_encode(["bytes", "bytes"], [b"\x03eth\x00", ccip.TEXT_SELECTOR + b"\x00" * 5]),
    ],
)
def test_malformed_calldata_is_refused(call_data):
    assert_invalid("invalid_calldata", ccip.decode_resolve_request, call_data)


# -- results --------------------------------------------------------------------------------------


def query(kind: ccip.RecordKind, **kwargs) -> ccip.RecordQuery:
    return ccip.RecordQuery(name="x.eth", node=ccip.namehash("x.eth"), kind=kind, **kwargs)


def test_text_result_is_abi_string():
    assert ccip.encode_result(query(ccip.RecordKind.TEXT, key="k"), "hi") == abi_encode(["string"], ["hi"])
    assert ccip.encode_result(query(ccip.RecordKind.TEXT, key="k"), None) == abi_encode(["string"], [""])


def test_addr_result_per_variant():
    address = "0x2B5AD5c4795c026514f8317c7a215E218DcCD6cF"
    raw = bytes.fromhex(address[2:])
    addr_query = query(ccip.RecordKind.ADDR)
    assert ccip.encode_result(addr_query, address) == b"\x00" * 12 + raw
    assert ccip.encode_result(addr_query, address, ccip.CcipVariant.DM3) == raw
    assert ccip.encode_result(addr_query, None) == b"\x00" * 32
    assert_invalid("invalid_address", ccip.encode_result, addr_query, "0x1234")


def test_addr_with_coin_type_and_contenthash_results_are_abi_bytes():
    address = "0x2B5AD5c4795c026514f8317c7a215E218DcCD6cF"
    coin_query = query(ccip.RecordKind.ADDR, coin_type=60)
    assert ccip.encode_result(coin_query, address) == abi_encode(["bytes"], [bytes.fromhex(address[2:])])
    assert ccip.encode_result(query(ccip.RecordKind.ADDR, coin_type=0), b"\x00\x14abc") == abi_encode(["bytes"], [b"\x00\x14abc"])
    assert ccip.encode_result(coin_query, None) == abi_encode(["bytes"], [b""])
    content = bytes.fromhex("e3010170122029f2d17be6139079dc48696d1f582a8530eb9805b561eda517e22a892c7e3f1f")
    assert ccip.encode_result(query(ccip.RecordKind.CONTENTHASH), content) == abi_encode(["bytes"], [content])


# -- signatures -----------------------------------------------------------------------------------


def test_ensdomains_signature_is_over_the_raw_digest():
    account = Account.create()
    digest = ccip.signature_hash(RESOLVER, EXPIRES, b"request", b"result")
    full = ccip.sign_digest(account, digest, compact=False)
    assert len(full) == 65
    assert Account._recover_hash(digest, signature=full) == account.address
    assert ccip.compact_signature(full) == ccip.sign_digest(account, digest)
    assert ccip.expanded_signature(ccip.compact_signature(full)) == full


def test_dm3_signature_is_eip191_prefixed_and_65_bytes():
    account = Account.create()
    digest = ccip.signature_hash(RESOLVER, EXPIRES, b"request", b"result")
    signature = ccip.sign_digest(account, digest, ccip.CcipVariant.DM3)
    assert len(signature) == 65
    prefixed = keccak(b"\x19Ethereum Signed Message:\n32" + digest)
    assert Account._recover_hash(prefixed, signature=signature) == account.address
    assert Account._recover_hash(digest, signature=signature) != account.address
    recovered = ccip.recover_signer(RESOLVER, EXPIRES, b"request", b"result", signature, ccip.CcipVariant.DM3)
    assert recovered == account.address
    assert ccip.recover_signer(RESOLVER, EXPIRES, b"request", b"result", signature) != account.address


def test_recover_signer_refuses_high_s_and_bad_lengths():
    digest = ccip.signature_hash(RESOLVER, EXPIRES, b"q", b"r")
    full = ccip.sign_digest(TEST_KEY, digest, compact=False)
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    high_s = full[:32] + (n - int.from_bytes(full[32:64], "big")).to_bytes(32, "big") + bytes([55 - full[64]])
    assert_invalid("invalid_response", ccip.recover_signer, RESOLVER, EXPIRES, b"q", b"r", high_s)
    assert_invalid("invalid_response", ccip.recover_signer, RESOLVER, EXPIRES, b"q", b"r", full[:63])


def test_signature_hash_binds_every_field():
    base = ccip.signature_hash(RESOLVER, EXPIRES, b"q", b"r")
    assert ccip.signature_hash(TEST_SIGNER, EXPIRES, b"q", b"r") != base
    assert ccip.signature_hash(RESOLVER, EXPIRES + 1, b"q", b"r") != base
    assert ccip.signature_hash(RESOLVER, EXPIRES, b"q2", b"r") != base
    assert ccip.signature_hash(RESOLVER, EXPIRES, b"q", b"r2") != base
    assert_invalid("invalid_response", ccip.signature_hash, RESOLVER, 2**64, b"q", b"r")


# -- OffchainLookup, batch gateway, HTTP ------------------------------------------------------------


def test_offchain_lookup_round_trip():
    lookup = ccip.OffchainLookup(
        sender=RESOLVER,
        urls=("https://gw.example/{sender}/{data}.json",),
        call_data=example_call_data(),
        callback=ccip.RESOLVE_WITH_PROOF_SELECTOR,
        extra_data=ccip.extra_data_for(example_call_data(), RESOLVER),
    )
    encoded = ccip.encode_offchain_lookup(lookup)
    assert encoded[:4].hex() == "556f1830"
    assert ccip.decode_offchain_lookup(encoded) == lookup
    assert_invalid("invalid_calldata", ccip.decode_offchain_lookup, b"\x08\xc3\x79\xa0" + encoded[4:])


def test_batch_query_round_trip():
    requests = [
        ccip.BatchRequest(sender=RESOLVER, urls=("https://a/{sender}/{data}.json", "https://b/"), data=example_call_data()),
        ccip.BatchRequest(sender=TEST_SIGNER, urls=(), data=b""),
    ]
    call_data = ccip.encode_batch_query(requests)
    assert ccip.is_batch_query(call_data)
    assert not ccip.is_batch_query(example_call_data())
    assert ccip.decode_batch_query(call_data) == requests
    assert_invalid("unsupported_selector", ccip.decode_batch_query, example_call_data())


def test_batch_response_and_errors():
    http_error = ccip.encode_http_error(404, "not found")
    assert http_error[:4].hex() == "01800152"
    assert abi_decode(["uint16", "string"], http_error[4:]) == (404, "not found")
    assert ccip.encode_error("boom")[:4].hex() == "08c379a0"
    data = ccip.encode_batch_response([False, True], [b"answer", http_error])
    assert abi_decode(["bool[]", "bytes[]"], data) == ((False, True), (b"answer", http_error))
    assert ccip.decode_batch_response(data) == ([False, True], [b"answer", http_error])
    with pytest.raises(ValueError):
        ccip.encode_batch_response([False], [])


def test_multicall_encoding_and_its_answer():
    node = ccip.namehash("alice.dm3.eth")
    calls = [ccip.encode_text_call(node, "network.dm3.profile"), ccip.encode_addr_call(node)]
    call_data = ccip.encode_multicall(calls)
    assert call_data[:4].hex() == "ac9650d8"  # multicall(bytes[])
    assert abi_decode(["bytes[]"], call_data[4:]) == (tuple(calls),)
    text = abi_encode(["string"], ["profile"])
    http_error = ccip.encode_http_error(503, "down")
    entries = ccip.decode_multicall_results(abi_encode(["bytes[]"], [[text, http_error, b""]]))
    assert entries == [text, http_error, b""]
    # Values are whole ABI words (empty: no answer); error data is a selector before its words.
    assert [ccip.is_error_entry(e) for e in entries] == [False, True, False]
    assert ccip.is_error_entry(ccip.encode_error("refused"))
    assert_invalid("invalid_response", ccip.decode_multicall_results, b"\x01\x02")


def test_gateway_call_uses_get_for_data_templates_and_post_otherwise():
    data = bytes.fromhex("9061b923ABCD")
    get = ccip.gateway_call("https://gw.example/{sender}/{data}.json", RESOLVER, data)
    assert get.method == "GET"
    assert get.url == f"https://gw.example/{RESOLVER.lower()}/0x9061b923abcd.json"
    assert get.body is None
    post = ccip.gateway_call("https://gw.example/lookup", RESOLVER, data)
    assert post == ccip.GatewayCall(
        method="POST", url="https://gw.example/lookup", body={"data": "0x9061b923abcd", "sender": RESOLVER.lower()}
    )


@pytest.mark.parametrize("value", [None, 12, "abcd", "0xabc", "0xzz"])
def test_decode_hex_names_the_field(value):
    error = assert_invalid("invalid_hex", ccip.decode_hex, value, "callData")
    assert "callData" in error.message
    assert ccip.decode_hex("0xABcd", "x") == b"\xab\xcd"
