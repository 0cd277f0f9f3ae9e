"""An in-process cache bounded both in entries and in bytes, evicting the oldest insertion.

A `dict` subclass, so that the hot path reads it with the plain C `get` and pays nothing
for the bounds; every write goes through `put` / `drop` / `reset`, which keep the count
of bytes. What an entry weighs is the `weigh(key, value)` given: an estimate of its
memory that bench/memory.py checks against tracemalloc.

Oldest-insertion eviction (dicts keep order) needs no bookkeeping on a hit. An entry in
use that is pushed out is simply verified or read again and put back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BoundedCache(dict[K, V], Generic[K, V]):
    def __init__(self, max_entries: int, max_bytes: int, weigh: Callable[[K, V], int]) -> None:
        super().__init__()
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._weigh = weigh
        self.bytes = 0
        self.evictions = 0

    def put(self, key: K, value: V) -> None:
        """Insert (or replace) `key`; evict the oldest entries until both bounds hold.
        Nothing is kept when the bounds are 0 or one entry alone is over them."""
        weight = self._weigh(key, value)
        if not self.max_entries or weight > self.max_bytes:
            return
        self.drop(key)
        while self and (len(self) >= self.max_entries or self.bytes + weight > self.max_bytes):
            oldest = next(iter(self))
            self.bytes -= self._weigh(oldest, dict.pop(self, oldest))
            self.evictions += 1
        dict.__setitem__(self, key, value)
        self.bytes += weight

    def drop(self, key: K) -> None:
        value = dict.pop(self, key, _MISSING)
        if value is not _MISSING:
            self.bytes -= self._weigh(key, value)  # type: ignore[arg-type]

    def reset(self) -> None:
        dict.clear(self)
        self.bytes = 0


_MISSING = object()
