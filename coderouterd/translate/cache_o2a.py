"""An OpenAI client's prompt-cache markers on the Anthropic request made from it (pure).

Clients written for OpenRouter or LiteLLM (Cline, Roo Code, Kilo) mark
where Anthropic should cache the prompt with `cache_control` (`{"type":
"ephemeral"}`, maybe with a `ttl`), in the places OpenRouter documents: on
a content part (text or image, of a system, user, assistant or tool
message), on a tool, or at the top level (Anthropic's automatic caching);
LiteLLM also takes one on a message itself, which stands for its last
part. Anthropic caches only up to a marked block, so each marker goes on
the block made from what carried it; a marker whose part is not sent (a
blank text, a kind Anthropic has no block for) goes with it, recorded.

Anthropic takes at most `MAX_BREAKPOINTS` markers in a request, the
top-level one included. Past that the first ones, in the order Anthropic
reads the prompt (tools, system, messages, then the top level), are left
out (recorded): a later marker caches a longer prefix, and each one looks
back for the cache an earlier one wrote, so the last ones keep a growing
conversation cached.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from coderouterd.translate.anthropic_request import CACHE_CONTROL_DROPPED
from coderouterd.translate.types import Notes

CACHE_CONTROL = "cache_control"
MAX_BREAKPOINTS = 4
_LOST = (
    "content.cache_control",
    "markers that are no object, or on parts that are not sent, are left out",
)


class CacheMarks:
    """The markers of one request's translation: carried onto the blocks
    (`carry` false: the backend takes none, so each is dropped, recorded),
    counted, so that a request without any costs nothing more."""

    def __init__(self, notes: Notes, *, carry: bool = True) -> None:
        self._notes = notes
        self._carry = carry
        self.count = 0

    def copy(self, source: Mapping[str, Any], block: dict[str, Any]) -> dict[str, Any]:
        """`block`, with the marker of `source` (the part, message, tool or
        request it was made from) when it has one and `block` has none yet."""
        marker = source.get(CACHE_CONTROL)
        if marker is None or CACHE_CONTROL in block:
            return block
        if not self._carry:
            self._notes.add(CACHE_CONTROL_DROPPED.field, CACHE_CONTROL_DROPPED.reason)
        elif isinstance(marker, Mapping):
            block[CACHE_CONTROL] = dict(marker)
            self.count += 1
        else:
            self._notes.add(*_LOST)
        return block

    def last(self, message: Mapping[str, Any], blocks: list[dict[str, Any]]) -> None:
        """A message's own marker, on the last block made from it."""
        if blocks:
            self.copy(message, blocks[-1])
        else:
            self.lost(message)

    def lost(self, source: Mapping[str, Any]) -> None:
        """`source` is not sent: its marker, if any, goes with it."""
        if source.get(CACHE_CONTROL) is not None:
            self._notes.add(*_LOST)

    def cap(self, request: dict[str, Any]) -> None:
        """Leaves out the first markers of a request holding more than Anthropic takes."""
        if self.count <= MAX_BREAKPOINTS:
            return
        marked = [item for item in _in_prompt_order(request) if CACHE_CONTROL in item]
        extra = len(marked) - MAX_BREAKPOINTS
        if extra <= 0:
            return
        for item in marked[:extra]:
            del item[CACHE_CONTROL]
        self._notes.add(
            CACHE_CONTROL,
            f"Anthropic takes at most {MAX_BREAKPOINTS} breakpoints; the first {extra} left out",
        )


def system_prompt(systems: list[list[dict[str, Any]]], marks: CacheMarks) -> str | list[Any]:
    """The system messages' text parts (blank ones included) as Anthropic's
    `system`: one string (parts joined by a line break, messages by a blank
    line), or, when a part is marked, its text blocks, each part one block
    so that a marker covers just what it covered, blank ones left out."""
    if not marks.count or not any(CACHE_CONTROL in b for blocks in systems for b in blocks):
        texts = ("\n".join(b["text"] for b in blocks) for blocks in systems)
        return "\n\n".join(t for t in texts if t)
    kept = []
    for block in (b for blocks in systems for b in blocks):
        if block["text"].strip():
            kept.append(block)
        elif CACHE_CONTROL in block:
            marks.lost(block)
    return kept


def _in_prompt_order(request: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from _dicts(request.get("tools"))
    yield from _dicts(request.get("system"))
    for message in _dicts(request.get("messages")):
        for block in _dicts(message.get("content")):
            if block.get("type") == "tool_result":
                yield from _dicts(block.get("content"))
            yield block
    yield request


def _dicts(items: object) -> Iterator[dict[str, Any]]:
    if isinstance(items, list):
        yield from (item for item in items if isinstance(item, dict))
