# pragma version 0.4.3
# pragma optimize gas
# pragma evm-version cancun
"""
@title Reverse registrar and name resolver for primary names (ENSIP-3 / ENSIP-19 addr.reverse)
@notice Owns `addr.reverse` in the registry. `setName(name)` makes `name` the primary name of the
        caller: it claims `<lowercase hex address>.addr.reverse` for the caller with this contract
        as its resolver, and answers `name(node)` for it. Clients read it three ways, all served:
        the Universal Resolver's `reverse` (viem), `resolve(dns(<addr>.addr.reverse), name(node))`
        through the Universal Resolver (web3.py), and registry `resolver(node)` then `name(node)`
        (ethers 5 and 6). A primary name counts only if it resolves forward to the same address;
        the clients check that, not this contract.

        `setName` and `node` are the calls of ENS's own ReverseRegistrar; web3.py's
        `ENS.setup_name` finds this contract as the owner of `addr.reverse` and calls `setName`.
        The registrar's owner (the dev chain's deployer) may also set a name for any address with
        `setNameForAddr`, so a dev stack can give its users primary names without funding them.
        Written from ENSIP-3/-19, not ported.
"""

interface ENSRegistry:
    def setSubnodeRecord(node: bytes32, label: bytes32, owner: address, resolver: address, ttl: uint64): nonpayable

ENS_REGISTRY: constant(address) = 0x00000000000C2E074eC69A0dFb2997BA6C7d2e1e
# namehash("addr.reverse")
ADDR_REVERSE_NODE: constant(bytes32) = 0x91d1777781884d03a6757a803996e38de2a42967fb37eeaca72729271025a9e2
MAX_PRIMARY: constant(uint256) = 253             # a dotted name whose DNS encoding fits 255 bytes
HEX_DIGITS: constant(Bytes[16]) = b"0123456789abcdef"

ERC165_INTERFACE: constant(bytes4) = 0x01ffc9a7
NAME_INTERFACE: constant(bytes4) = method_id("name(bytes32)", output_type=bytes4)

event NameChanged:
    node: indexed(bytes32)
    name: String[MAX_PRIMARY]

owner: public(address)
names: HashMap[bytes32, String[MAX_PRIMARY]]


@deploy
def __init__():
    self.owner = msg.sender


@internal
@pure
def _label_hash(account: address) -> bytes32:
    # keccak256 of the address in lowercase hex without 0x (40 characters).
    value: uint256 = convert(account, uint256)
    high: uint256 = 0  # characters 0..31
    low: uint256 = 0   # characters 32..39, left-aligned
    for i: uint256 in range(40):
        nibble: uint256 = (value >> (4 * (39 - i))) & 15
        char: uint256 = convert(slice(HEX_DIGITS, nibble, 1), uint256)
        if i < 32:
            high = high | (char << (8 * (31 - i)))
        else:
            low = low | (char << (8 * (63 - i)))
    return keccak256(slice(concat(convert(high, bytes32), convert(low, bytes32)), 0, 40))


@internal
def _set_name(account: address, name: String[MAX_PRIMARY]) -> bytes32:
    label: bytes32 = self._label_hash(account)
    node: bytes32 = keccak256(concat(ADDR_REVERSE_NODE, label))
    # The account owns its reverse node, as with ENS's registrar; this contract stays its resolver.
    extcall ENSRegistry(ENS_REGISTRY).setSubnodeRecord(ADDR_REVERSE_NODE, label, account, self, 0)
    self.names[node] = name
    log NameChanged(node=node, name=name)
    return node


@external
def setName(name: String[MAX_PRIMARY]) -> bytes32:
    """
    @notice Make `name` the caller's primary name ("" clears it); returns the reverse node.
    """
    return self._set_name(msg.sender, name)


@external
def setNameForAddr(account: address, name: String[MAX_PRIMARY]) -> bytes32:
    """
    @notice `setName` on behalf of `account`: the account itself or the registrar's owner only.
    """
    assert msg.sender == account or msg.sender == self.owner, "ReverseRegistrar: not authorised"
    return self._set_name(account, name)


@external
@pure
def node(account: address) -> bytes32:
    """
    @notice The reverse node of `account`: namehash("<lowercase hex>.addr.reverse").
    """
    return keccak256(concat(ADDR_REVERSE_NODE, self._label_hash(account)))


@external
@view
def name(node: bytes32) -> String[MAX_PRIMARY]:
    """
    @notice The primary name recorded for reverse node `node` ("" when none).
    """
    return self.names[node]


@external
@pure
def supportsInterface(interfaceID: bytes4) -> bool:
    return interfaceID == ERC165_INTERFACE or interfaceID == NAME_INTERFACE
