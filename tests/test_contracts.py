"""Our Vyper contracts: committed artifacts match the sources; behaviour on the embedded chain.

- ENSRegistry: the ENS registry interface and events.
- OffchainResolver: the ensdomains/offchain-resolver lookup and proof check, against answers
  signed by ensign.ens.ccip (64- and 65-byte signatures, expiry, unknown signers, tampering).
- UniversalResolver: findResolver, requireResolver, resolve/resolveWithGateways with the ENSIP-21
  wrapping of offchain lookups and resolveCallback, multicall(bytes[]) record calls as one batch query, reverse/reverseWithGateways (ENSIP-19 names,
  forward check), ENS's errors.
- ReverseRegistrar: owns addr.reverse; setName, setNameForAddr, node, name.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_utils import keccak, to_checksum_address
from web3.exceptions import ContractLogicError, OffchainLookup
from web3.logs import DISCARD

from stack.contracts import ARTIFACTS_PATH, CONTRACT_NAMES, artifact, build
from stack.devchain import UNIVERSAL_RESOLVER_ADDRESS, DevChain
from ensign.ens import ccip

pytestmark = pytest.mark.asyncio(loop_scope="module")

GATEWAY = "https://gateway.example/{sender}/{data}.json"
BATCH_GATEWAY = "https://batch.example/{sender}/{data}.json"
SIGNER = Account.from_key("0x" + "5e" * 32)
OTHER_KEY = Account.from_key("0x" + "7a" * 32)
ZERO = "0x0000000000000000000000000000000000000000"
ROOT = b"\x00" * 32


# -- artifacts --------------------------------------------------------------------------------------


async def test_committed_artifacts_match_a_fresh_compile():
    assert build.render(build.build_artifacts()) == ARTIFACTS_PATH.read_text(encoding="utf-8")


async def test_artifacts_record_compiler_and_every_contract():
    document = json.loads(ARTIFACTS_PATH.read_text(encoding="utf-8"))
    assert document["vyper_version"] == "0.4.3"
    assert sorted(document["contracts"]) == sorted(CONTRACT_NAMES)
    for name in CONTRACT_NAMES:
        compiled = artifact(name)
        assert len(compiled.runtime) > 0 and len(compiled.bytecode) > len(compiled.runtime)
    # The dev chain writes genesis storage by these slots.
    assert artifact("ENSRegistry").slot("records") == 0
    assert artifact("UniversalResolver").slot("owner") == 0


# -- fixtures ---------------------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def chain() -> AsyncIterator[DevChain]:
    async with DevChain(
        gateway_url=GATEWAY,
        signers=[SIGNER.address],
        offchain_names=["user.ensign.eth"],
        batch_gateway_urls=[BATCH_GATEWAY],
    ) as dev_chain:
        yield dev_chain


@pytest_asyncio.fixture(autouse=True, loop_scope="module")
async def isolated(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    if "chain" not in request.fixturenames:
        yield
        return
    dev_chain: DevChain = request.getfixturevalue("chain")
    snapshot = dev_chain.snapshot()
    yield
    dev_chain.revert(snapshot)


def resolve_call(name: str, record_call: bytes) -> tuple[bytes, bytes]:
    return ccip.dns_encode(name), record_call


def text_call(name: str, key: str) -> bytes:
    return ccip.encode_text_call(ccip.namehash(name), key)


async def lookup_of(contract, name: str, record_call: bytes) -> dict:
    with pytest.raises(OffchainLookup) as info:
        await contract.functions.resolve(ccip.dns_encode(name), record_call).call(ccip_read_enabled=False)
    return info.value.payload


async def revert_message(call) -> str:
    with pytest.raises(ContractLogicError) as info:
        await call
    return str(info.value.message)


# -- ENSRegistry ------------------------------------------------------------------------------------


async def test_registry_constructor_gives_the_root_to_the_deployer(chain):
    compiled = artifact("ENSRegistry")
    factory = chain.w3.eth.contract(abi=compiled.abi, bytecode=compiled.bytecode)
    receipt = await chain.w3.eth.wait_for_transaction_receipt(
        await factory.constructor().transact({"from": chain.accounts[3]})
    )
    registry = chain.w3.eth.contract(address=receipt["contractAddress"], abi=compiled.abi)
    assert await registry.functions.owner(ROOT).call() == chain.accounts[3]
    assert await registry.functions.recordExists(ROOT).call() is True


async def test_set_subnode_owner_creates_the_child_and_emits_new_owner(chain):
    registry = chain.registry
    label = keccak(text="eth")
    node = keccak(ROOT + label)
    assert await registry.functions.setSubnodeOwner(ROOT, label, chain.accounts[1]).call() == node
    tx = await registry.functions.setSubnodeOwner(ROOT, label, chain.accounts[1]).transact()
    receipt = await chain.w3.eth.wait_for_transaction_receipt(tx)
    (event,) = registry.events.NewOwner().process_receipt(receipt, errors=DISCARD)
    assert (event.args.node, event.args.label, event.args.owner) == (ROOT, label, chain.accounts[1])
    assert await registry.functions.owner(node).call() == chain.accounts[1]
    assert await registry.functions.recordExists(node).call() is True
    assert await registry.functions.recordExists(keccak(ROOT + keccak(text="xyz"))).call() is False


async def test_only_the_owner_or_an_operator_may_change_a_node(chain):
    registry = chain.registry
    owner, operator, stranger = chain.accounts[1], chain.accounts[2], chain.accounts[3]
    label = keccak(text="test")
    node = keccak(ROOT + label)
    await registry.functions.setSubnodeOwner(ROOT, label, owner).transact()
    message = await revert_message(registry.functions.setResolver(node, stranger).call({"from": stranger}))
    assert "not authorised" in message
    assert await registry.functions.isApprovedForAll(owner, operator).call() is False

    tx = await registry.functions.setApprovalForAll(operator, True).transact({"from": owner})
    (event,) = registry.events.ApprovalForAll().process_receipt(await chain.w3.eth.wait_for_transaction_receipt(tx), errors=DISCARD)
    assert (event.args.owner, event.args.operator, event.args.approved) == (owner, operator, True)
    assert await registry.functions.isApprovedForAll(owner, operator).call() is True
    await registry.functions.setResolver(node, stranger).transact({"from": operator})
    assert await registry.functions.resolver(node).call() == stranger


async def test_set_owner_resolver_and_ttl_emit_their_events(chain):
    registry = chain.registry
    label = keccak(text="records")
    node = keccak(ROOT + label)
    await registry.functions.setSubnodeOwner(ROOT, label, chain.deployer).transact()

    receipt = await chain.w3.eth.wait_for_transaction_receipt(await registry.functions.setResolver(node, chain.accounts[4]).transact())
    assert registry.events.NewResolver().process_receipt(receipt, errors=DISCARD)[0].args.resolver == chain.accounts[4]
    receipt = await chain.w3.eth.wait_for_transaction_receipt(await registry.functions.setTTL(node, 3600).transact())
    assert registry.events.NewTTL().process_receipt(receipt, errors=DISCARD)[0].args.ttl == 3600
    assert await registry.functions.ttl(node).call() == 3600
    receipt = await chain.w3.eth.wait_for_transaction_receipt(await registry.functions.setOwner(node, chain.accounts[5]).transact())
    assert registry.events.Transfer().process_receipt(receipt, errors=DISCARD)[0].args.owner == chain.accounts[5]
    assert await registry.functions.owner(node).call() == chain.accounts[5]


async def test_set_record_and_set_subnode_record(chain):
    registry = chain.registry
    label = keccak(text="combo")
    node = keccak(ROOT + label)
    receipt = await chain.w3.eth.wait_for_transaction_receipt(
        await registry.functions.setSubnodeRecord(ROOT, label, chain.deployer, chain.accounts[6], 60).transact()
    )
    assert len(registry.events.NewResolver().process_receipt(receipt, errors=DISCARD)) == 1
    assert len(registry.events.NewTTL().process_receipt(receipt, errors=DISCARD)) == 1
    assert await registry.functions.resolver(node).call() == chain.accounts[6]
    assert await registry.functions.ttl(node).call() == 60

    # Unchanged resolver and ttl: no events, as in ENS's registry.
    receipt = await chain.w3.eth.wait_for_transaction_receipt(
        await registry.functions.setRecord(node, chain.accounts[1], chain.accounts[6], 60).transact()
    )
    assert registry.events.NewResolver().process_receipt(receipt, errors=DISCARD) == ()
    assert registry.events.Transfer().process_receipt(receipt, errors=DISCARD)[0].args.owner == chain.accounts[1]


async def test_a_name_owned_by_the_registry_reads_as_unowned(chain):
    registry = chain.registry
    label = keccak(text="burnt")
    await registry.functions.setSubnodeOwner(ROOT, label, registry.address).transact()
    node = keccak(ROOT + label)
    assert await registry.functions.owner(node).call() == ZERO
    assert await registry.functions.recordExists(node).call() is True


# -- OffchainResolver ---------------------------------------------------------------------------------


async def test_resolver_exposes_url_signers_and_interfaces(chain):
    resolver = chain.offchain_resolver
    assert await resolver.functions.url().call() == GATEWAY
    assert await resolver.functions.signers(SIGNER.address).call() is True
    assert await resolver.functions.signers(OTHER_KEY.address).call() is False
    assert await resolver.functions.supportsInterface(bytes.fromhex("9061b923")).call() is True
    assert await resolver.functions.supportsInterface(bytes.fromhex("01ffc9a7")).call() is True
    assert await resolver.functions.supportsInterface(ccip.TEXT_SELECTOR).call() is False
    assert await resolver.functions.supportsInterface(bytes.fromhex("ffffffff")).call() is False


async def test_resolve_reverts_with_the_ensdomains_offchain_lookup(chain):
    resolver = chain.offchain_resolver
    name = "alice.user.ensign.eth"
    payload = await lookup_of(resolver, name, text_call(name, "email"))
    call_data = ccip.encode_resolve_call(ccip.dns_encode(name), text_call(name, "email"))
    assert to_checksum_address(payload["sender"]) == resolver.address
    assert list(payload["urls"]) == [GATEWAY]
    assert bytes(payload["callData"]) == call_data
    assert bytes(payload["callbackFunction"]) == ccip.RESOLVE_WITH_PROOF_SELECTOR
    assert bytes(payload["extraData"]) == ccip.extra_data_for(call_data, resolver.address)


async def test_make_signature_hash_matches_resolver_ccip(chain):
    digest = await chain.offchain_resolver.functions.makeSignatureHash(chain.accounts[1], 1700000000, b"req", b"res").call()
    assert digest == ccip.signature_hash(chain.accounts[1], 1700000000, b"req", b"res")


async def answer_for(chain, name: str, value: str, *, key=SIGNER, expires=None, compact=None, variant=ccip.CcipVariant.ENSDOMAINS):
    resolver = chain.offchain_resolver
    payload = await lookup_of(resolver, name, text_call(name, "email"))
    request = ccip.decode_resolve_request(bytes(payload["callData"]))
    result = ccip.encode_result(request.query, value)
    if expires is None:
        expires = chain.latest_timestamp() + 300
    response = ccip.build_response(
        key, sender=payload["sender"], call_data=request.call_data, result=result, expires=expires, compact=compact, variant=variant
    )
    return response, bytes(payload["extraData"]), result


@pytest.mark.parametrize("compact", [True, False], ids=["64-byte", "65-byte"])
async def test_resolve_with_proof_accepts_a_signed_answer(chain, compact):
    response, extra, result = await answer_for(chain, "alice.user.ensign.eth", "alice@example.com", compact=compact)
    assert len(ccip.decode_response(response).signature) == (64 if compact else 65)
    returned = await chain.offchain_resolver.functions.resolveWithProof(response, extra).call()
    assert returned == result
    assert abi_decode(["string"], returned) == ("alice@example.com",)


async def test_resolve_with_proof_accepts_until_the_expiry_second(chain):
    response, extra, result = await answer_for(chain, "alice.user.ensign.eth", "x", expires=chain.latest_timestamp() + 100)
    chain.advance_time(100)
    assert await chain.offchain_resolver.functions.resolveWithProof(response, extra).call() == result
    chain.advance_time(1)
    message = await revert_message(chain.offchain_resolver.functions.resolveWithProof(response, extra).call())
    assert message == "execution reverted: SignatureVerifier: Signature expired"


async def test_resolve_with_proof_refuses_an_expired_answer(chain):
    response, extra, _ = await answer_for(chain, "alice.user.ensign.eth", "x", expires=chain.latest_timestamp() - 1)
    message = await revert_message(chain.offchain_resolver.functions.resolveWithProof(response, extra).call())
    assert message == "execution reverted: SignatureVerifier: Signature expired"


async def test_resolve_with_proof_refuses_an_unknown_signer(chain):
    response, extra, _ = await answer_for(chain, "alice.user.ensign.eth", "x", key=OTHER_KEY)
    message = await revert_message(chain.offchain_resolver.functions.resolveWithProof(response, extra).call())
    assert message == "execution reverted: SignatureVerifier: Invalid sigature"


async def test_resolve_with_proof_refuses_a_dm3_prefixed_signature(chain):
    # Same key, but the dm3 variant signs the EIP-191-prefixed digest: this verifier recovers someone else.
    response, extra, _ = await answer_for(chain, "alice.user.ensign.eth", "x", variant=ccip.CcipVariant.DM3)
    message = await revert_message(chain.offchain_resolver.functions.resolveWithProof(response, extra).call())
    assert message == "execution reverted: SignatureVerifier: Invalid sigature"


async def test_resolve_with_proof_refuses_a_tampered_result(chain):
    response, extra, _ = await answer_for(chain, "alice.user.ensign.eth", "alice@example.com")
    signed = ccip.decode_response(response)
    forged = ccip.encode_response(abi_encode(["string"], ["mallory@example.com"]), signed.expires, signed.signature)
    message = await revert_message(chain.offchain_resolver.functions.resolveWithProof(forged, extra).call())
    assert message == "execution reverted: SignatureVerifier: Invalid sigature"


async def test_resolve_with_proof_refuses_malleable_and_malformed_signatures(chain):
    response, extra, _ = await answer_for(chain, "alice.user.ensign.eth", "x", compact=False)
    signed = ccip.decode_response(response)
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    sig = signed.signature
    high_s = sig[:32] + (n - int.from_bytes(sig[32:64], "big")).to_bytes(32, "big") + bytes([55 - sig[64]])
    cases = {
        high_s: "ECDSA: invalid signature 's' value",
        sig[:64] + b"\x1d": "ECDSA: invalid signature 'v' value",
        sig[:63]: "ECDSA: invalid signature length",
    }
    for bad, reason in cases.items():
        forged = ccip.encode_response(signed.result, signed.expires, bad)
        message = await revert_message(chain.offchain_resolver.functions.resolveWithProof(forged, extra).call())
        assert message == f"execution reverted: {reason}"


# -- UniversalResolver --------------------------------------------------------------------------------


async def test_find_resolver_walks_up_to_the_wildcard_parent(chain):
    name = "bob.user.ensign.eth"
    resolver, node, offset = await chain.universal_resolver.functions.findResolver(ccip.dns_encode(name)).call()
    assert resolver == chain.offchain_resolver.address
    assert node == ccip.namehash(name)
    assert offset == len(b"\x03bob")
    exact = await chain.universal_resolver.functions.findResolver(ccip.dns_encode("user.ensign.eth")).call()
    assert exact == [chain.offchain_resolver.address, ccip.namehash("user.ensign.eth"), 0] or exact == (
        chain.offchain_resolver.address,
        ccip.namehash("user.ensign.eth"),
        0,
    )


async def test_universal_resolver_reports_names_without_resolver(chain):
    name = ccip.dns_encode("nobody.example")
    with pytest.raises(ContractLogicError) as info:
        await chain.universal_resolver.functions.resolve(name, text_call("nobody.example", "k")).call()
    data = bytes.fromhex(info.value.data[2:])
    assert data[:4] == keccak(text="ResolverNotFound(bytes)")[:4]
    assert abi_decode(["bytes"], data[4:]) == (name,)


async def test_universal_resolver_refuses_malformed_dns_names(chain):
    for wire in (b"\x03eth", b"\x05eth\x00", b"\x03eth\x00\x00"):
        with pytest.raises(ContractLogicError) as info:
            await chain.universal_resolver.functions.findResolver(wire).call()
        data = bytes.fromhex(info.value.data[2:])
        assert data[:4] == keccak(text="DNSDecodingFailed(bytes)")[:4]
        assert abi_decode(["bytes"], data[4:]) == (wire,)


async def test_universal_resolver_wraps_the_lookup_for_the_batch_gateway(chain):
    name = "bob.user.ensign.eth"
    ur = chain.universal_resolver
    payload = await lookup_of(ur, name, text_call(name, "email"))
    assert to_checksum_address(payload["sender"]) == UNIVERSAL_RESOLVER_ADDRESS
    assert list(payload["urls"]) == [BATCH_GATEWAY]
    assert bytes(payload["callbackFunction"]) == keccak(text="resolveCallback(bytes,bytes)")[:4]
    (request,) = ccip.decode_batch_query(bytes(payload["callData"]))
    inner_call = ccip.encode_resolve_call(ccip.dns_encode(name), text_call(name, "email"))
    assert request == ccip.BatchRequest(sender=chain.offchain_resolver.address, urls=(GATEWAY,), data=inner_call)


async def test_resolve_callback_hands_the_signed_answer_to_the_resolver(chain):
    name = "bob.user.ensign.eth"
    ur = chain.universal_resolver
    payload = await lookup_of(ur, name, text_call(name, "email"))
    (request,) = ccip.decode_batch_query(bytes(payload["callData"]))
    query = ccip.decode_resolve_request(request.data).query
    result = ccip.encode_result(query, "bob@example.com")
    answer = ccip.build_response(SIGNER, sender=request.sender, call_data=request.data, result=result)
    batch = ccip.encode_batch_response([False], [answer])
    value, resolver = await ur.functions.resolveCallback(batch, bytes(payload["extraData"])).call()
    assert resolver == chain.offchain_resolver.address
    assert value == result

    failed = ccip.encode_batch_response([True], [ccip.encode_http_error(404, "no such name")])
    with pytest.raises(ContractLogicError) as info:
        await ur.functions.resolveCallback(failed, bytes(payload["extraData"])).call()
    assert info.value.data == "0x" + ccip.encode_http_error(404, "no such name").hex()


async def test_multicall_asks_the_gateway_for_every_record_in_one_batch_query(chain):
    name = "bob.user.ensign.eth"
    node = ccip.namehash(name)
    calls = [text_call(name, "email"), ccip.encode_addr_call(node), text_call(name, "url")]
    ur = chain.universal_resolver
    payload = await lookup_of(ur, name, ccip.encode_multicall(calls))
    assert to_checksum_address(payload["sender"]) == UNIVERSAL_RESOLVER_ADDRESS
    assert list(payload["urls"]) == [BATCH_GATEWAY]
    assert bytes(payload["callbackFunction"]) == keccak(text="resolveMulticallCallback(bytes,bytes)")[:4]
    requests = ccip.decode_batch_query(bytes(payload["callData"]))
    # One request per record call, each the resolver's own lookup, in the order of the calls.
    assert [r.data for r in requests] == [ccip.encode_resolve_call(ccip.dns_encode(name), call) for call in calls]
    assert {(r.sender, r.urls) for r in requests} == {(chain.offchain_resolver.address, (GATEWAY,))}

    values = ["bob@example.com", "0x" + "ab" * 20, None]
    results = [ccip.encode_result(ccip.decode_resolve_request(r.data).query, v) for r, v in zip(requests, values)]
    answers = [ccip.build_response(SIGNER, sender=r.sender, call_data=r.data, result=res) for r, res in zip(requests, results)]
    # The third request failed at the batch gateway: its entry is the gateway's error.
    answers[2] = ccip.encode_http_error(503, "backend down")
    batch = ccip.encode_batch_response([False, False, True], answers)
    value, resolver = await ur.functions.resolveMulticallCallback(batch, bytes(payload["extraData"])).call()
    assert resolver == chain.offchain_resolver.address
    entries = ccip.decode_multicall_results(value)
    assert entries == [results[0], results[1], ccip.encode_http_error(503, "backend down")]
    assert [ccip.is_error_entry(e) for e in entries] == [False, False, True]


async def test_multicall_entry_of_a_forged_answer_is_the_resolvers_error(chain):
    name = "bob.user.ensign.eth"
    calls = [text_call(name, "email"), ccip.encode_addr_call(ccip.namehash(name))]
    ur = chain.universal_resolver
    payload = await lookup_of(ur, name, ccip.encode_multicall(calls))
    requests = ccip.decode_batch_query(bytes(payload["callData"]))
    results = [ccip.encode_result(ccip.decode_resolve_request(r.data).query, v) for r, v in zip(requests, ["x", None])]
    answers = [
        ccip.build_response(SIGNER, sender=requests[0].sender, call_data=requests[0].data, result=results[0]),
        ccip.build_response(OTHER_KEY, sender=requests[1].sender, call_data=requests[1].data, result=results[1]),
    ]
    value, _ = await ur.functions.resolveMulticallCallback(
        ccip.encode_batch_response([False, False], answers), bytes(payload["extraData"])
    ).call()
    first, second = ccip.decode_multicall_results(value)
    assert first == results[0]
    assert second[:4] == keccak(text="Error(string)")[:4] and "Invalid sigature" in abi_decode(["string"], second[4:])[0]
    # A batch answer with fewer responses than offchain calls is refused.
    with pytest.raises(ContractLogicError):
        await ur.functions.resolveMulticallCallback(
            ccip.encode_batch_response([False], answers[:1]), bytes(payload["extraData"])
        ).call()


async def test_multicall_of_plain_resolver_records_answers_without_a_gateway(chain):
    await chain.set_text("plain.ensign.eth", "url", "https://ensign.example")
    node = ccip.namehash("plain.ensign.eth")
    calls = [text_call("plain.ensign.eth", "url"), ccip.encode_addr_call(node)]
    value, resolver = await chain.universal_resolver.functions.resolve(
        ccip.dns_encode("plain.ensign.eth"), ccip.encode_multicall(calls)
    ).call()
    assert resolver == (await chain.public_resolver()).address
    text, address = ccip.decode_multicall_results(value)
    assert abi_decode(["string"], text) == ("https://ensign.example",)
    assert abi_decode(["address"], address) == (ZERO,)


async def test_universal_resolver_reads_plain_resolvers_directly(chain):
    await chain.set_text("plain.ensign.eth", "url", "https://ensign.example")
    ur = chain.universal_resolver
    value, resolver = await ur.functions.resolve(ccip.dns_encode("plain.ensign.eth"), text_call("plain.ensign.eth", "url")).call()
    assert resolver == (await chain.public_resolver()).address
    assert abi_decode(["string"], value) == ("https://ensign.example",)
    # A plain (non-ENSIP-10) resolver on a parent does not answer for its subnames.
    with pytest.raises(ContractLogicError) as info:
        await ur.functions.resolve(ccip.dns_encode("sub.plain.ensign.eth"), text_call("sub.plain.ensign.eth", "url")).call()
    # ENS's UR reports it as not found (an immediate resolver must match the name exactly).
    assert info.value.data[:10] == "0x" + keccak(text="ResolverNotFound(bytes)")[:4].hex()


async def test_only_the_owner_sets_batch_gateway_urls(chain):
    ur = chain.universal_resolver
    assert await ur.functions.owner().call() == chain.deployer
    message = await revert_message(ur.functions.setBatchGatewayURLs(["https://evil.example/"]).call({"from": chain.accounts[1]}))
    assert "not owner" in message
    assert await ur.functions.batchGateways().call() == [BATCH_GATEWAY]


# -- UniversalResolver: ENS's current interface -------------------------------------------------------


def ur_error(info: pytest.ExceptionInfo[ContractLogicError], signature: str, types: list[str]) -> tuple:
    """The arguments of the UR's custom error ``signature`` behind ``info`` (asserting it is that one)."""
    data = bytes.fromhex(str(info.value.data)[2:])
    assert data[:4] == keccak(text=signature)[:4], data[:4].hex()
    return tuple(abi_decode(types, data[4:]))


async def test_resolve_with_gateways_wraps_the_lookup_for_the_callers_gateways(chain):
    name = "bob.user.ensign.eth"
    with pytest.raises(OffchainLookup) as info:
        await chain.universal_resolver.functions.resolveWithGateways(
            ccip.dns_encode(name), text_call(name, "email"), ["x-batch-gateway:true"]
        ).call(ccip_read_enabled=False)
    payload = info.value.payload
    assert to_checksum_address(payload["sender"]) == UNIVERSAL_RESOLVER_ADDRESS
    assert list(payload["urls"]) == ["x-batch-gateway:true"]
    (request,) = ccip.decode_batch_query(bytes(payload["callData"]))
    assert request.sender == chain.offchain_resolver.address and request.urls == (GATEWAY,)
    # The callback answers as resolve does.
    result = ccip.encode_result(ccip.decode_resolve_request(request.data).query, "bob@example.com")
    answer = ccip.build_response(SIGNER, sender=request.sender, call_data=request.data, result=result)
    value, resolver = await chain.universal_resolver.functions.resolveCallback(
        ccip.encode_batch_response([False], [answer]), bytes(payload["extraData"])
    ).call()
    assert (value, resolver) == (result, chain.offchain_resolver.address)


async def test_resolver_errors_are_ens_errors(chain):
    ur = chain.universal_resolver
    # An answer signed by a key the resolver does not trust: ResolverError(the resolver's revert).
    payload = await lookup_of(ur, "bob.user.ensign.eth", text_call("bob.user.ensign.eth", "email"))
    (request,) = ccip.decode_batch_query(bytes(payload["callData"]))
    result = ccip.encode_result(ccip.decode_resolve_request(request.data).query, "forged")
    forged = ccip.build_response(OTHER_KEY, sender=request.sender, call_data=request.data, result=result)
    with pytest.raises(ContractLogicError) as info:
        await ur.functions.resolveCallback(ccip.encode_batch_response([False], [forged]), bytes(payload["extraData"])).call()
    (inner,) = ur_error(info, "ResolverError(bytes)", ["bytes"])
    assert inner[:4] == keccak(text="Error(string)")[:4]
    # A resolver that is not a contract.
    await chain.set_resolver("eoa.ensign.eth", chain.accounts[3])
    with pytest.raises(ContractLogicError) as info:
        await ur.functions.resolve(ccip.dns_encode("eoa.ensign.eth"), text_call("eoa.ensign.eth", "k")).call()
    assert ur_error(info, "ResolverNotContract(bytes,address)", ["bytes", "address"]) == (
        ccip.dns_encode("eoa.ensign.eth"),
        chain.accounts[3].lower(),
    )
    # A call the resolver does not implement reverts in it: ResolverError with the empty revert.
    await chain.set_text("plain.ensign.eth", "url", "https://ensign.example")
    with pytest.raises(ContractLogicError) as info:
        await ur.functions.resolve(ccip.dns_encode("plain.ensign.eth"), keccak(text="nothing(bytes32)")[:4] + ROOT).call()
    assert ur_error(info, "ResolverError(bytes)", ["bytes"]) == (b"",)


async def test_require_resolver_describes_the_resolver(chain):
    name = ccip.dns_encode("bob.user.ensign.eth")
    info = await chain.universal_resolver.functions.requireResolver(name).call()
    assert tuple(info) == (name, len(b"\x03bob"), ccip.namehash("bob.user.ensign.eth"), chain.offchain_resolver.address, True)


async def test_reverse_returns_the_primary_name_checked_forward(chain):
    ur = chain.universal_resolver
    owner, liar, nobody = chain.accounts[1], chain.accounts[2], chain.accounts[3]
    await chain.set_addr("owner.ensign.eth", owner)
    await chain.set_primary_name(owner, "owner.ensign.eth")
    await chain.set_primary_name(liar, "owner.ensign.eth")
    registrar = chain.reverse_registrar.address
    resolver = (await chain.public_resolver()).address
    for call in (ur.functions.reverse(bytes.fromhex(owner[2:]), 60), ur.functions.reverseWithGateways(bytes.fromhex(owner[2:]), 60, [])):
        assert tuple(await call.call()) == ("owner.ensign.eth", resolver, registrar)
    # A claim the name does not confirm.
    with pytest.raises(ContractLogicError) as info:
        await ur.functions.reverse(bytes.fromhex(liar[2:]), 60).call()
    assert ur_error(info, "ReverseAddressMismatch(string,bytes)", ["string", "bytes"]) == (
        "owner.ensign.eth",
        bytes.fromhex(owner[2:]),
    )
    # An address whose reverse node exists but names nothing, and one that never set a name.
    await chain.set_primary_name(owner, "")
    assert tuple(await ur.functions.reverse(bytes.fromhex(owner[2:]), 60).call()) == ("", ZERO, registrar)
    with pytest.raises(ContractLogicError) as info:
        await ur.functions.reverse(bytes.fromhex(nobody[2:]), 60).call()
    (reverse_name,) = ur_error(info, "ResolverNotFound(bytes)", ["bytes"])
    assert reverse_name == ccip.dns_encode(f"{nobody[2:].lower()}.addr.reverse")


async def test_reverse_names_follow_ensip19(chain):
    ur = chain.universal_resolver
    address = bytes.fromhex("00ab" * 10)
    for coin_type, suffix in ((2**31, "default.reverse"), (2**31 | 10, "8000000a.reverse"), (0, "0.reverse")):
        with pytest.raises(ContractLogicError) as info:
            await ur.functions.reverse(address, coin_type).call()
        assert ur_error(info, "ResolverNotFound(bytes)", ["bytes"]) == (ccip.dns_encode(f"{address.hex()}.{suffix}"),)
    with pytest.raises(ContractLogicError) as info:
        await ur.functions.reverse(b"", 60).call()
    assert ur_error(info, "EmptyAddress()", []) == ()


async def test_reverse_registrar_owns_addr_reverse_and_users_set_their_own_name(chain):
    registrar = chain.reverse_registrar
    user, other = chain.accounts[1], chain.accounts[2]
    assert await chain.registry.functions.owner(ccip.namehash("addr.reverse")).call() == registrar.address
    node = ccip.namehash(f"{user[2:].lower()}.addr.reverse")
    assert await registrar.functions.node(user).call() == node
    await registrar.functions.setName("me.ensign.eth").transact({"from": user})
    assert await registrar.functions.name(node).call() == "me.ensign.eth"
    assert await chain.registry.functions.owner(node).call() == user
    assert await chain.registry.functions.resolver(node).call() == registrar.address
    message = await revert_message(registrar.functions.setNameForAddr(user, "x.ensign.eth").call({"from": other}))
    assert "not authorised" in message


async def test_reverse_follows_offchain_lookups_in_both_steps(chain):
    # Both the reverse name and the primary name resolve offchain: the UR asks its batch gateway
    # twice and reverseCallback carries on from each answer.
    ur = chain.universal_resolver
    resolver = chain.offchain_resolver.address
    await chain.set_resolver("default.reverse", resolver)
    address = bytes.fromhex(chain.accounts[1][2:])
    primary = "bob.user.ensign.eth"

    def signed_batch(payload: dict, result: bytes) -> bytes:
        (request,) = ccip.decode_batch_query(bytes(payload["callData"]))
        assert request.sender == resolver
        return ccip.encode_batch_response([False], [ccip.build_response(SIGNER, sender=resolver, call_data=request.data, result=result)])

    def inner_call(payload: dict) -> tuple[str, bytes]:
        (request,) = ccip.decode_batch_query(bytes(payload["callData"]))
        dns_name, record_call = abi_decode(["bytes", "bytes"], request.data[4:])
        return ccip.dns_decode(dns_name), record_call

    with pytest.raises(OffchainLookup) as info:
        await ur.functions.reverse(address, 2**31).call(ccip_read_enabled=False)
    first = info.value.payload
    assert bytes(first["callbackFunction"]) == keccak(text="reverseCallback(bytes,bytes)")[:4]
    reverse_name = f"{address.hex()}.default.reverse"
    assert inner_call(first) == (reverse_name, keccak(text="name(bytes32)")[:4] + ccip.namehash(reverse_name))

    with pytest.raises(OffchainLookup) as info:
        await ur.functions.reverseCallback(signed_batch(first, abi_encode(["string"], [primary])), bytes(first["extraData"])).call(
            ccip_read_enabled=False
        )
    second = info.value.payload
    assert inner_call(second) == (primary, ccip.encode_addr_call(ccip.namehash(primary), 2**31))

    answer = await ur.functions.reverseCallback(signed_batch(second, abi_encode(["bytes"], [address])), bytes(second["extraData"])).call()
    assert tuple(answer) == (primary, resolver, resolver)
    # The same flow with the primary name pointing elsewhere is refused.
    with pytest.raises(ContractLogicError) as mismatch:
        await ur.functions.reverseCallback(signed_batch(second, abi_encode(["bytes"], [b"\x01" * 20])), bytes(second["extraData"])).call()
    assert ur_error(mismatch, "ReverseAddressMismatch(string,bytes)", ["string", "bytes"]) == (primary, b"\x01" * 20)
