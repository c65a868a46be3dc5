"""Whether a word begins the name of a tool offered (pure): what the repair
asks of each word that may open a call written as text.

Every prefix of names this short, this many characters in all, is a set of
a few thousand strings checked in one lookup; beyond it (a client may name
a tool at any length) the sorted names are searched instead, since the
prefixes grow with the square of a name's length.
"""

from __future__ import annotations

import bisect
import functools

_SHORT_NAME, _SHORT_TOTAL = 64, 4096

Starts = frozenset[str] | tuple[str, ...]


@functools.lru_cache(maxsize=64)
def known_starts(tool_names: frozenset[str]) -> Starts:
    """What begins_a_name searches; every request of a session offers the
    same tools, so it is built once for them."""
    if sum(map(len, tool_names)) <= _SHORT_TOTAL and all(len(n) <= _SHORT_NAME for n in tool_names):
        return frozenset(n[:k] for n in tool_names for k in range(1, len(n) + 1))
    return tuple(sorted(tool_names))


def begins_a_name(known: Starts, text: str) -> bool:
    """Whether `text` begins one of the names `known` holds (known_starts)."""
    if isinstance(known, frozenset):
        return text in known
    i = bisect.bisect_left(known, text)
    return i < len(known) and known[i].startswith(text)
