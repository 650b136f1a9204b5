"""The ENS client every package shares: ``lookup`` (any name → address and verified dm3 profile,
through the Universal Resolver with CCIP-Read), ``cache`` (its TTL/LRU cache), ``ccip`` (EIP-3668
encoding, DNS names, namehash, gateway answers signed and verified) and ``names`` (ENSIP-15).

Import from the submodules; importing this package pulls in nothing.
"""
