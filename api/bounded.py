"""Caches a client can fill, bounded by the memory they hold, not only by how many entries.

A cache keyed by what clients send (query texts, persisted-query hashes, plans)
would otherwise let one client pin as much memory as it can send distinct keys
times the largest entry: each is given a byte estimate here and the cache
evicts, least recently used first, past its byte bound.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from cachetools import LRUCache

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedLRU(LRUCache[K, V], Generic[K, V]):
    """An LRU cache bounded by entries and by bytes (as ``sizeof`` estimates
    them). An entry over ``max_item_bytes`` is not kept at all, so one large
    value cannot flush everything else."""

    def __init__(
        self,
        max_entries: int,
        max_bytes: int,
        sizeof: Callable[[V], int],
        max_item_bytes: int | None = None,
    ) -> None:
        super().__init__(maxsize=max_bytes, getsizeof=sizeof)
        self.max_entries = max_entries
        self.max_item_bytes = max_bytes if max_item_bytes is None else max_item_bytes

    def __setitem__(self, key: K, value: V) -> None:
        if self.getsizeof(value) > self.max_item_bytes:
            self.pop(key, None)  # a stale smaller value must not stay behind
            return
        super().__setitem__(key, value)
        while len(self) > self.max_entries:
            self.popitem()
