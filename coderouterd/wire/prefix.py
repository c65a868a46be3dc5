"""Does a JSON array start the way an earlier one did? (pure)

A conversation resends its history with more at the end, and a client may
rewrite the last few items (moving a cache breakpoint). Caches of such
histories (replay pieces, translations) keep where each item of the last one
ended, and ask how many of those first items a new history still has, byte
for byte.
"""

from __future__ import annotations

from collections.abc import Sequence

# Bytes compared first, just before an item's end: two conversations'
# histories differ there soonest, so most candidates fail on these.
PROBE = 16


def kept_items(
    old: bytes,
    ends: Sequence[int],
    new: bytes | memoryview,
    *,
    back: int,
    delimiters: frozenset[int],
) -> int:
    """How many of `old`'s first items `new` starts with: `ends` are the
    offsets in `old` of the delimiter after each item. Tried from the last
    item back, at most `back` of them; the first whose end falls on one of
    `delimiters` in `new` with every byte before it equal counts. 0 if none."""
    for k in range(len(ends), max(len(ends) - back, 0), -1):
        end = ends[k - 1]
        if end >= len(new) or new[end] not in delimiters:
            continue
        probe = max(end - PROBE, 0)
        if old.startswith(new[probe:end], probe) and old.startswith(new[:probe]):
            return k
    return 0
