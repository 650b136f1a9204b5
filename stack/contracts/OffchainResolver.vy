# pragma version 0.4.3
# pragma optimize gas
# pragma evm-version cancun
"""
@title Offchain resolver (ENSIP-10 + EIP-3668), ensdomains wire format
@notice Every lookup reverts with OffchainLookup pointing at the gateway; the client fetches a
        signed answer and hands it back to `resolveWithProof`, which checks the gateway's
        signature and expiry. The request/response layout, the signature hash and the revert
        reasons are those of ensdomains/offchain-resolver (see shared/reference/ens-ccip.md
        sections 1.1-1.6), so its gateways and clients work against this contract unchanged.
        Written from the specification, not ported.
"""

# Size bounds. Vyper needs them; they are generous for ENS records and keep memory bounded.
MAX_NAME: constant(uint256) = 255        # DNS wire format name (DNS's own limit)
MAX_DATA: constant(uint256) = 1024       # inner record call, e.g. text(node, key)
MAX_URL: constant(uint256) = 256
MAX_SIGNERS: constant(uint256) = 16
MAX_RESULT: constant(uint256) = 8192     # ABI-encoded record value returned by the gateway
MAX_SIG: constant(uint256) = 65
# abi.encodeWithSelector(resolve.selector, name, data): 4 + 2 heads + 2 length words + padded bodies
MAX_CALLDATA: constant(uint256) = 4 + 64 + 32 + 256 + 32 + MAX_DATA
# abi.encode(bytes result, uint64 expires, bytes sig)
MAX_RESPONSE: constant(uint256) = 96 + 32 + MAX_RESULT + 32 + 96
# abi.encode(bytes callData, address sender)
MAX_EXTRA: constant(uint256) = 64 + 32 + MAX_CALLDATA + 32

RESOLVE_SELECTOR: constant(bytes4) = method_id("resolve(bytes,bytes)", output_type=bytes4)
RESOLVE_WITH_PROOF_SELECTOR: constant(bytes4) = method_id("resolveWithProof(bytes,bytes)", output_type=bytes4)
ERC165_SELECTOR: constant(bytes4) = method_id("supportsInterface(bytes4)", output_type=bytes4)
OFFCHAIN_LOOKUP_SELECTOR: constant(bytes4) = method_id("OffchainLookup(address,string[],bytes,bytes4,bytes)", output_type=bytes4)

# Upper bound of a canonical ECDSA s value (secp256k1 order / 2), as OpenZeppelin's ECDSA enforces.
SECP256K1_HALF_N: constant(uint256) = 57896044618658097711785492504343953926418782139537452191302581570759080747168
EIP2098_S_MASK: constant(uint256) = 2**255 - 1

event NewSigners:
    signers: DynArray[address, MAX_SIGNERS]

url: public(String[MAX_URL])
signers: public(HashMap[address, bool])


@deploy
def __init__(_url: String[MAX_URL], _signers: DynArray[address, MAX_SIGNERS]):
    """
    @param _url gateway URL template, e.g. https://host/{sender}/{data}.json
    @param _signers addresses whose signatures the resolver accepts; fixed for its lifetime
    """
    self.url = _url
    for signer: address in _signers:
        self.signers[signer] = True
    log NewSigners(signers=_signers)


@internal
@pure
def _signature_hash(target: address, expires: uint64, request: Bytes[MAX_CALLDATA], result: Bytes[MAX_RESULT]) -> bytes32:
    # EIP-191 version 0x00 ("intended validator"): 0x1900 ‖ target ‖ uint64 expires ‖ keccak(request) ‖ keccak(result)
    return keccak256(concat(x"1900", convert(target, bytes20), convert(expires, bytes8), keccak256(request), keccak256(result)))


@internal
@pure
def _recover(digest: bytes32, sig: Bytes[MAX_SIG]) -> address:
    # Accepts r‖s‖v (65 bytes) and EIP-2098 r‖vs (64 bytes), rejecting malleable signatures.
    r: uint256 = 0
    s: uint256 = 0
    v: uint256 = 0
    if len(sig) == 65:
        r = extract32(sig, 0, output_type=uint256)
        s = extract32(sig, 32, output_type=uint256)
        v = convert(slice(sig, 64, 1), uint256)
    elif len(sig) == 64:
        r = extract32(sig, 0, output_type=uint256)
        vs: uint256 = extract32(sig, 32, output_type=uint256)
        s = vs & EIP2098_S_MASK
        v = (vs >> 255) + 27
    else:
        raise "ECDSA: invalid signature length"
    assert s <= SECP256K1_HALF_N, "ECDSA: invalid signature 's' value"
    assert v == 27 or v == 28, "ECDSA: invalid signature 'v' value"
    signer: address = ecrecover(digest, v, r, s)
    assert signer != empty(address), "ECDSA: invalid signature"
    return signer


@external
@pure
def makeSignatureHash(target: address, expires: uint64, request: Bytes[MAX_CALLDATA], result: Bytes[MAX_RESULT]) -> bytes32:
    """
    @notice The digest a gateway signs for `result` answering `request` sent to `target`.
    """
    return self._signature_hash(target, expires, request, result)


@external
@view
def resolve(name: Bytes[MAX_NAME], data: Bytes[MAX_DATA]) -> Bytes[MAX_RESULT]:
    """
    @notice ENSIP-10 entry point. Always reverts with OffchainLookup(this, [url],
            resolve(name, data) calldata, resolveWithProof.selector, abi.encode(callData, this)).
    @param name DNS wire-format name being resolved
    @param data ABI-encoded record call, e.g. text(node, key)
    """
    call_data: Bytes[MAX_CALLDATA] = abi_encode(name, data, method_id=RESOLVE_SELECTOR)
    urls: DynArray[String[MAX_URL], 1] = [self.url]
    raw_revert(abi_encode(self, urls, call_data, RESOLVE_WITH_PROOF_SELECTOR, abi_encode(call_data, self), method_id=OFFCHAIN_LOOKUP_SELECTOR))


@external
@view
def resolveWithProof(response: Bytes[MAX_RESPONSE], extraData: Bytes[MAX_EXTRA]) -> Bytes[MAX_RESULT]:
    """
    @notice EIP-3668 callback: verify the gateway's signed answer and return the record value.
    @param response abi.encode(bytes result, uint64 expires, bytes sig) from the gateway
    @param extraData abi.encode(bytes callData, address sender) from the OffchainLookup
    """
    result: Bytes[MAX_RESULT] = empty(Bytes[MAX_RESULT])
    expires: uint64 = 0
    sig: Bytes[MAX_SIG] = empty(Bytes[MAX_SIG])
    result, expires, sig = abi_decode(response, (Bytes[MAX_RESULT], uint64, Bytes[MAX_SIG]))
    request: Bytes[MAX_CALLDATA] = empty(Bytes[MAX_CALLDATA])
    sender: address = empty(address)
    request, sender = abi_decode(extraData, (Bytes[MAX_CALLDATA], address))
    signer: address = self._recover(self._signature_hash(sender, expires, request, result), sig)
    assert expires >= convert(block.timestamp, uint64), "SignatureVerifier: Signature expired"
    # The misspelling is ensdomains' revert string, kept byte-for-byte for clients matching on it.
    assert self.signers[signer], "SignatureVerifier: Invalid sigature"
    return result


@external
@pure
def supportsInterface(interfaceID: bytes4) -> bool:
    """
    @notice ERC-165: IExtendedResolver (0x9061b923) and ERC-165 itself, nothing else.
    """
    return interfaceID == RESOLVE_SELECTOR or interfaceID == ERC165_SELECTOR
