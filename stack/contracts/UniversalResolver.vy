# pragma version 0.4.3
# pragma optimize gas
# pragma evm-version cancun
"""
@title Universal Resolver stand-in for local chains
@notice web3.py 8 resolves every ENS read through the Universal Resolver (UR) at
        0xeEeEEEeE14D718C2B47D9923Deab1335E144EeEe: `resolve(bytes name, bytes data)` returns
        `(bytes result, address resolver)` and `findResolver(bytes name)` returns
        `(address resolver, bytes32 node, uint256 offset)`. This contract implements those two
        calls for a dev chain whose registry sits at ENS's canonical address.

        Offchain resolvers: EIP-3668 clients only follow an OffchainLookup whose `sender` is
        the contract they called, so the resolver's lookup cannot be re-raised as is. Like ENS's
        own UR, this one wraps it into an ENSIP-21 batch-gateway request:
        OffchainLookup(this, batchGatewayURLs, query([(resolver, urls, callData)]),
        resolveCallback.selector, abi.encode(resolver, callback, extraData, extended)).
        The batch gateway fetches from the resolver's URLs with the resolver as `sender`, so
        the gateway signs for the resolver and the resolver's own check passes unchanged.
        `resolveCallback` unpacks the batch answer and calls the resolver's callback.

        Not implemented: encoded labelhashes ("[...]" labels), reverse(), multicall.
        Written from ENSIP-10/-21/-23, not ported.
"""

interface ENSRegistry:
    def resolver(node: bytes32) -> address: view

ENS_REGISTRY: constant(address) = 0x00000000000C2E074eC69A0dFb2997BA6C7d2e1e

MAX_NAME: constant(uint256) = 255                # DNS wire format name
MAX_LABELS: constant(uint256) = 128              # a 255-byte name has at most 127 labels
MAX_DATA: constant(uint256) = 1024               # record call, e.g. text(node, key)
MAX_URL: constant(uint256) = 256
MAX_URLS: constant(uint256) = 4
MAX_RESULT: constant(uint256) = 8192             # record value
MAX_OUT: constant(uint256) = MAX_RESULT + 64     # a resolver's return (abi bytes) or revert data
MAX_LOOKUP_CALLDATA: constant(uint256) = 2048    # a resolver's OffchainLookup.callData
MAX_LOOKUP_EXTRA: constant(uint256) = 2048       # a resolver's OffchainLookup.extraData
MAX_GATEWAY_RESPONSE: constant(uint256) = 8448   # one signed gateway answer
MAX_BATCH_RESPONSE: constant(uint256) = MAX_GATEWAY_RESPONSE + 256  # abi.encode(bool[], bytes[]) of one
MAX_CALLDATA: constant(uint256) = 4 + 64 + 32 + 256 + 32 + MAX_DATA  # resolve(name, data)
MAX_QUERY: constant(uint256) = 4096              # query([(sender, urls, data)]) calldata
MAX_UR_EXTRA: constant(uint256) = 4 * 32 + 32 + MAX_LOOKUP_EXTRA     # this contract's extraData

# IExtendedResolver
RESOLVE_SELECTOR: constant(bytes4) = method_id("resolve(bytes,bytes)", output_type=bytes4)
ERC165_SELECTOR: constant(bytes4) = method_id("supportsInterface(bytes4)", output_type=bytes4)
OFFCHAIN_LOOKUP_SELECTOR: constant(bytes4) = method_id("OffchainLookup(address,string[],bytes,bytes4,bytes)", output_type=bytes4)
BATCH_QUERY_SELECTOR: constant(bytes4) = method_id("query((address,string[],bytes)[])", output_type=bytes4)
RESOLVE_CALLBACK_SELECTOR: constant(bytes4) = method_id("resolveCallback(bytes,bytes)", output_type=bytes4)
RESOLVER_NOT_FOUND_SELECTOR: constant(bytes4) = method_id("ResolverNotFound(bytes)", output_type=bytes4)
RESOLVER_NOT_EXTENDED_SELECTOR: constant(bytes4) = method_id("ResolverNotExtended(address)", output_type=bytes4)
RESOLVER_ERROR_SELECTOR: constant(bytes4) = method_id("ResolverError(bytes)", output_type=bytes4)

struct BatchRequest:
    sender: address
    urls: DynArray[String[MAX_URL], MAX_URLS]
    data: Bytes[MAX_LOOKUP_CALLDATA]

# Slot 0. The dev chain writes the owner into genesis storage: keep it first.
owner: public(address)
batchGatewayURLs: DynArray[String[MAX_URL], MAX_URLS]


@deploy
def __init__():
    self.owner = msg.sender


@external
def setBatchGatewayURLs(urls: DynArray[String[MAX_URL], MAX_URLS]):
    """
    @notice Set the ENSIP-21 batch gateway URLs used for offchain lookups (owner only).
    """
    assert msg.sender == self.owner, "UniversalResolver: not owner"
    self.batchGatewayURLs = urls


@external
@view
def batchGateways() -> DynArray[String[MAX_URL], MAX_URLS]:
    return self.batchGatewayURLs


@internal
@view
def _find_resolver(name: Bytes[MAX_NAME]) -> (address, bytes32, uint256):
    # Label offsets and labelhashes, left to right.
    offsets: DynArray[uint256, MAX_LABELS] = []
    hashes: DynArray[bytes32, MAX_LABELS] = []
    pos: uint256 = 0
    terminated: bool = False
    for i: uint256 in range(MAX_LABELS):
        assert pos < len(name), "UniversalResolver: invalid DNS name"
        size: uint256 = convert(slice(name, pos, 1), uint256)
        if size == 0:
            terminated = True
            break
        assert pos + 1 + size < len(name), "UniversalResolver: invalid DNS name"
        offsets.append(pos)
        hashes.append(keccak256(slice(name, pos + 1, size)))
        pos += 1 + size
    assert terminated and pos + 1 == len(name), "UniversalResolver: invalid DNS name"

    # nodes[i] is the namehash of the suffix starting at label i; built right to left.
    count: uint256 = len(hashes)
    nodes: bytes32[MAX_LABELS] = empty(bytes32[MAX_LABELS])
    node: bytes32 = empty(bytes32)
    for j: uint256 in range(count, bound=MAX_LABELS):
        node = keccak256(concat(node, hashes[count - 1 - j]))
        nodes[count - 1 - j] = node
    full_node: bytes32 = node

    # ENSIP-10: the closest ancestor (or the name itself) that has a resolver.
    for i: uint256 in range(count, bound=MAX_LABELS):
        resolver: address = staticcall ENSRegistry(ENS_REGISTRY).resolver(nodes[i])
        if resolver != empty(address):
            return resolver, full_node, offsets[i]
    root_resolver: address = staticcall ENSRegistry(ENS_REGISTRY).resolver(empty(bytes32))
    return root_resolver, full_node, pos


@internal
@view
def _supports_extended(resolver: address) -> bool:
    success: bool = False
    response: Bytes[32] = b""
    success, response = raw_call(
        resolver,
        abi_encode(RESOLVE_SELECTOR, method_id=ERC165_SELECTOR),
        max_outsize=32,
        is_static_call=True,
        revert_on_failure=False,
    )
    return success and len(response) == 32 and convert(response, uint256) == 1


@internal
@pure
def _unwrap(output: Bytes[MAX_OUT], extended: bool) -> Bytes[MAX_OUT]:
    # resolve(bytes,bytes) and its callbacks return `bytes`; a plain resolver returns the record directly.
    if extended:
        return abi_decode(output, Bytes[MAX_RESULT])
    return output


@internal
@view
def _revert_with(resolver: address, error: Bytes[MAX_OUT], extended: bool):
    # A lookup from the resolver itself becomes a batch-gateway lookup from this contract;
    # anything else is passed up wrapped in ResolverError(bytes).
    if len(error) >= 4 and convert(slice(error, 0, 4), bytes4) == OFFCHAIN_LOOKUP_SELECTOR:
        sender: address = empty(address)
        urls: DynArray[String[MAX_URL], MAX_URLS] = []
        call_data: Bytes[MAX_LOOKUP_CALLDATA] = b""
        callback: bytes4 = empty(bytes4)
        extra: Bytes[MAX_LOOKUP_EXTRA] = b""
        sender, urls, call_data, callback, extra = abi_decode(
            slice(error, 4, len(error) - 4),
            (address, DynArray[String[MAX_URL], MAX_URLS], Bytes[MAX_LOOKUP_CALLDATA], bytes4, Bytes[MAX_LOOKUP_EXTRA]),
        )
        if sender == resolver:
            requests: DynArray[BatchRequest, 1] = [BatchRequest(sender=sender, urls=urls, data=call_data)]
            query: Bytes[MAX_QUERY] = abi_encode(requests, method_id=BATCH_QUERY_SELECTOR)
            raw_revert(abi_encode(
                self,
                self.batchGatewayURLs,
                query,
                RESOLVE_CALLBACK_SELECTOR,
                abi_encode(resolver, callback, extra, extended),
                method_id=OFFCHAIN_LOOKUP_SELECTOR,
            ))
    raw_revert(abi_encode(error, method_id=RESOLVER_ERROR_SELECTOR))


@external
@view
def findResolver(name: Bytes[MAX_NAME]) -> (address, bytes32, uint256):
    """
    @notice The resolver responsible for `name` (ENSIP-10 walk), its namehash, and the byte
            offset in `name` of the label that resolver is set on.
    """
    return self._find_resolver(name)


@external
@view
def resolve(name: Bytes[MAX_NAME], data: Bytes[MAX_DATA]) -> (Bytes[MAX_OUT], address):
    """
    @notice Resolve record call `data` for DNS-encoded `name`: returns the record's ABI-encoded
            value and the resolver that answered. Reverts ResolverNotFound(bytes) when no
            resolver exists, OffchainLookup for offchain resolvers.
    """
    resolver: address = empty(address)
    node: bytes32 = empty(bytes32)
    offset: uint256 = 0
    resolver, node, offset = self._find_resolver(name)
    if resolver == empty(address):
        raw_revert(abi_encode(name, method_id=RESOLVER_NOT_FOUND_SELECTOR))

    extended: bool = self._supports_extended(resolver)
    call_data: Bytes[MAX_CALLDATA] = b""
    if extended:
        call_data = abi_encode(name, data, method_id=RESOLVE_SELECTOR)
    else:
        # A resolver found on an ancestor answers for the name only if it implements ENSIP-10.
        if offset != 0:
            raw_revert(abi_encode(resolver, method_id=RESOLVER_NOT_EXTENDED_SELECTOR))
        call_data = data

    success: bool = False
    output: Bytes[MAX_OUT] = b""
    success, output = raw_call(resolver, call_data, max_outsize=MAX_OUT, is_static_call=True, revert_on_failure=False)
    if not success:
        self._revert_with(resolver, output, extended)
    return self._unwrap(output, extended), resolver


@external
@view
def resolveCallback(response: Bytes[MAX_BATCH_RESPONSE], extraData: Bytes[MAX_UR_EXTRA]) -> (Bytes[MAX_OUT], address):
    """
    @notice EIP-3668 callback for the batch gateway's answer `abi.encode(bool[] failures,
            bytes[] responses)`: hands the single response to the resolver's own callback.
    """
    failures: DynArray[bool, 1] = []
    responses: DynArray[Bytes[MAX_GATEWAY_RESPONSE], 1] = []
    failures, responses = abi_decode(response, (DynArray[bool, 1], DynArray[Bytes[MAX_GATEWAY_RESPONSE], 1]))
    resolver: address = empty(address)
    callback: bytes4 = empty(bytes4)
    extra: Bytes[MAX_LOOKUP_EXTRA] = b""
    extended: bool = False
    resolver, callback, extra, extended = abi_decode(extraData, (address, bytes4, Bytes[MAX_LOOKUP_EXTRA], bool))
    assert len(failures) == 1 and len(responses) == 1, "UniversalResolver: invalid batch response"
    if failures[0]:
        # ENSIP-21: a failed request carries its error (HttpError(uint16,string), Error(string), ...).
        raw_revert(responses[0])

    success: bool = False
    output: Bytes[MAX_OUT] = b""
    success, output = raw_call(
        resolver,
        concat(callback, abi_encode(responses[0], extra)),
        max_outsize=MAX_OUT,
        is_static_call=True,
        revert_on_failure=False,
    )
    if not success:
        self._revert_with(resolver, output, extended)
    return self._unwrap(output, extended), resolver
