# pragma version 0.4.3
# pragma optimize gas
# pragma evm-version cancun
"""
@title ENS registry (Ensign's own implementation)
@notice The ENS registry interface as ENS clients call it: owner, resolver and ttl per node,
        subnode creation, and operators approved for all of an owner's names. The deployer owns
        the root node. The embedded dev chain places this contract's runtime at ENS's canonical
        registry address and writes the root owner straight into genesis storage, so the storage
        layout (``records`` first) is part of the contract: see ensign/devchain.py.
"""

struct Record:
    owner: address
    resolver: address
    ttl: uint64

event NewOwner:
    node: indexed(bytes32)
    label: indexed(bytes32)
    owner: address

event Transfer:
    node: indexed(bytes32)
    owner: address

event NewResolver:
    node: indexed(bytes32)
    resolver: address

event NewTTL:
    node: indexed(bytes32)
    ttl: uint64

event ApprovalForAll:
    owner: indexed(address)
    operator: indexed(address)
    approved: bool

# Slot 0. Do not reorder: the dev chain computes the root owner's slot from it.
records: HashMap[bytes32, Record]
# Slot 1.
operators: HashMap[address, HashMap[address, bool]]


@deploy
def __init__():
    self.records[empty(bytes32)].owner = msg.sender


@internal
@view
def _authorised(node: bytes32) -> bool:
    node_owner: address = self.records[node].owner
    return node_owner == msg.sender or self.operators[node_owner][msg.sender]


@internal
def _set_resolver_and_ttl(node: bytes32, resolver: address, ttl: uint64):
    # Events only on change, as ENS's registry does, so indexers see real updates only.
    if resolver != self.records[node].resolver:
        self.records[node].resolver = resolver
        log NewResolver(node=node, resolver=resolver)
    if ttl != self.records[node].ttl:
        self.records[node].ttl = ttl
        log NewTTL(node=node, ttl=ttl)


@internal
def _set_subnode_owner(node: bytes32, label: bytes32, owner: address) -> bytes32:
    assert self._authorised(node), "ENSRegistry: not authorised"
    subnode: bytes32 = keccak256(concat(node, label))
    self.records[subnode].owner = owner
    log NewOwner(node=node, label=label, owner=owner)
    return subnode


@internal
def _set_owner(node: bytes32, owner: address):
    assert self._authorised(node), "ENSRegistry: not authorised"
    self.records[node].owner = owner
    log Transfer(node=node, owner=owner)


@external
def setRecord(node: bytes32, owner: address, resolver: address, ttl: uint64):
    """
    @notice Set owner, resolver and ttl of `node` in one transaction.
    """
    self._set_owner(node, owner)
    self._set_resolver_and_ttl(node, resolver, ttl)


@external
def setSubnodeRecord(node: bytes32, label: bytes32, owner: address, resolver: address, ttl: uint64):
    """
    @notice Create or take over `label`.`node`, setting its owner, resolver and ttl.
    """
    subnode: bytes32 = self._set_subnode_owner(node, label, owner)
    self._set_resolver_and_ttl(subnode, resolver, ttl)


@external
def setOwner(node: bytes32, owner: address):
    """
    @notice Transfer `node` to `owner`.
    """
    self._set_owner(node, owner)


@external
def setSubnodeOwner(node: bytes32, label: bytes32, owner: address) -> bytes32:
    """
    @notice Give `label`.`node` to `owner`; returns the subnode's namehash.
    """
    return self._set_subnode_owner(node, label, owner)


@external
def setResolver(node: bytes32, resolver: address):
    """
    @notice Point `node` at `resolver`.
    """
    assert self._authorised(node), "ENSRegistry: not authorised"
    self.records[node].resolver = resolver
    log NewResolver(node=node, resolver=resolver)


@external
def setTTL(node: bytes32, ttl: uint64):
    """
    @notice Set the caching time-to-live of `node`'s records.
    """
    assert self._authorised(node), "ENSRegistry: not authorised"
    self.records[node].ttl = ttl
    log NewTTL(node=node, ttl=ttl)


@external
def setApprovalForAll(operator: address, approved: bool):
    """
    @notice Let `operator` manage every name the caller owns.
    """
    self.operators[msg.sender][operator] = approved
    log ApprovalForAll(owner=msg.sender, operator=operator, approved=approved)


@external
@view
def owner(node: bytes32) -> address:
    """
    @notice The owner of `node`; names owned by the registry itself read as unowned.
    """
    node_owner: address = self.records[node].owner
    if node_owner == self:
        return empty(address)
    return node_owner


@external
@view
def resolver(node: bytes32) -> address:
    return self.records[node].resolver


@external
@view
def ttl(node: bytes32) -> uint64:
    return self.records[node].ttl


@external
@view
def recordExists(node: bytes32) -> bool:
    return self.records[node].owner != empty(address)


@external
@view
def isApprovedForAll(owner: address, operator: address) -> bool:
    return self.operators[owner][operator]
