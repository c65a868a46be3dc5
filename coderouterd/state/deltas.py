"""Replay bodies stored as what they add to the conversation's last record (pure).

A coding agent's turn is the previous turn's body with a few messages more:
the same bytes up to (about) the end of the history, then the new messages
and the fields after them. Splitting such a body into pieces (pieces.py)
means decoding and hashing its new messages and looking up every piece it
names; storing it as a delta means one compare with the last body and a
copy of the few KB that follow the bytes they share. A delta record names
its base, the conversation's previous record, and how many of the base
body's first bytes it starts with; its own blob holds the rest.

Chains are bounded: after MAX_DEPTH deltas a conversation's next record is
stored in pieces again, so reading a record back reads at most MAX_DEPTH
earlier ones, and a base that was lost costs at most that many records.
Retention, which deletes the oldest records first, stores a record whose
base it deletes whole first (retention.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from coderouterd.lru import MEMO_BYTES, SizedLRU

MAX_DEPTH = 64
# A body sharing less than this with its base is stored in pieces: a delta
# then saves little, and a short chain is cheaper to read back.
MIN_SHARED = 4096


class Base(NamedTuple):
    """A conversation's last record: what the next may be stored against."""

    request_id: str
    body: bytes
    # Deltas between it and the record stored in pieces it leads back to.
    depth: int
    # Which body of its conversation it is, as ingress counted (0: unknown).
    turn: int = 0


def shared_prefix(a: bytes, b: bytes | memoryview, known: int = 0) -> int:
    """How many first bytes `a` and `b` have in common, `known` of them
    being known to already.

    Doubling the step while the bytes agree, then halving it: the bytes
    compared add up to about twice those shared past `known`, each compare a
    memcmp inside bytes.startswith.
    """
    view = memoryview(b)
    lo, limit = known, min(len(a), len(view))
    # a[:lo] == b[:lo] throughout.
    step = 64
    while lo + step <= limit and a.startswith(view[lo : lo + step], lo):
        lo += step
        step *= 2
    # The answer is below hi + 1.
    hi = min(lo + step, limit)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a.startswith(view[lo:mid], lo):
            lo = mid
        else:
            hi = mid - 1
    return lo


class Bases:
    """The last record of recent conversations (bounded LRU, by count and by
    the bytes of their bodies; only a cache: a conversation it forgets has its
    next record stored in pieces)."""

    def __init__(self, max_conversations: int = 64, max_bytes: int = MEMO_BYTES) -> None:
        self._last: SizedLRU[object, Base] = SizedLRU(
            max_conversations, max_bytes, lambda base: len(base.body)
        )

    def __len__(self) -> int:
        return len(self._last)

    def size(self) -> tuple[int, int]:
        """Conversations remembered, and the bytes of their last bodies."""
        return len(self._last), self._last.bytes

    def against(
        self, conversation: object, body: bytes, turn: int = 0, shared: int = 0
    ) -> tuple[Base, int] | None:
        """The base `body` may be stored against and the bytes they share, if any.

        `turn`, `shared`: which body of the conversation `body` is, and how
        many first bytes it is known to share with the one before; when the
        base is that one, only the bytes after those are compared.
        """
        base = self._last.get(conversation)
        if base is None or base.depth >= MAX_DEPTH:
            return None
        # Past the known bytes the two usually differ soon: the client moved
        # its cache breakpoint off the message that ended the last turn.
        known = shared if shared and base.turn and base.turn == turn - 1 else 0
        shared = shared_prefix(base.body, body, known)
        if shared < MIN_SHARED or 2 * shared < len(body):
            return None
        return base, shared

    def note(self, conversation: object, base: Base) -> None:
        self._last.put(conversation, base)

    def drop(self, conversation: object) -> None:
        self._last.pop(conversation)

    def clear(self) -> None:
        self._last.clear()


def rebuild(root: bytes, deltas: Iterable[tuple[int, bytes]]) -> bytes:
    """A body from the record its chain starts at and each delta after it,
    oldest first: (bytes kept of the body before, bytes added)."""
    body = root
    for keep, added in deltas:
        if keep > len(body):
            raise ValueError(f"a delta keeps {keep} bytes of a {len(body)}-byte body")
        body = body[:keep] + added
    return body
