"""Commands, wiring and development tools: the ``ensign`` command line, ``serve`` (one production
service per process), ``ensign dev`` and its demo, the embedded chain with its JSON-RPC server, the
embedded Redis and our ENS contracts.

This is the only package that imports every service; nothing imports it but the tests and the
benchmarks. The embedded chain and Redis need the ``dev`` extra (``pip install 'ensign[dev]'``),
which the production image leaves out.
"""
