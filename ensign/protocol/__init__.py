"""The dm3 protocol core: pure functions, no I/O.

One module per concept — ``canonical`` (canonical JSON), ``encoding`` (base64, hashes, addresses,
names), ``crypto`` (Ed25519, crypto_kx, padded ChaCha20-Poly1305), ``keys`` (wallet key
derivation), ``models`` (wire types), ``profile``, ``message``, ``envelope``, ``postmark``.
Import from the submodules; this package deliberately re-exports nothing so that importing one
module does not pull in the others. The byte formats are described in ``specs/protocol.md``.
"""
