"""The bounded cache both verifier caches use (authgate/bounded.py): entries and bytes."""

from __future__ import annotations

from authgate.bounded import BoundedCache


def _cache(entries: int, size: int) -> BoundedCache[str, str]:
    return BoundedCache(entries, size, lambda key, value: len(key) + len(value))


def test_the_entry_bound_evicts_the_oldest() -> None:
    cache = _cache(3, 1000)
    for key in "abcd":
        cache.put(key, "v")
    assert list(cache) == ["b", "c", "d"]
    assert (cache.evictions, cache.bytes) == (1, 6)


def test_the_byte_bound_evicts_until_the_new_entry_fits() -> None:
    cache = _cache(100, 10)
    cache.put("a", "1234")  # 5 bytes
    cache.put("b", "1234")  # 10
    cache.put("c", "12")  # 3 more: "a" must go
    assert list(cache) == ["b", "c"]
    assert cache.bytes == 8
    cache.put("d", "123456789")  # 10 alone: everything else goes
    assert list(cache) == ["d"] and cache.bytes == 10


def test_an_entry_over_the_whole_bound_or_a_zero_bound_keeps_nothing() -> None:
    cache = _cache(100, 10)
    cache.put("a", "1")
    cache.put("big", "x" * 20)
    assert list(cache) == ["a"]
    off = _cache(0, 1000)
    off.put("a", "1")
    assert not off and off.bytes == 0


def test_replacing_dropping_and_resetting_keep_the_byte_count() -> None:
    cache = _cache(100, 1000)
    cache.put("a", "1")
    cache.put("a", "12345")
    assert cache.bytes == 6 and len(cache) == 1
    cache.drop("a")
    cache.drop("missing")
    assert cache.bytes == 0 and not cache
    cache.put("b", "1")
    cache.reset()
    assert cache.bytes == 0 and not cache
