# pragma version 0.4.3
# pragma optimize gas
# pragma evm-version cancun
"""
@title Universal Resolver for local chains, with the interface of ENS's deployed one
@notice ENS clients resolve every name through the Universal Resolver (UR) at
        0xeEeEEEeE14D718C2B47D9923Deab1335E144EeEe. This contract answers the calls they make:

        - `resolve(bytes name, bytes data) -> (bytes result, address resolver)` (web3.py 8) and
          `resolveWithGateways(name, data, string[] gateways)` (viem 2): record call `data` for
          DNS-encoded `name`, answered by the ENSIP-10 resolver of the name or its closest
          ancestor. `result` is the record's ABI-encoded value.
        - `reverse(bytes lookupAddress, uint256 coinType) -> (string primary, address resolver,
          address reverseResolver)` and `reverseWithGateways(..., string[] gateways)`: ENSIP-19
          primary name of an address, checked forward (the primary name must resolve back to the
          address for `coinType`, else ReverseAddressMismatch).
        - `findResolver(bytes name) -> (address, bytes32, uint256)` and `requireResolver(bytes name)
          -> (bytes name, uint256 offset, bytes32 node, address resolver, bool extended)`.

        Errors are ENS's: ResolverNotFound(bytes name), ResolverNotContract(bytes name, address
        resolver), ResolverError(bytes errorData) (the resolver reverted), UnsupportedResolverProfile
        (bytes4 selector) (the resolver answered nothing), ReverseAddressMismatch(string primary,
        bytes primaryAddress), DNSEncodingFailed(string ens), EmptyAddress(); a failed batch gateway
        request re-raises the gateway's own HttpError(uint16 status, string message) or Error(string).

        Offchain resolvers (EIP-3668): clients only follow an OffchainLookup whose `sender` is the
        contract they called, so a resolver's lookup is wrapped into an ENSIP-21 batch-gateway
        request: OffchainLookup(this, gateways, query([(resolver, urls, callData)]), callback,
        extraData). `gateways` are those passed to the *WithGateways calls (viem passes
        "x-batch-gateway:true", meaning "the client runs the batch itself"), or the stored
        `batchGateways()` for `resolve`/`reverse`. The batch gateway fetches from the resolver's
        URLs with the resolver as `sender`, so the gateway signs for the resolver and the
        resolver's own check runs unchanged in its callback, which this contract calls from
        `resolveCallback` / `reverseCallback`. A callback that looks up again is wrapped again.

        A record call `multicall(bytes[] calls)` (at most MAX_CALLS calls) asks for several records
        of one name in one `resolve`, as ENS's UR does for a resolver without ERC-7996: each call goes
        to the resolver on its own; the offchain ones travel as one batch-gateway query with one
        request per call, and `resolveMulticallCallback` answers `abi.encode(bytes[] results)`,
        each entry the record's ABI-encoded value or, for a call that failed, its error data
        (the resolver's revert or the batch gateway's HttpError/Error; a value is 32-byte
        aligned, an error is not).

        Not implemented: encoded labelhashes ("[...]" labels), addresses longer than 32 bytes in
        `reverse`, a callback that looks up again inside a multicall (its lookup is returned as the
        call's error).
        Written from ENSIP-10/-19/-21 and ENS's published interface, not ported.
"""

interface ENSRegistry:
    def resolver(node: bytes32) -> address: view

ENS_REGISTRY: constant(address) = 0x00000000000C2E074eC69A0dFb2997BA6C7d2e1e

MAX_NAME: constant(uint256) = 256                # DNS wire format name (255) rounded to whole words
MAX_LABELS: constant(uint256) = 128              # a 255-byte name has at most 127 labels
MAX_PRIMARY: constant(uint256) = 253             # a dotted name whose DNS encoding fits 255 bytes
MAX_ADDRESS: constant(uint256) = 32              # reverse(): the address, e.g. 20 bytes for EVM chains
MAX_DATA: constant(uint256) = 2048               # record call, e.g. text(node, key), or a multicall of them
MAX_CALL: constant(uint256) = 416                # one record call inside a multicall
MAX_URL: constant(uint256) = 256
MAX_URLS: constant(uint256) = 4
MAX_RESULT: constant(uint256) = 8192             # record value
MAX_OUT: constant(uint256) = MAX_RESULT + 64     # a resolver's return (abi bytes) or revert data
MAX_LOOKUP_CALLDATA: constant(uint256) = 2048    # a resolver's OffchainLookup.callData
MAX_LOOKUP_EXTRA: constant(uint256) = 2048       # a resolver's OffchainLookup.extraData
MAX_GATEWAY_RESPONSE: constant(uint256) = 8448   # one signed gateway answer
MAX_BATCH_RESPONSE: constant(uint256) = MAX_GATEWAY_RESPONSE + 256  # abi.encode(bool[], bytes[]) of one
MAX_CALLDATA: constant(uint256) = 4 + 64 + 32 + MAX_NAME + 32 + MAX_DATA  # resolve(name, data)
MAX_QUERY: constant(uint256) = 4096              # query([(sender, urls, data)]) calldata
MAX_CALLS: constant(uint256) = 4                 # record calls in one multicall(bytes[])
MAX_MULTI_QUERY: constant(uint256) = MAX_CALLS * MAX_QUERY
# abi.encode(bytes[] results): offsets, then each result (a value or error data) padded
MAX_MULTI_OUT: constant(uint256) = 64 + MAX_CALLS * (64 + MAX_GATEWAY_RESPONSE)
MAX_MULTI_BATCH_RESPONSE: constant(uint256) = 128 + MAX_CALLS * (96 + MAX_GATEWAY_RESPONSE)
# abi.encode(resolver, extended, results, callbacks, extras, gateways)
MAX_MULTI_EXTRA: constant(uint256) = MAX_MULTI_OUT + MAX_CALLS * (96 + MAX_LOOKUP_EXTRA) + MAX_URLS * (64 + MAX_URL) + 512
MAX_CONTEXT: constant(uint256) = 5 * 32 + 32 + MAX_ADDRESS + 32 + MAX_PRIMARY + 3  # reverse() state
# abi.encode(resolver, extended, selector, callback, extra, gateways, context)
MAX_UR_EXTRA: constant(uint256) = 7 * 32 + 32 + MAX_LOOKUP_EXTRA + 32 + MAX_URLS * (32 + 32 + MAX_URL) + 32 + MAX_CONTEXT + 32

COIN_TYPE_ETH: constant(uint256) = 60
COIN_TYPE_DEFAULT: constant(uint256) = 2**31     # ENSIP-19 "default.reverse"
HEX_DIGITS: constant(Bytes[16]) = b"0123456789abcdef"

RESOLVE_SELECTOR: constant(bytes4) = method_id("resolve(bytes,bytes)", output_type=bytes4)
ERC165_SELECTOR: constant(bytes4) = method_id("supportsInterface(bytes4)", output_type=bytes4)
NAME_SELECTOR: constant(bytes4) = method_id("name(bytes32)", output_type=bytes4)
ADDR_SELECTOR: constant(bytes4) = method_id("addr(bytes32)", output_type=bytes4)
ADDR_COIN_SELECTOR: constant(bytes4) = method_id("addr(bytes32,uint256)", output_type=bytes4)
OFFCHAIN_LOOKUP_SELECTOR: constant(bytes4) = method_id("OffchainLookup(address,string[],bytes,bytes4,bytes)", output_type=bytes4)
BATCH_QUERY_SELECTOR: constant(bytes4) = method_id("query((address,string[],bytes)[])", output_type=bytes4)
RESOLVE_CALLBACK_SELECTOR: constant(bytes4) = method_id("resolveCallback(bytes,bytes)", output_type=bytes4)
MULTICALL_SELECTOR: constant(bytes4) = method_id("multicall(bytes[])", output_type=bytes4)
RESOLVE_MULTICALL_CALLBACK_SELECTOR: constant(bytes4) = method_id("resolveMulticallCallback(bytes,bytes)", output_type=bytes4)
REVERSE_CALLBACK_SELECTOR: constant(bytes4) = method_id("reverseCallback(bytes,bytes)", output_type=bytes4)
RESOLVER_NOT_FOUND_SELECTOR: constant(bytes4) = method_id("ResolverNotFound(bytes)", output_type=bytes4)
RESOLVER_NOT_CONTRACT_SELECTOR: constant(bytes4) = method_id("ResolverNotContract(bytes,address)", output_type=bytes4)
RESOLVER_ERROR_SELECTOR: constant(bytes4) = method_id("ResolverError(bytes)", output_type=bytes4)
UNSUPPORTED_PROFILE_SELECTOR: constant(bytes4) = method_id("UnsupportedResolverProfile(bytes4)", output_type=bytes4)
REVERSE_MISMATCH_SELECTOR: constant(bytes4) = method_id("ReverseAddressMismatch(string,bytes)", output_type=bytes4)
DNS_ENCODING_FAILED_SELECTOR: constant(bytes4) = method_id("DNSEncodingFailed(string)", output_type=bytes4)
DNS_DECODING_FAILED_SELECTOR: constant(bytes4) = method_id("DNSDecodingFailed(bytes)", output_type=bytes4)

struct BatchRequest:
    sender: address
    urls: DynArray[String[MAX_URL], MAX_URLS]
    data: Bytes[MAX_LOOKUP_CALLDATA]

struct ResolverInfo:
    name: Bytes[MAX_NAME]                         # DNS-encoded
    offset: uint256                               # where in `name` the resolver's own name starts
    node: bytes32                                 # namehash(name)
    resolver: address
    extended: bool                                # ENSIP-10 resolve(bytes,bytes)

# What a callback needs to carry on after the batch gateway answered.
struct Pending:
    resolver: address
    extended: bool
    selector: bytes4                              # the record call, for UnsupportedResolverProfile
    gateways: DynArray[String[MAX_URL], MAX_URLS]
    context: Bytes[MAX_CONTEXT]                   # reverse(): where in the lookup we are

# Slot 0. The dev chain writes the owner into genesis storage: keep it first.
owner: public(address)
batchGatewayURLs: DynArray[String[MAX_URL], MAX_URLS]


@deploy
def __init__():
    self.owner = msg.sender


@external
def setBatchGatewayURLs(urls: DynArray[String[MAX_URL], MAX_URLS]):
    """
    @notice Set the ENSIP-21 batch gateway URLs used by `resolve` and `reverse` (owner only).
    """
    assert msg.sender == self.owner, "UniversalResolver: not owner"
    self.batchGatewayURLs = urls


@external
@view
def batchGateways() -> DynArray[String[MAX_URL], MAX_URLS]:
    return self.batchGatewayURLs


# -- names ------------------------------------------------------------------------------------


@internal
@pure
def _dns_invalid(name: Bytes[MAX_NAME]):
    raw_revert(abi_encode(name, method_id=DNS_DECODING_FAILED_SELECTOR))


@internal
@view
def _find_resolver(name: Bytes[MAX_NAME]) -> (address, bytes32, uint256):
    # Label offsets and labelhashes, left to right.
    offsets: DynArray[uint256, MAX_LABELS] = []
    hashes: DynArray[bytes32, MAX_LABELS] = []
    pos: uint256 = 0
    terminated: bool = False
    for i: uint256 in range(MAX_LABELS):
        if pos >= len(name):
            self._dns_invalid(name)
        size: uint256 = convert(slice(name, pos, 1), uint256)
        if size == 0:
            terminated = True
            break
        if pos + 1 + size >= len(name):
            self._dns_invalid(name)
        offsets.append(pos)
        hashes.append(keccak256(slice(name, pos + 1, size)))
        pos += 1 + size
    if not terminated or pos + 1 != len(name):
        self._dns_invalid(name)

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
@view
def _require_resolver(name: Bytes[MAX_NAME]) -> ResolverInfo:
    # The resolver that answers for `name` (ENSIP-10), or ENS's error when there is none.
    info: ResolverInfo = ResolverInfo(name=name, offset=0, node=empty(bytes32), resolver=empty(address), extended=False)
    info.resolver, info.node, info.offset = self._find_resolver(name)
    if info.resolver == empty(address):
        raw_revert(abi_encode(name, method_id=RESOLVER_NOT_FOUND_SELECTOR))
    if self._supports_extended(info.resolver):
        info.extended = True
        return info
    if info.offset != 0:
        # A resolver found on an ancestor answers for the name only if it implements ENSIP-10.
        raw_revert(abi_encode(name, method_id=RESOLVER_NOT_FOUND_SELECTOR))
    if not info.resolver.is_contract:
        raw_revert(abi_encode(name, info.resolver, method_id=RESOLVER_NOT_CONTRACT_SELECTOR))
    return info


@internal
@pure
def _set_byte(words: uint256[8], pos: uint256, byte_value: uint256) -> uint256[8]:
    # Byte `pos` of a 256-byte buffer kept as eight big-endian words.
    out: uint256[8] = words
    out[pos // 32] = out[pos // 32] | (byte_value << (8 * (31 - pos % 32)))
    return out


@internal
@pure
def _bytes_of(words: uint256[8], length: uint256) -> Bytes[MAX_NAME]:
    return slice(
        concat(
            convert(words[0], bytes32), convert(words[1], bytes32), convert(words[2], bytes32), convert(words[3], bytes32),
            convert(words[4], bytes32), convert(words[5], bytes32), convert(words[6], bytes32), convert(words[7], bytes32),
        ),
        0,
        length,
    )


@internal
@pure
def _dns_encode(name: String[MAX_PRIMARY]) -> Bytes[MAX_NAME]:
    # "a.bc" -> 0x01 'a' 0x02 'b' 'c' 0x00: byte i of the name lands at i + 1, each dot becomes the
    # length of the label after it, and the first label's length goes in front.
    raw: Bytes[MAX_PRIMARY] = convert(name, Bytes[MAX_PRIMARY])
    words: uint256[8] = empty(uint256[8])
    start: uint256 = 0
    for i: uint256 in range(MAX_PRIMARY + 1):
        if i > len(raw):
            break
        char: uint256 = 46
        if i < len(raw):
            char = convert(slice(raw, i, 1), uint256)
        if char == 46:  # "." or the end
            if i == start:
                raw_revert(abi_encode(name, method_id=DNS_ENCODING_FAILED_SELECTOR))
            words = self._set_byte(words, start, i - start)
            start = i + 1
        else:
            words = self._set_byte(words, i + 1, char)
    return self._bytes_of(words, len(raw) + 2)


@internal
@pure
def _hex_label(data: Bytes[MAX_ADDRESS], trim: bool) -> Bytes[65]:
    # A DNS label of `data` in lowercase hex (ENSIP-19); `trim` drops leading zero digits.
    digits: Bytes[64] = b""
    high: uint256 = 0
    low: uint256 = 0
    for i: uint256 in range(MAX_ADDRESS):
        if i == len(data):
            break
        octet: uint256 = convert(slice(data, i, 1), uint256)
        bits: uint256 = 8 * (30 - 2 * (i % 16))
        pair: uint256 = (convert(slice(HEX_DIGITS, octet >> 4, 1), uint256) << 8) | convert(slice(HEX_DIGITS, octet & 15, 1), uint256)
        if i < 16:
            high = high | (pair << bits)
        else:
            low = low | (pair << bits)
    digits = slice(concat(convert(high, bytes32), convert(low, bytes32)), 0, 2 * len(data))
    first: uint256 = 0
    if trim:
        for i: uint256 in range(64):
            if first + 1 >= len(digits) or slice(digits, first, 1) != b"0":
                break
            first += 1
    size: uint256 = len(digits) - first
    return concat(slice(convert(size, bytes32), 31, 1), slice(digits, first, size))


@internal
@pure
def _reverse_name(lookup_address: Bytes[MAX_ADDRESS], coin_type: uint256) -> Bytes[MAX_NAME]:
    # ENSIP-19: <hex address>.addr.reverse for ETH, .default.reverse for the default coin type,
    # <hex coin type>.reverse otherwise.
    if len(lookup_address) == 0:
        raw_revert(method_id("EmptyAddress()"))
    label: Bytes[65] = self._hex_label(lookup_address, False)
    if coin_type == COIN_TYPE_ETH:
        return concat(label, b"\x04addr\x07reverse\x00")
    if coin_type == COIN_TYPE_DEFAULT:
        return concat(label, b"\x07default\x07reverse\x00")
    coin: Bytes[65] = self._hex_label(slice(convert(coin_type, bytes32), 0, 32), True)
    return concat(label, coin, b"\x07reverse\x00")


# -- calling resolvers --------------------------------------------------------------------------


@internal
@view
def _call_resolver(resolver: address, name: Bytes[MAX_NAME], extended: bool, data: Bytes[MAX_DATA]) -> (bool, Bytes[MAX_OUT]):
    call_data: Bytes[MAX_CALLDATA] = data
    if extended:
        call_data = abi_encode(name, data, method_id=RESOLVE_SELECTOR)
    return raw_call(resolver, call_data, max_outsize=MAX_OUT, is_static_call=True, revert_on_failure=False)


@internal
@view
def _follow_offchain(error: Bytes[MAX_OUT], pending: Pending, callback: bytes4):
    # A resolver's own OffchainLookup becomes a batch-gateway lookup from this contract, which
    # `callback` continues. Any other revert returns here (the caller raises ResolverError).
    if len(error) < 4 or convert(slice(error, 0, 4), bytes4) != OFFCHAIN_LOOKUP_SELECTOR:
        return
    sender: address = empty(address)
    urls: DynArray[String[MAX_URL], MAX_URLS] = []
    call_data: Bytes[MAX_LOOKUP_CALLDATA] = b""
    resolver_callback: bytes4 = empty(bytes4)
    extra: Bytes[MAX_LOOKUP_EXTRA] = b""
    sender, urls, call_data, resolver_callback, extra = abi_decode(
        slice(error, 4, len(error) - 4),
        (address, DynArray[String[MAX_URL], MAX_URLS], Bytes[MAX_LOOKUP_CALLDATA], bytes4, Bytes[MAX_LOOKUP_EXTRA]),
    )
    if sender != pending.resolver:
        return
    requests: DynArray[BatchRequest, 1] = [BatchRequest(sender=sender, urls=urls, data=call_data)]
    query: Bytes[MAX_QUERY] = abi_encode(requests, method_id=BATCH_QUERY_SELECTOR)
    raw_revert(abi_encode(
        self,
        pending.gateways,
        query,
        callback,
        abi_encode(
            pending.resolver, pending.extended, pending.selector, resolver_callback, extra,
            pending.gateways, pending.context,
        ),
        method_id=OFFCHAIN_LOOKUP_SELECTOR,
    ))


@internal
@pure
def _require_response(success: bool, output: Bytes[MAX_OUT], pending: Pending) -> Bytes[MAX_OUT]:
    # The record's ABI-encoded value, or ENS's error for what went wrong.
    if not success:
        raw_revert(abi_encode(output, method_id=RESOLVER_ERROR_SELECTOR))
    if len(output) == 0:
        raw_revert(abi_encode(pending.selector, method_id=UNSUPPORTED_PROFILE_SELECTOR))
    if pending.extended:
        # resolve(bytes,bytes) and its callbacks return `bytes`; a plain resolver the value itself.
        return abi_decode(output, Bytes[MAX_RESULT])
    return output


@internal
@view
def _lookup(name: Bytes[MAX_NAME], data: Bytes[MAX_DATA], pending: Pending, callback: bytes4) -> Bytes[MAX_OUT]:
    success: bool = False
    output: Bytes[MAX_OUT] = b""
    success, output = self._call_resolver(pending.resolver, name, pending.extended, data)
    if not success:
        self._follow_offchain(output, pending, callback)
    return self._require_response(success, output, pending)


@internal
@view
def _continue(response: Bytes[MAX_BATCH_RESPONSE], extraData: Bytes[MAX_UR_EXTRA], callback: bytes4) -> (Bytes[MAX_OUT], Pending):
    # The batch gateway answered `abi.encode(bool[] failures, bytes[] responses)`: hand the single
    # response to the resolver's own callback.
    failures: DynArray[bool, 1] = []
    responses: DynArray[Bytes[MAX_GATEWAY_RESPONSE], 1] = []
    failures, responses = abi_decode(response, (DynArray[bool, 1], DynArray[Bytes[MAX_GATEWAY_RESPONSE], 1]))
    pending: Pending = empty(Pending)
    resolver_callback: bytes4 = empty(bytes4)
    extra: Bytes[MAX_LOOKUP_EXTRA] = b""
    pending.resolver, pending.extended, pending.selector, resolver_callback, extra, pending.gateways, pending.context = abi_decode(
        extraData,
        (address, bool, bytes4, bytes4, Bytes[MAX_LOOKUP_EXTRA], DynArray[String[MAX_URL], MAX_URLS], Bytes[MAX_CONTEXT]),
    )
    assert len(failures) == 1 and len(responses) == 1, "UniversalResolver: invalid batch response"
    if failures[0]:
        # ENSIP-21: a failed request carries its error (HttpError(uint16,string), Error(string), ...).
        raw_revert(responses[0])

    success: bool = False
    output: Bytes[MAX_OUT] = b""
    success, output = raw_call(
        pending.resolver,
        concat(resolver_callback, abi_encode(responses[0], extra)),
        max_outsize=MAX_OUT,
        is_static_call=True,
        revert_on_failure=False,
    )
    if not success:
        self._follow_offchain(output, pending, callback)
    return self._require_response(success, output, pending), pending


# -- resolve ------------------------------------------------------------------------------------


@internal
@view
def _resolve(name: Bytes[MAX_NAME], data: Bytes[MAX_DATA], gateways: DynArray[String[MAX_URL], MAX_URLS]) -> (Bytes[MAX_MULTI_OUT], address):
    info: ResolverInfo = self._require_resolver(name)
    if len(data) >= 4 and convert(slice(data, 0, 4), bytes4) == MULTICALL_SELECTOR:
        return self._resolve_multi(name, data, info, gateways), info.resolver
    pending: Pending = empty(Pending)
    pending.resolver = info.resolver
    pending.extended = info.extended
    if len(data) >= 4:
        pending.selector = convert(slice(data, 0, 4), bytes4)
    pending.gateways = gateways
    return self._lookup(name, data, pending, RESOLVE_CALLBACK_SELECTOR), pending.resolver


@internal
@pure
def _multi_value(success: bool, output: Bytes[MAX_OUT], extended: bool) -> Bytes[MAX_OUT]:
    # One entry of a multicall's answer: the value (unwrapped from resolve()'s `bytes`) or the error.
    if success and extended and len(output) >= 64:
        return abi_decode(output, Bytes[MAX_RESULT])
    return output


@internal
@view
def _resolve_multi(
    name: Bytes[MAX_NAME], data: Bytes[MAX_DATA], info: ResolverInfo, gateways: DynArray[String[MAX_URL], MAX_URLS]
) -> Bytes[MAX_MULTI_OUT]:
    calls: DynArray[Bytes[MAX_CALL], MAX_CALLS] = abi_decode(slice(data, 4, len(data) - 4), DynArray[Bytes[MAX_CALL], MAX_CALLS])
    results: DynArray[Bytes[MAX_GATEWAY_RESPONSE], MAX_CALLS] = []
    callbacks: DynArray[bytes4, MAX_CALLS] = []   # the resolver's callback for a call waiting on the gateway
    extras: DynArray[Bytes[MAX_LOOKUP_EXTRA], MAX_CALLS] = []
    requests: DynArray[BatchRequest, MAX_CALLS] = []
    for call: Bytes[MAX_CALL] in calls:
        success: bool = False
        output: Bytes[MAX_OUT] = b""
        success, output = self._call_resolver(info.resolver, name, info.extended, call)
        callback: bytes4 = empty(bytes4)
        extra: Bytes[MAX_LOOKUP_EXTRA] = b""
        if not success and len(output) >= 4 and convert(slice(output, 0, 4), bytes4) == OFFCHAIN_LOOKUP_SELECTOR:
            sender: address = empty(address)
            urls: DynArray[String[MAX_URL], MAX_URLS] = []
            call_data: Bytes[MAX_LOOKUP_CALLDATA] = b""
            sender, urls, call_data, callback, extra = abi_decode(
                slice(output, 4, len(output) - 4),
                (address, DynArray[String[MAX_URL], MAX_URLS], Bytes[MAX_LOOKUP_CALLDATA], bytes4, Bytes[MAX_LOOKUP_EXTRA]),
            )
            if sender == info.resolver:
                requests.append(BatchRequest(sender=sender, urls=urls, data=call_data))
                output = b""
            else:
                callback = empty(bytes4)
                extra = b""
        results.append(self._multi_value(success, output, info.extended))
        callbacks.append(callback)
        extras.append(extra)
    if len(requests) == 0:
        return abi_encode(results)
    raw_revert(abi_encode(
        self,
        gateways,
        abi_encode(requests, method_id=BATCH_QUERY_SELECTOR),
        RESOLVE_MULTICALL_CALLBACK_SELECTOR,
        abi_encode(info.resolver, info.extended, results, callbacks, extras, gateways),
        method_id=OFFCHAIN_LOOKUP_SELECTOR,
    ))


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
def requireResolver(name: Bytes[MAX_NAME]) -> ResolverInfo:
    """
    @notice The resolver that answers for `name`, or ResolverNotFound / ResolverNotContract
            (ethers 6 calls this when its network names a Universal Resolver).
    """
    return self._require_resolver(name)


@external
@view
def resolve(name: Bytes[MAX_NAME], data: Bytes[MAX_DATA]) -> (Bytes[MAX_MULTI_OUT], address):
    """
    @notice Resolve record call `data` for DNS-encoded `name` through the stored batch gateways:
            returns the record's ABI-encoded value and the resolver that answered.
    """
    return self._resolve(name, data, self.batchGatewayURLs)


@external
@view
def resolveWithGateways(
    name: Bytes[MAX_NAME], data: Bytes[MAX_DATA], gateways: DynArray[String[MAX_URL], MAX_URLS]
) -> (Bytes[MAX_MULTI_OUT], address):
    """
    @notice `resolve` with the caller's batch gateway URLs (viem: ["x-batch-gateway:true"]).
    """
    return self._resolve(name, data, gateways)


@external
@view
def resolveCallback(response: Bytes[MAX_BATCH_RESPONSE], extraData: Bytes[MAX_UR_EXTRA]) -> (Bytes[MAX_OUT], address):
    """
    @notice EIP-3668 callback of `resolve`/`resolveWithGateways` for the batch gateway's answer.
    """
    result: Bytes[MAX_OUT] = b""
    pending: Pending = empty(Pending)
    result, pending = self._continue(response, extraData, RESOLVE_CALLBACK_SELECTOR)
    return result, pending.resolver


@external
@view
def resolveMulticallCallback(
    response: Bytes[MAX_MULTI_BATCH_RESPONSE], extraData: Bytes[MAX_MULTI_EXTRA]
) -> (Bytes[MAX_MULTI_OUT], address):
    """
    @notice EIP-3668 callback of a `multicall(bytes[])` resolve: hands each signed answer to the
            resolver's own callback; answers `abi.encode(bytes[] results)`.
    """
    resolver: address = empty(address)
    extended: bool = False
    results: DynArray[Bytes[MAX_GATEWAY_RESPONSE], MAX_CALLS] = []
    callbacks: DynArray[bytes4, MAX_CALLS] = []
    extras: DynArray[Bytes[MAX_LOOKUP_EXTRA], MAX_CALLS] = []
    gateways: DynArray[String[MAX_URL], MAX_URLS] = []
    resolver, extended, results, callbacks, extras, gateways = abi_decode(
        extraData,
        (
            address, bool, DynArray[Bytes[MAX_GATEWAY_RESPONSE], MAX_CALLS], DynArray[bytes4, MAX_CALLS],
            DynArray[Bytes[MAX_LOOKUP_EXTRA], MAX_CALLS], DynArray[String[MAX_URL], MAX_URLS],
        ),
    )
    failures: DynArray[bool, MAX_CALLS] = []
    responses: DynArray[Bytes[MAX_GATEWAY_RESPONSE], MAX_CALLS] = []
    failures, responses = abi_decode(response, (DynArray[bool, MAX_CALLS], DynArray[Bytes[MAX_GATEWAY_RESPONSE], MAX_CALLS]))
    assert len(failures) == len(responses), "UniversalResolver: invalid batch response"
    answered: uint256 = 0
    for i: uint256 in range(len(results), bound=MAX_CALLS):
        if callbacks[i] == empty(bytes4):
            continue
        assert answered < len(responses), "UniversalResolver: invalid batch response"
        if failures[answered]:
            # ENSIP-21: a failed request carries its error (HttpError(uint16,string), Error(string), ...).
            results[i] = responses[answered]
        else:
            success: bool = False
            output: Bytes[MAX_OUT] = b""
            success, output = raw_call(
                resolver,
                concat(callbacks[i], abi_encode(responses[answered], extras[i])),
                max_outsize=MAX_OUT,
                is_static_call=True,
                revert_on_failure=False,
            )
            results[i] = self._multi_value(success, output, extended)
        answered += 1
    assert answered == len(responses), "UniversalResolver: invalid batch response"
    return abi_encode(results), resolver


# -- reverse ------------------------------------------------------------------------------------
# Two lookups: name(reverse node) at the reverse name's resolver, then the address of that name
# for the coin type at its own resolver. Either may be offchain; `Pending.context` says which one
# a callback continues: abi.encode(bool forward, bytes address, uint256 coinType, address
# reverseResolver, string primary).


@internal
@view
def _reverse_forward(
    name_result: Bytes[MAX_OUT],
    lookup_address: Bytes[MAX_ADDRESS],
    coin_type: uint256,
    reverse_resolver: address,
    gateways: DynArray[String[MAX_URL], MAX_URLS],
) -> (String[MAX_PRIMARY], address, address):
    primary: String[MAX_PRIMARY] = abi_decode(name_result, String[MAX_PRIMARY])
    if len(primary) == 0:
        return "", empty(address), reverse_resolver
    name: Bytes[MAX_NAME] = self._dns_encode(primary)
    info: ResolverInfo = self._require_resolver(name)
    node: bytes32 = info.node
    pending: Pending = empty(Pending)
    pending.resolver = info.resolver
    pending.extended = info.extended
    pending.gateways = gateways
    pending.context = abi_encode(True, lookup_address, coin_type, reverse_resolver, primary)
    data: Bytes[MAX_DATA] = b""
    if coin_type == COIN_TYPE_ETH:
        pending.selector = ADDR_SELECTOR
        data = abi_encode(node, method_id=ADDR_SELECTOR)
    else:
        pending.selector = ADDR_COIN_SELECTOR
        data = abi_encode(node, coin_type, method_id=ADDR_COIN_SELECTOR)
    result: Bytes[MAX_OUT] = self._lookup(name, data, pending, REVERSE_CALLBACK_SELECTOR)
    return self._reverse_check(result, pending.selector, lookup_address, primary, pending.resolver, reverse_resolver)


@internal
@pure
def _reverse_check(
    addr_result: Bytes[MAX_OUT],
    selector: bytes4,
    lookup_address: Bytes[MAX_ADDRESS],
    primary: String[MAX_PRIMARY],
    resolver: address,
    reverse_resolver: address,
) -> (String[MAX_PRIMARY], address, address):
    # ENS requires the primary name to resolve back to the address.
    primary_address: Bytes[MAX_RESULT] = b""
    if selector == ADDR_SELECTOR:
        forward: address = abi_decode(addr_result, address)
        if forward != empty(address):
            primary_address = slice(convert(forward, bytes32), 12, 20)
    else:
        primary_address = abi_decode(addr_result, Bytes[MAX_RESULT])
    if len(primary_address) != len(lookup_address) or keccak256(primary_address) != keccak256(lookup_address):
        raw_revert(abi_encode(primary, primary_address, method_id=REVERSE_MISMATCH_SELECTOR))
    return primary, resolver, reverse_resolver


@internal
@view
def _reverse(
    lookup_address: Bytes[MAX_ADDRESS], coin_type: uint256, gateways: DynArray[String[MAX_URL], MAX_URLS]
) -> (String[MAX_PRIMARY], address, address):
    name: Bytes[MAX_NAME] = self._reverse_name(lookup_address, coin_type)
    info: ResolverInfo = self._require_resolver(name)
    node: bytes32 = info.node
    pending: Pending = empty(Pending)
    pending.resolver = info.resolver
    pending.extended = info.extended
    pending.selector = NAME_SELECTOR
    pending.gateways = gateways
    pending.context = abi_encode(False, lookup_address, coin_type, pending.resolver, "")
    result: Bytes[MAX_OUT] = self._lookup(name, abi_encode(node, method_id=NAME_SELECTOR), pending, REVERSE_CALLBACK_SELECTOR)
    return self._reverse_forward(result, lookup_address, coin_type, pending.resolver, gateways)


@external
@view
def reverse(lookupAddress: Bytes[MAX_ADDRESS], coinType: uint256) -> (String[MAX_PRIMARY], address, address):
    """
    @notice The primary name of `lookupAddress` (ENSIP-19; coinType 60 for Ethereum), checked
            forward, with the name's resolver and the reverse name's resolver. An address
            without a primary name gives ("", 0x0, reverseResolver).
    """
    return self._reverse(lookupAddress, coinType, self.batchGatewayURLs)


@external
@view
def reverseWithGateways(
    lookupAddress: Bytes[MAX_ADDRESS], coinType: uint256, gateways: DynArray[String[MAX_URL], MAX_URLS]
) -> (String[MAX_PRIMARY], address, address):
    """
    @notice `reverse` with the caller's batch gateway URLs (viem: ["x-batch-gateway:true"]).
    """
    return self._reverse(lookupAddress, coinType, gateways)


@external
@view
def reverseCallback(response: Bytes[MAX_BATCH_RESPONSE], extraData: Bytes[MAX_UR_EXTRA]) -> (String[MAX_PRIMARY], address, address):
    """
    @notice EIP-3668 callback of `reverse`/`reverseWithGateways` for the batch gateway's answer.
    """
    result: Bytes[MAX_OUT] = b""
    pending: Pending = empty(Pending)
    result, pending = self._continue(response, extraData, REVERSE_CALLBACK_SELECTOR)
    forward: bool = False
    lookup_address: Bytes[MAX_ADDRESS] = b""
    coin_type: uint256 = 0
    reverse_resolver: address = empty(address)
    primary: String[MAX_PRIMARY] = ""
    forward, lookup_address, coin_type, reverse_resolver, primary = abi_decode(
        pending.context, (bool, Bytes[MAX_ADDRESS], uint256, address, String[MAX_PRIMARY])
    )
    if not forward:
        return self._reverse_forward(result, lookup_address, coin_type, pending.resolver, pending.gateways)
    return self._reverse_check(result, pending.selector, lookup_address, primary, pending.resolver, reverse_resolver)
