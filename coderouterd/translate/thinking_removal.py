"""`thinking` taken out of an Anthropic request, and what needs it with it (pure).

Whatever removes `thinking` (a backend that cannot think, a tool loop
Anthropic would refuse with it on, a max_tokens that leaves no room for a
budget) removes it here: the `clear_thinking` edits of
`context_management`, which Claude Code sends beside thinking, are refused
by Anthropic on a request without thinking, so they go too, and
`context_management` with them when nothing else is left in it.
"""

from __future__ import annotations

from collections.abc import MutableMapping

import msgspec

from coderouterd.translate.types import Degradation, read_json

_encode = msgspec.json.Encoder().encode

CLEAR_THINKING_DROPPED = Degradation(
    "context_management.edits", "clear_thinking edits dropped with thinking"
)


def remove_thinking(
    fields: MutableMapping[str, msgspec.Raw], why: Degradation
) -> list[Degradation]:
    """`thinking` removed from the request's raw top-level `fields`, whatever
    it asked, with the edits that need it; `why` and the edits' Degradation
    for what went, [] when the request had no thinking."""
    if fields.pop("thinking", None) is None:
        return []
    degraded = [why]
    raw = fields.get("context_management")
    value = read_json(raw, "context_management") if raw is not None else None
    edits = value.get("edits") if isinstance(value, dict) else None
    if isinstance(value, dict) and isinstance(edits, list):
        kept = [e for e in edits if not _clears_thinking(e)]
        if len(kept) != len(edits):
            degraded.append(CLEAR_THINKING_DROPPED)
            if kept or len(value) > 1:
                fields["context_management"] = msgspec.Raw(_encode({**value, "edits": kept}))
            else:
                del fields["context_management"]
    return degraded


def _clears_thinking(edit: object) -> bool:
    return isinstance(edit, dict) and str(edit.get("type", "")).startswith("clear_thinking")
