"""OpenAI chat.completion.chunk stream → Anthropic SSE events (pure).

The translator always produces a valid Anthropic sequence: `message_start`
(complete usage, input estimated until the upstream reports it), blocks
opened and closed one at a time with consecutive indices, `message_delta`
with the stop reason and cumulative usage, `message_stop`.

Tool-call fragments are matched to calls like this: with an `index`, a
fragment continues the latest call of that index unless it carries a new
`id` (Ollama reuses index 0 for every call), or it carries a `name` and no
`id` while that call has its name and arguments that are already whole
JSON (whole calls, each in one chunk, all at index 0 and without ids);
without an `index` (Gemini), a fragment with a new `id`, or with a `name`
and no `id`, starts a new call, anything else continues the current one.
A fragment that belongs to a call whose block is already closed
(interleaved parallel calls, not seen from any known server) cannot be
delivered without breaking the sequence: it is dropped and counted in
`dropped_fragments`. A call's block opens once its
name is known. Its arguments are held until the call is over (the next call
starts, or the stream ends) and then sent as one `input_json_delta`: as
they came when they are a JSON object, else as the non-streaming path makes
them (`{"_raw": "<the text>"}`, response_o2a), since a client's SDK
assembling the call raises on arguments that are not JSON. A call's block
is open meanwhile, so the client sees the call start at once; only its
arguments come whole, and tool calls are short next to the text (which is
never held for them; the engine pings a client that hears nothing).

Text or reasoning that arrives while a call's block is open would close it
and lose the call's later fragments: it is held until the call is over (the
next call starts, or the stream ends) and then comes out as its own block.

Thinking from `reasoning_content` / `reasoning` or from `<think>` text is a
thinking block with an empty signature (unsigned, see response_o2a).
Whitespace that would open a text block is held until real text follows and
dropped otherwise, so no block starts with or consists of whitespace.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from coderouterd.translate.blocks import BlockWriter, Event, json_text
from coderouterd.translate.call_indexes import whole_object
from coderouterd.translate.response_o2a import (
    OutputPipeline,
    Piece,
    ToolIds,
    anthropic_usage,
    arguments_json,
    first_choice,
    matched_stop_of,
    reasoning_of,
    stop_of,
    text_of,
)
from coderouterd.translate.types import OutputFilters, ToolNames

__all__ = ["Event", "OpenAIToAnthropicStream"]


@dataclass(slots=True)
class _Call:
    upstream_index: int | None
    upstream_id: str | None
    name: str = ""
    block: int | None = None
    # Its arguments so far, held until the call is over. While they are
    # short, whether they are whole JSON tells a new call from its name sent
    # again.
    args: list[str] = field(default_factory=list)
    args_len: int = 0

    def whole(self) -> bool:
        return whole_object(self.args, self.args_len)


class OpenAIToAnthropicStream:
    """Feed decoded chunks; get Anthropic events back. Call `finish` at the end."""

    def __init__(
        self,
        *,
        message_id: str,
        model: str,
        filters: OutputFilters,
        names: ToolNames,
        estimated_input_tokens: int,
        stop_sequences: Collection[str] = (),
    ) -> None:
        self._message_id = message_id
        self._stop_sequences = stop_sequences
        self._model = model
        self._estimated_input = estimated_input_tokens
        self._pipeline = OutputPipeline(filters, names)
        self._w = BlockWriter(ToolIds(message_id))
        self._call: _Call | None = None
        self._by_index: dict[int, _Call] = {}
        self._upstream_ids: set[str] = set()
        self._deferred: list[Piece] = []  # text that arrived while a call streamed
        self._finish_reason: object = None
        self._matched_stop: object = None
        self._upstream_usage: object = None
        self._chars = 0
        self._message_started = False
        self._finished = False
        self.dropped_fragments = 0

    @property
    def started(self) -> bool:
        """A content event has been produced: the engine's commit point."""
        return self._w.started

    @property
    def produced(self) -> bool:
        """Text, reasoning or a call has arrived, sent or still held by the filters."""
        return self._chars > 0

    @property
    def repairs(self) -> int:
        return self._pipeline.repairs

    @property
    def usage(self) -> dict[str, int]:
        return self._usage()[0]

    @property
    def usage_estimated(self) -> bool:
        return self._usage()[1]

    @property
    def upstream_usage(self) -> object:
        """The usage object the upstream reported, if any (for accounting)."""
        return self._upstream_usage

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
            self._matched_stop = matched_stop_of(choice)
        return self._w.take()

    def finish(self) -> list[Event]:
        """End of stream ([DONE] or a clean EOF). Idempotent."""
        if self._finished:
            return []
        self._start_message()
        self._end_call()
        # What the filters held goes on the open text block: it is the end
        # of the same text (a line that might have been a call).
        self._deliver(self._pipeline.flush())
        self._w.close()
        self._finished = True
        stop_reason, sequence = stop_of(
            self._finish_reason,
            self._matched_stop,
            tool_used=self._w.tool_used,
            stop_sequences=self._stop_sequences,
        )
        self._w.emit(
            "message_delta",
            {"delta": {"stop_reason": stop_reason, "stop_sequence": sequence}, "usage": self.usage},
        )
        self._w.emit("message_stop", {})
        return self._w.take()

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
        self._w.emit("message_start", {"message": message})

    def _delta(self, delta: Mapping[str, Any]) -> None:
        reasoning = reasoning_of(delta)
        if reasoning:
            self._chars += len(reasoning)
            self._deliver(self._pipeline.reasoning(reasoning))
        for key in ("content", "refusal"):
            text = text_of(delta.get(key))
            if text:
                self._chars += len(text)
                self._deliver(self._pipeline.feed(text))
        calls = delta.get("tool_calls")
        if not isinstance(calls, list):
            legacy = delta.get("function_call")
            calls = [{"function": legacy}] if isinstance(legacy, Mapping) else []
        fragments = [c for c in calls if isinstance(c, Mapping)]
        if fragments:
            # The text so far comes out before the call; what follows goes on.
            self._deliver(self._pipeline.flush(end_of_run=False))
        for fragment in fragments:
            self._fragment(fragment)

    def _deliver(self, pieces: list[Piece]) -> None:
        """Pieces of the model's text, in order, held while a call's block is open."""
        if self._streaming_call():
            self._deferred += pieces
            return
        if self._deferred:
            deferred, self._deferred = self._deferred, []
            self._w.pieces(deferred)
        self._w.pieces(pieces)

    def _streaming_call(self) -> bool:
        call = self._call
        return call is not None and self._w.open == "tool_use" and call.block == self._w.index

    def _closed(self, call: _Call) -> bool:
        return call.block is not None and not (
            self._w.open == "tool_use" and call.block == self._w.index
        )

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
            arguments = json_text(arguments)
        arguments = arguments if isinstance(arguments, str) else ""
        self._chars += len(arguments) + len(name or "")
        call = self._target(index, call_id, name)
        if call is None:
            self.dropped_fragments += 1
            return
        if arguments:
            call.args.append(arguments)
            call.args_len += len(arguments)
        if call_id is not None and call.upstream_id is None:
            call.upstream_id = call_id
            self._upstream_ids.add(call_id)
        if name is not None and not call.name:
            call.name = name
            self._open_call(call)

    def _target(self, index: int | None, call_id: str | None, name: str | None) -> _Call | None:
        """The call a fragment belongs to: the current one, a new one or a closed one (None)."""
        if call_id is not None and call_id in self._upstream_ids:
            known = self._call
            if known is None or known.upstream_id != call_id or self._closed(known):
                return None
            return known
        current = self._by_index.get(index) if index is not None else self._call
        new = (
            current is None
            or (call_id is not None and current.upstream_id is not None)
            or (
                call_id is None
                and name is not None
                and bool(current.name)
                and (index is None or current.whole())
            )
        )
        if new:
            self._end_call()
            call = _Call(index, None)
            self._call = call
            if index is not None:
                self._by_index[index] = call
            return call
        assert current is not None
        if current is not self._call or self._closed(current):
            return None
        return current

    def _open_call(self, call: _Call) -> None:
        self._deliver([])  # text held while the previous call streamed comes first
        call.block = self._w.tool_use(call.name)

    def _end_call(self) -> None:
        """The streaming call is over: its arguments go out (see the module
        doc) and its block closes. A call that never got its name has no
        block, and nothing goes out."""
        call = self._call
        if call is None or not self._streaming_call():
            return
        arguments = arguments_json("".join(call.args))
        if arguments:
            self._w.delta({"type": "input_json_delta", "partial_json": arguments})
        self._w.close()
