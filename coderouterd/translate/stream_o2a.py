"""OpenAI chat.completion.chunk stream → Anthropic SSE events (pure).

The translator always produces a valid Anthropic sequence: `message_start`
(complete usage, input estimated until the upstream reports it), blocks
opened and closed one at a time with consecutive indices, `message_delta`
with the stop reason and cumulative usage, `message_stop`.

Tool-call fragments are matched to calls like this: with an `index`, a
fragment continues the latest call of that index unless it carries a new
`id` (Ollama reuses index 0 for every call); without an `index` (Gemini), a
fragment with a new `id`, or with a `name` and no `id`, starts a new call,
anything else continues the current one. A fragment that belongs to a call
whose block is already closed (interleaved parallel calls, not seen from any
known server) cannot be delivered without breaking the sequence: it is
dropped and counted in `dropped_fragments`. A call's block opens once its
name is known; fragments before that are held. Arguments are passed through
as `input_json_delta` verbatim (after `input: {}` in the start event);
unlike the non-streaming path they are not validated.

Thinking from `reasoning_content` / `reasoning` or from `<think>` text is a
thinking block with an empty signature (unsigned, see response_o2a).
Whitespace that would open a text block is held until real text follows and
dropped otherwise, so no block starts with or consists of whitespace.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from coderouterd.translate.repair import ToolCall
from coderouterd.translate.response_o2a import (
    OutputPipeline,
    Piece,
    ToolIds,
    anthropic_usage,
    first_choice,
    reasoning_of,
    stop_reason_of,
    text_of,
)
from coderouterd.translate.types import OutputFilters

Event = tuple[str, dict[str, Any]]


@dataclass(slots=True)
class _Call:
    upstream_index: int | None
    upstream_id: str | None
    name: str = ""
    block: int | None = None
    closed: bool = False
    held: list[str] = field(default_factory=list)


class OpenAIToAnthropicStream:
    """Feed decoded chunks; get Anthropic events back. Call `finish` at the end."""

    def __init__(
        self,
        *,
        message_id: str,
        model: str,
        filters: OutputFilters,
        tool_names: frozenset[str],
        estimated_input_tokens: int,
        assume_think_open: bool = False,
    ) -> None:
        self._message_id = message_id
        self._model = model
        self._estimated_input = estimated_input_tokens
        self._pipeline = OutputPipeline(filters, tool_names, assume_think_open=assume_think_open)
        self._ids = ToolIds(message_id)
        self._events: list[Event] = []
        self._open: str | None = None  # type of the open block
        self._next_index = 0
        self._ws: list[str] = []  # whitespace waiting for a text block
        self._call: _Call | None = None
        self._by_index: dict[int, _Call] = {}
        self._upstream_ids: set[str] = set()
        self._tool_used = False
        self._finish_reason: object = None
        self._upstream_usage: object = None
        self._chars = 0
        self._message_started = False
        self._started = False
        self._finished = False
        self.dropped_fragments = 0

    @property
    def started(self) -> bool:
        """A content event has been produced: the engine's commit point."""
        return self._started

    @property
    def repairs(self) -> int:
        return self._pipeline.repairs

    @property
    def usage(self) -> dict[str, int]:
        return self._usage()[0]

    @property
    def usage_estimated(self) -> bool:
        return self._usage()[1]

    def _usage(self) -> tuple[dict[str, int], bool]:
        return anthropic_usage(
            self._upstream_usage,
            estimated_input_tokens=self._estimated_input,
            output_chars=self._chars,
        )

    def feed(self, chunk: Mapping[str, Any]) -> list[Event]:
        if self._finished:
            return []
        if isinstance(chunk.get("usage"), Mapping):
            self._upstream_usage = chunk["usage"]
        self._start_message()
        choice = first_choice(chunk.get("choices"))
        delta = choice.get("delta")
        if isinstance(delta, Mapping):
            self._delta(delta)
        if choice.get("finish_reason") is not None:
            self._finish_reason = choice["finish_reason"]
        return self._take()

    def finish(self) -> list[Event]:
        """End of stream ([DONE] or a clean EOF). Idempotent."""
        if self._finished:
            return []
        self._start_message()
        self._pieces(self._pipeline.flush())
        self._close()
        self._finished = True
        stop_reason = "tool_use" if self._tool_used else stop_reason_of(self._finish_reason)
        self._emit(
            "message_delta",
            {"delta": {"stop_reason": stop_reason, "stop_sequence": None}, "usage": self.usage},
        )
        self._emit("message_stop", {})
        return self._take()

    def _take(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    def _emit(self, event: str, data: dict[str, Any]) -> None:
        self._events.append((event, {"type": event, **data}))

    def _start_message(self) -> None:
        if self._message_started:
            return
        self._message_started = True
        usage = dict(self.usage, output_tokens=0)
        message: dict[str, Any] = {
            "id": self._message_id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        self._emit("message_start", {"message": message})

    def _delta(self, delta: Mapping[str, Any]) -> None:
        reasoning = reasoning_of(delta)
        if reasoning:
            self._chars += len(reasoning)
            self._thinking(reasoning)
        for key in ("content", "refusal"):
            text = text_of(delta.get(key))
            if text:
                self._chars += len(text)
                self._pieces(self._pipeline.feed(text))
        calls = delta.get("tool_calls")
        if not isinstance(calls, list):
            legacy = delta.get("function_call")
            calls = [{"function": legacy}] if isinstance(legacy, Mapping) else []
        fragments = [c for c in calls if isinstance(c, Mapping)]
        if fragments:
            self._pieces(self._pipeline.flush())
        for fragment in fragments:
            self._fragment(fragment)

    # blocks

    def _open_block(self, kind: str, content_block: dict[str, Any]) -> int:
        self._close()
        index = self._next_index
        self._next_index += 1
        self._open = kind
        self._started = True
        self._emit("content_block_start", {"index": index, "content_block": content_block})
        return index

    def _close(self) -> None:
        if self._open is None:
            return
        self._emit("content_block_stop", {"index": self._next_index - 1})
        self._open = None
        if self._call is not None and self._call.block is not None:
            self._call.closed = True

    def _block_delta(self, delta: dict[str, Any]) -> None:
        self._emit("content_block_delta", {"index": self._next_index - 1, "delta": delta})

    def _pieces(self, pieces: list[Piece]) -> None:
        for piece in pieces:
            if isinstance(piece, ToolCall):
                self._lifted(piece)
            elif piece[0] == "thinking":
                self._thinking(piece[1])
            else:
                self._text(piece[1])

    def _text(self, text: str) -> None:
        if self._open != "text":
            if not text.strip():
                self._ws.append(text)
                return
            text = ("".join(self._ws) + text).lstrip()
            self._open_block("text", {"type": "text", "text": ""})
        self._ws = []
        self._block_delta({"type": "text_delta", "text": text})

    def _thinking(self, text: str) -> None:
        if self._open != "thinking":
            self._ws = []
            self._open_block("thinking", {"type": "thinking", "thinking": "", "signature": ""})
        self._block_delta({"type": "thinking_delta", "thinking": text})

    def _lifted(self, call: ToolCall) -> None:
        self._ws = []
        self._tool_used = True
        tool_id = self._ids.assign(None)
        block = {"type": "tool_use", "id": tool_id, "name": call.name, "input": {}}
        self._open_block("tool_use", block)
        self._block_delta({"type": "input_json_delta", "partial_json": _json(call.arguments)})
        self._close()

    # structured tool calls

    def _fragment(self, fragment: Mapping[str, Any]) -> None:
        function = fragment.get("function")
        function = function if isinstance(function, Mapping) else {}
        index = fragment.get("index")
        index = index if isinstance(index, int) and not isinstance(index, bool) else None
        raw_id = fragment.get("id")
        call_id = raw_id if isinstance(raw_id, str) and raw_id else None
        name = function.get("name")
        name = name if isinstance(name, str) and name else None
        arguments = function.get("arguments")
        if isinstance(arguments, Mapping):
            arguments = _json(arguments)
        arguments = arguments if isinstance(arguments, str) else ""
        self._chars += len(arguments) + len(name or "")
        call = self._target(index, call_id, name)
        if call is None:
            self.dropped_fragments += 1
            return
        if call_id is not None and call.upstream_id is None:
            call.upstream_id = call_id
            self._upstream_ids.add(call_id)
        if name is not None and not call.name:
            call.name = name
            self._open_call(call)
        if call.block is None:
            call.held.append(arguments)
        elif arguments:
            self._block_delta({"type": "input_json_delta", "partial_json": arguments})

    def _target(self, index: int | None, call_id: str | None, name: str | None) -> _Call | None:
        """The call a fragment belongs to: the current one, a new one or a closed one (None)."""
        if call_id is not None and call_id in self._upstream_ids:
            known = self._call
            if known is None or known.upstream_id != call_id or known.closed:
                return None
            return known
        current = self._by_index.get(index) if index is not None else self._call
        new = (
            current is None
            or (call_id is not None and current.upstream_id is not None)
            or (index is None and call_id is None and name is not None and bool(current.name))
        )
        if new:
            call = _Call(index, None)
            self._call = call
            if index is not None:
                self._by_index[index] = call
            return call
        assert current is not None
        if current is not self._call or current.closed:
            return None
        return current

    def _open_call(self, call: _Call) -> None:
        self._ws = []
        self._tool_used = True
        tool_id = self._ids.assign(call.upstream_id)
        block = {"type": "tool_use", "id": tool_id, "name": call.name, "input": {}}
        call.block = self._open_block("tool_use", block)
        held = "".join(call.held)
        call.held = []
        if held:
            self._block_delta({"type": "input_json_delta", "partial_json": held})


def _json(value: object) -> str:
    return msgspec.json.encode(value).decode()
