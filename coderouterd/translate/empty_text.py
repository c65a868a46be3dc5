"""Empty text blocks, which Anthropic refuses and local servers write (pure).

A local server's Anthropic API (Ollama, llama.cpp) may answer with a text
block holding nothing, or only whitespace ("\n\n" before a tool call),
beside a tool call or before thinking; the client keeps it in its history.
Claude refuses the whole request over it ("text content blocks must be
non-empty", "… must contain non-whitespace text"), so once such a history
falls back to Claude, every later turn would fail. For a backend that is Claude (the
registry's `signed_thinking`) the history's empty text blocks are left out,
and a message left with nothing is left out with them, as Anthropic joins
the turns around it.
"""

from __future__ import annotations

import re

import msgspec

from coderouterd.translate.anthropic_request import without_blocks
from coderouterd.translate.types import Degradation

# What an empty or blank text value looks like in JSON (whitespace written
# as itself or escaped). Most histories hold none, and are not decoded.
_BLANK_TEXT = re.compile(rb'"text"\s*:\s*"(?:[ \t\r\n]|\\[nrt])*"')

EMPTY_TEXT_DROPPED = Degradation(
    "content.text", "empty text blocks are not sent to Claude, which refuses them"
)


def without_empty_text(messages: msgspec.Raw) -> msgspec.Raw | None:
    """The history without empty text blocks, or None when it has none."""
    if _BLANK_TEXT.search(memoryview(messages)) is None:
        return None
    return without_blocks(messages, _empty_text)


def _empty_text(block: object) -> bool:
    if not isinstance(block, dict) or block.get("type") != "text":
        return False
    text = block.get("text")
    return not text or (isinstance(text, str) and not text.strip())
