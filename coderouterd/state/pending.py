"""A replay record as the request path hands it over, before it is built (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import msgspec


@dataclass(frozen=True, slots=True)
class PendingReplay:
    """A replay record before compression."""

    request_id: str
    ts: float
    dialect: str
    profile: str
    provider: str | None
    stream: bool
    headers: Mapping[str, str]
    # The body's top-level fields as the client sent them (`profile` removed).
    request_fields: Mapping[str, msgspec.Raw]
    response_body: bytes
    response_truncated: bool
    # Which conversation ingress read the body through, if any: a hint for the memo.
    conversation: int | None = None
    # The body as sent, when it is exactly `request_fields` encoded: what a
    # delta is cut from.
    body: bytes | None = None
    # Which body of the conversation this is, and how many first bytes it
    # shares with the one before, as ingress compared them (0: unknown).
    turn: int = 0
    shared: int = 0

    @property
    def size(self) -> int:
        """Bytes this record holds alive until built: its body and its response."""
        return sum(len(v) for v in self.request_fields.values()) + len(self.response_body)
