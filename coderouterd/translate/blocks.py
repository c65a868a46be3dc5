"""Anthropic content blocks written as stream events, one at a time (pure).

Shared by every translator that produces an Anthropic stream: block indices
are consecutive, one block is open at a time and is closed before the next
starts, and whitespace that would open a text block is held until real text
follows (and dropped otherwise), so no text block starts with or consists of
whitespace. Thinking blocks carry an empty signature: they are unsigned.
"""

from __future__ import annotations

from typing import Any

import msgspec

from coderouterd.translate.repair import ToolCall
from coderouterd.translate.response_o2a import Piece, ToolIds

Event = tuple[str, dict[str, Any]]


class BlockWriter:
    """Collects events; `take` hands over those produced since the last call."""

    __slots__ = ("_events", "_ids", "_next_index", "_ws", "open", "started", "tool_used")

    def __init__(self, ids: ToolIds) -> None:
        self._ids = ids
        self._events: list[Event] = []
        self._next_index = 0
        self._ws: list[str] = []  # whitespace waiting for a text block
        self.open: str | None = None  # type of the open block
        self.started = False  # a block was opened: the engine's commit point
        self.tool_used = False

    @property
    def index(self) -> int:
        """Index of the open block (or of the last one closed)."""
        return self._next_index - 1

    def emit(self, event: str, data: dict[str, Any]) -> None:
        self._events.append((event, {"type": event, **data}))

    def take(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    def open_block(self, kind: str, content_block: dict[str, Any]) -> int:
        self.close()
        index = self._next_index
        self._next_index += 1
        self.open = kind
        self.started = True
        self.emit("content_block_start", {"index": index, "content_block": content_block})
        return index

    def close(self) -> None:
        if self.open is None:
            return
        self.emit("content_block_stop", {"index": self.index})
        self.open = None

    def delta(self, delta: dict[str, Any]) -> None:
        self.emit("content_block_delta", {"index": self.index, "delta": delta})

    def pieces(self, pieces: list[Piece]) -> None:
        for piece in pieces:
            if isinstance(piece, ToolCall):
                self.lifted(piece)
            elif piece[0] == "thinking":
                self.thinking(piece[1])
            else:
                self.text(piece[1])

    def text(self, text: str) -> None:
        if self.open != "text":
            if not text.strip():
                self._ws.append(text)
                return
            text = ("".join(self._ws) + text).lstrip()
            self.open_block("text", {"type": "text", "text": ""})
        self._ws = []
        self.delta({"type": "text_delta", "text": text})

    def thinking(self, text: str) -> None:
        if self.open != "thinking":
            self._ws = []
            self.open_block("thinking", {"type": "thinking", "thinking": "", "signature": ""})
        self.delta({"type": "thinking_delta", "thinking": text})

    def tool_use(self, name: str) -> int:
        """Opens a tool_use block (input `{}`; the arguments follow as deltas)."""
        self._ws = []
        self.tool_used = True
        block = {"type": "tool_use", "id": self._ids.assign(), "name": name, "input": {}}
        return self.open_block("tool_use", block)

    def lifted(self, call: ToolCall) -> None:
        self.tool_use(call.name)
        self.delta({"type": "input_json_delta", "partial_json": json_text(call.arguments)})
        self.close()


def json_text(value: object) -> str:
    return msgspec.json.encode(value).decode()
