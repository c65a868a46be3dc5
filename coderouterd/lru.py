"""A least-recently-used map bounded by its number of entries and their size (pure).

The memos of recent conversations (ingress's bodies, the replay recorder's
histories and last records) each keep one entry per conversation; a long
session's entry nears 1 MB, so a count alone does not bound their memory.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

# What each memo of recent conversations may hold by default.
MEMO_BYTES = 32 << 20

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SizedLRU(Generic[K, V]):
    """Entries by key, least recently used first. Putting one evicts the
    oldest while there are more than `max_entries` or their sizes add up to
    more than `max_bytes`; the entry just put stays, however large."""

    def __init__(self, max_entries: int, max_bytes: int, size: Callable[[V], int]) -> None:
        self._max = max_entries
        self._max_bytes = max_bytes
        self._size = size
        self._bytes = 0
        self._entries: collections.OrderedDict[K, V] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    @property
    def bytes(self) -> int:
        return self._bytes

    def get(self, key: K) -> V | None:
        """The entry, without making it more recent."""
        return self._entries.get(key)

    def newest_first(self) -> Iterator[tuple[K, V]]:
        return reversed(self._entries.items())

    def put(self, key: K, value: V) -> list[tuple[K, V]]:
        """Store `value` as the most recent entry; return the entries evicted."""
        self.pop(key)
        self._entries[key] = value
        self._bytes += self._size(value)
        evicted = []
        while len(self._entries) > self._max or (
            self._bytes > self._max_bytes and len(self._entries) > 1
        ):
            old_key, old = self._entries.popitem(last=False)
            self._bytes -= self._size(old)
            evicted.append((old_key, old))
        return evicted

    def pop(self, key: K) -> V | None:
        gone = self._entries.pop(key, None)
        if gone is not None:
            self._bytes -= self._size(gone)
        return gone

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0
