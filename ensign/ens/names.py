"""ENSIP-15 name normalisation, once for every package.

web3's pure-Python ENSIP-15 normaliser costs milliseconds per name (tens of them for a
42-character address label on a busy machine); names repeat, so results are remembered.
``lru_cache`` does not keep exceptions, so invalid names are never cached.
"""

from __future__ import annotations

import functools

from ensign.errors import InvalidName, InvalidRequest

__all__ = ["ensip15_normalize"]


def ensip15_normalize(name: str, *, error: type[InvalidRequest] = InvalidName) -> str:
    """``name`` in ENSIP-15 normal form; ``error`` (:class:`~ensign.errors.InvalidName` by default)
    naming why it has none."""
    try:
        return _normalize(name)
    except ValueError as exc:  # ENSException and InvalidName are ValueErrors too
        raise error(f"{name!r} is not a valid ENS name: {exc}") from None


@functools.lru_cache(maxsize=4096)
def _normalize(name: str) -> str:
    from ens.exceptions import ENSException
    from ens.utils import normalize_name

    try:
        return str(normalize_name(name))
    except ENSException as exc:
        raise ValueError(str(exc)) from None
