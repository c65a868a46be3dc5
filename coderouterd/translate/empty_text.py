"""Empty text blocks, which Anthropic refuses and local servers write (pure).

A local server's Anthropic API (Ollama, llama.cpp) may answer with a text
block holding nothing, beside a tool call or before thinking; the client
keeps it in its history. Claude refuses the whole request over it ("text
content blocks must be non-empty"), so once such a history falls back to
Claude, every later turn would fail. For a backend that is Claude (the
registry's `signed_thinking`) the history's empty text blocks are left out,
and a message left with nothing is left out with them, as Anthropic joins
the turns around it.
"""

from __future__ import annotations

import msgspec

from coderouterd.translate.anthropic_request import without_blocks
from coderouterd.translate.types import Degradation

# The bytes an empty text block cannot be without: compact, and the Python
# SDKs' spacing. Most histories have neither, and are not decoded.
_MARKS = (b'"text":""', b'"text": ""')

EMPTY_TEXT_DROPPED = Degradation(
    "content.text", "empty text blocks are not sent to Claude, which refuses them"
)


def without_empty_text(messages: msgspec.Raw) -> msgspec.Raw | None:
    """The history without empty text blocks, or None when it has none."""
    raw = bytes(messages)
    if not any(mark in raw for mark in _MARKS):
        return None
    return without_blocks(messages, _empty_text)


def _empty_text(block: object) -> bool:
    return isinstance(block, dict) and block.get("type") == "text" and not block.get("text")
