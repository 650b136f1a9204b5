# pragma version 0.4.3
# pragma optimize gas
# pragma evm-version cancun
"""
@title A minimal contract wallet with one owner key, speaking EIP-1271
@notice `isValidSignature(hash, signature)` answers the EIP-1271 magic value `0x1626ba7e` iff
        `signature` is the owner's 65-byte secp256k1 signature `r || s || v` of `hash` (`v` 27/28
        or 0/1, `s` in the lower half of the curve order as EIP-2 requires), and `0xffffffff`
        otherwise; it never reverts on a bad signature. Services ask it with the EIP-191
        `personal_sign` digest of the text the wallet signs, so the owner key signs the same text
        an ordinary account would.

        `execute(target, value, data)` lets the owner make any call from the wallet (own an ENS
        name, set its records, move funds); `setOwner` hands the wallet to another key. Written from
        EIP-1271, not ported.
"""

MAGIC_VALUE: constant(bytes4) = 0x1626ba7e
INVALID_VALUE: constant(bytes4) = 0xffffffff
# Half the secp256k1 group order: a larger s is the malleable twin of a valid signature (EIP-2).
HALF_ORDER: constant(uint256) = 57896044618658097711785492504343953926418782139537452191302581570759080747168
MAX_CALL_DATA: constant(uint256) = 4096
MAX_SIGNATURE: constant(uint256) = 1024

event OwnerChanged:
    owner: indexed(address)

owner: public(address)


@deploy
@payable
def __init__(initial_owner: address):
    assert initial_owner != empty(address), "owner must not be zero"
    self.owner = initial_owner
    log OwnerChanged(owner=initial_owner)


@external
@payable
def __default__():
    pass


@external
@view
def isValidSignature(digest: bytes32, signature: Bytes[MAX_SIGNATURE]) -> bytes4:
    if len(signature) != 65:
        return INVALID_VALUE
    r: uint256 = convert(slice(signature, 0, 32), uint256)
    s: uint256 = convert(slice(signature, 32, 32), uint256)
    v: uint256 = convert(slice(signature, 64, 1), uint256)
    if v < 27:
        v += 27
    if v != 27 and v != 28:
        return INVALID_VALUE
    if r == 0 or s == 0 or s > HALF_ORDER:
        return INVALID_VALUE
    signer: address = ecrecover(digest, v, r, s)
    if signer == empty(address) or signer != self.owner:
        return INVALID_VALUE
    return MAGIC_VALUE


@external
@payable
def execute(target: address, amount: uint256, data: Bytes[MAX_CALL_DATA]) -> Bytes[MAX_CALL_DATA]:
    assert msg.sender == self.owner, "only the owner"
    return raw_call(target, data, value=amount, max_outsize=MAX_CALL_DATA)


@external
def setOwner(new_owner: address):
    assert msg.sender == self.owner, "only the owner"
    assert new_owner != empty(address), "owner must not be zero"
    self.owner = new_owner
    log OwnerChanged(owner=new_owner)


@external
@view
def supportsInterface(interface_id: bytes4) -> bool:
    return interface_id == 0x01ffc9a7 or interface_id == method_id(
        "isValidSignature(bytes32,bytes)", output_type=bytes4
    )
