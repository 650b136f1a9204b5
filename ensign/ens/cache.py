"""A bounded in-process TTL cache for name lookups, with negative entries.

The lookup (``ensign/ens/lookup.py``) resolves names through the chain and a CCIP-Read gateway,
which costs an ``eth_call``, one or two HTTP hops and a callback ``eth_call``. Names change
rarely, so answers are kept for a while:

=====================  ==========================================================  =========
setting                meaning                                                     default
=====================  ==========================================================  =========
``ttl``                seconds a found value is served from the cache               300
``negative_ttl``       seconds a "not found" or "invalid" answer is remembered      60
``max_entries``        entries kept; the least recently used goes first             10000
=====================  ==========================================================  =========

``CacheSettings()`` gives the defaults; ``CacheSettings(ttl=0)`` turns caching of found values
off, ``CacheSettings(negative_ttl=0)`` turns negative caching off.

Negative entries hold the reason the lookup failed, so a cached miss raises the same error, with
the same message, as the lookup that produced it. Failures of the infrastructure (node or gateway
unreachable) are never cached: the next call tries again.
"""

from __future__ import annotations

import copy
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from ensign.errors import EnsignError

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True)
class CacheSettings:
    """Lifetimes and size bound of a :class:`TTLCache` (see the module docstring for the table).

    :param ttl: seconds a found value stays fresh (default 300, 0 disables)
    :param negative_ttl: seconds a miss stays fresh (default 60, 0 disables)
    :param max_entries: upper bound on entries, positive and negative together (default 10000)
    """

    ttl: float = 300.0
    negative_ttl: float = 60.0
    max_entries: int = 10_000

    def __post_init__(self) -> None:
        if self.ttl < 0 or self.negative_ttl < 0:
            raise ValueError("cache lifetimes must not be negative")
        if self.max_entries < 1:
            raise ValueError("max_entries must be at least 1")


@dataclass(frozen=True)
class CacheHit(Generic[V]):
    """A fresh cache entry: either ``value`` or, for a negative entry, the ``error`` to raise."""

    value: V | None
    error: EnsignError | None = None

    def unwrap(self) -> V:
        """The cached value, or raise (a fresh copy of) the cached error of a negative entry."""
        if self.error is not None:
            # A copy per raise: raising one instance again and again would grow its traceback.
            raise copy.copy(self.error)
        return self.value  # type: ignore[return-value]


@dataclass
class _Entry(Generic[V]):
    hit: CacheHit[V]
    expires_at: float


class TTLCache(Generic[K, V]):
    """Least-recently-used map whose entries expire; not thread-safe (one event loop owns it).

    :param settings: lifetimes and size bound
    :param clock: monotonic seconds; tests pass a fake clock to step time
    """

    def __init__(self, settings: CacheSettings | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings or CacheSettings()
        self._clock = clock
        self._entries: OrderedDict[K, _Entry[V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> CacheHit[V] | None:
        """The fresh entry for ``key``, or ``None`` when absent or expired (expired ones are dropped)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires_at <= self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry.hit

    def put(self, key: K, value: V, *, missing: bool = False) -> None:
        """Remember a found value for ``settings.ttl`` seconds.

        ``missing=True`` stores a value that stands for "nothing there" (an empty text record) for
        ``settings.negative_ttl`` seconds instead, like a miss.
        """
        self._store(key, CacheHit(value), self.settings.negative_ttl if missing else self.settings.ttl)

    def put_error(self, key: K, error: EnsignError) -> None:
        """Remember a miss (``NotFound``, ``InvalidRequest``) for ``settings.negative_ttl`` seconds."""
        # A copy keeps neither the traceback nor the frames it references alive in the cache.
        self._store(key, CacheHit(None, copy.copy(error)), self.settings.negative_ttl)

    def invalidate(self, key: K) -> None:
        """Forget ``key`` (no error when it is not cached)."""
        self._entries.pop(key, None)

    def clear(self) -> None:
        """Forget everything."""
        self._entries.clear()

    def _store(self, key: K, hit: CacheHit[V], ttl: float) -> None:
        if ttl <= 0:
            self._entries.pop(key, None)
            return
        now = self._clock()
        self._entries[key] = _Entry(hit, now + ttl)
        self._entries.move_to_end(key)
        # The least recently used entry goes first; expired ones are dropped when next read,
        # which keeps a put O(1) instead of scanning the whole map.
        while len(self._entries) > self.settings.max_entries:
            self._entries.popitem(last=False)
