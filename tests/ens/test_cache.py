"""TTLCache: expiry, negative entries, the size bound and LRU order."""

from __future__ import annotations

import pytest

from ensign.errors import InvalidRequest, NotFound
from ensign.ens.cache import CacheSettings, TTLCache


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(**kwargs: float) -> tuple[TTLCache[str, str], FakeClock]:
    clock = FakeClock()
    return TTLCache(CacheSettings(**kwargs), clock=clock), clock  # type: ignore[arg-type]


def test_value_is_served_until_its_ttl_passes() -> None:
    cache, clock = make(ttl=10)
    cache.put("alice.eth", "0xabc")
    clock.now += 9.9
    hit = cache.get("alice.eth")
    assert hit is not None and hit.unwrap() == "0xabc"
    clock.now += 0.1
    assert cache.get("alice.eth") is None
    assert len(cache) == 0


def test_negative_entry_reraises_the_same_error_for_its_own_ttl() -> None:
    cache, clock = make(ttl=100, negative_ttl=5)
    cache.put_error("ghost.eth", NotFound("ghost.eth has no dm3 profile"))
    hit = cache.get("ghost.eth")
    assert hit is not None
    with pytest.raises(NotFound, match="ghost.eth has no dm3 profile"):
        hit.unwrap()
    clock.now += 5
    assert cache.get("ghost.eth") is None


def test_invalid_answers_are_cached_negatively_too() -> None:
    cache, _ = make()
    cache.put_error("bad.eth", InvalidRequest("signature does not match"))
    hit = cache.get("bad.eth")
    assert hit is not None and isinstance(hit.error, InvalidRequest)


def test_zero_ttl_disables_caching_and_drops_an_older_entry() -> None:
    cache, _ = make(ttl=0, negative_ttl=0)
    cache.put("a", "1")
    assert cache.get("a") is None
    cache2, _ = make(ttl=10, negative_ttl=0)
    cache2.put("a", "1")
    cache2.put_error("a", NotFound("gone"))
    assert cache2.get("a") is None


def test_size_bound_evicts_the_least_recently_used() -> None:
    cache, _ = make(max_entries=3)
    for key in ("a", "b", "c"):
        cache.put(key, key.upper())
    assert cache.get("a") is not None  # "a" is now the most recently used
    cache.put("d", "D")
    assert len(cache) == 3
    assert cache.get("b") is None
    assert [k for k in ("a", "c", "d") if cache.get(k) is not None] == ["a", "c", "d"]


def test_invalidate_and_clear() -> None:
    cache, _ = make()
    cache.put("a", "1")
    cache.put("b", "2")
    cache.invalidate("a")
    cache.invalidate("missing")
    assert cache.get("a") is None and cache.get("b") is not None
    cache.clear()
    assert len(cache) == 0


@pytest.mark.parametrize("kwargs", [{"ttl": -1}, {"negative_ttl": -1}, {"max_entries": 0}])
def test_settings_reject_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        CacheSettings(**kwargs)  # type: ignore[arg-type]


def test_a_value_standing_for_nothing_gets_the_negative_ttl() -> None:
    cache, clock = make(ttl=100, negative_ttl=5)
    cache.put("k", "", missing=True)
    clock.now += 4.9
    assert cache.get("k") is not None
    clock.now += 0.1
    assert cache.get("k") is None
