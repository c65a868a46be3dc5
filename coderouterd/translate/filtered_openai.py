"""Output filters on an OpenAI-compatible provider's answer, for an OpenAI client (pure).

Used only for providers whose output filters are on; otherwise the
passthrough forwards bytes. `delta.content` goes through the output pipeline
(think filter, then tool-call repair or markup stripping) and comes out in
the client's dialect: text as `content`, thinking as `reasoning_content`,
a lifted call as a `tool_calls` item numbered after the upstream's own calls,
and the finish_reason `tool_calls` once a call was lifted. Held text is
released before the upstream's own tool calls and before its finish_reason.
A chunk the filters leave alone (role, usage, tool calls without text …) is
forwarded as the upstream's own bytes; one that they change is rebuilt with
the upstream's envelope (id, created, model).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from coderouterd.routing.upstream import Out
from coderouterd.translate.blocks import json_text
from coderouterd.translate.filtered import FilteredTranscoder
from coderouterd.translate.openai_passthrough import DONE, OpenAIPassthrough
from coderouterd.translate.repair import ToolCall
from coderouterd.translate.response_o2a import OutputPipeline, Piece, first_choice, reasoning_of
from coderouterd.translate.types import OutputFilters
from coderouterd.wire.sse import encode_data, parse_frame

_encode = msgspec.json.Encoder().encode


class FilteredOpenAIStream:
    """Decoded chunks in; for each, the chunks to send (None: the chunk itself, unchanged).

    Tool-call indices are renumbered in order of first appearance, so that a
    lifted call never takes an index the upstream uses later.
    """

    def __init__(self, filters: OutputFilters, tool_names: frozenset[str]) -> None:
        self._pipeline = OutputPipeline(filters, tool_names)
        self._indices: dict[int, int] = {}  # upstream tool-call index -> ours
        self._next_index = 0
        self._lifted = False
        self._envelope: dict[str, Any] = {}

    @property
    def repairs(self) -> int:
        return self._pipeline.repairs

    def feed(self, chunk: Mapping[str, Any]) -> list[dict[str, Any] | None]:
        choice = first_choice(chunk.get("choices"))
        delta = choice.get("delta")
        delta = delta if isinstance(delta, Mapping) else {}
        content = delta.get("content")
        text = content if isinstance(content, str) else ""
        calls = delta.get("tool_calls")
        finish = choice.get("finish_reason")
        if not text and not reasoning_of(delta) and not isinstance(calls, list) and finish is None:
            return [None]
        self._envelope = {k: v for k, v in chunk.items() if k not in ("choices", "usage")}
        before = self._pipeline.reasoning_arrived() if reasoning_of(delta) else []
        pieces = self._pipeline.feed(text) if text else []
        flushed = self._pipeline.flush() if isinstance(calls, list) or finish is not None else []
        renumbered = self._renumbered(calls) if isinstance(calls, list) else None
        new_finish = "tool_calls" if finish is not None and self._lifted else finish
        unchanged = not before and not flushed and pieces == ([("text", text)] if text else [])
        if unchanged and renumbered == calls and new_finish == finish:
            return [None]
        head = {k: v for k, v in delta.items() if k not in ("content", "tool_calls")}
        deltas = [*self._deltas(before), *([head] if head else [])]
        deltas += self._deltas(pieces + flushed)
        if renumbered is not None:
            deltas.append({"tool_calls": renumbered})
        return self._chunks(choice, deltas, new_finish, chunk.get("usage"))

    def finish(self) -> list[dict[str, Any] | None]:
        """The end of the stream without a finish_reason: release what is held."""
        return self._chunks({"index": 0}, self._deltas(self._pipeline.flush()), None, None)

    def _renumbered(self, calls: list[Any]) -> list[Any]:
        out = []
        for call in calls:
            index = call.get("index") if isinstance(call, Mapping) else None
            if not isinstance(index, int) or isinstance(index, bool):
                out.append(call)
                continue
            if index not in self._indices:
                self._indices[index] = self._take_index()
            ours = self._indices[index]
            out.append(call if ours == index else {**call, "index": ours})
        return out

    def _deltas(self, pieces: list[Piece]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for piece in pieces:
            if isinstance(piece, ToolCall):
                out.append({"tool_calls": [self._call(piece)]})
                continue
            key = "content" if piece[0] == "text" else "reasoning_content"
            if out and list(out[-1]) == [key]:
                out[-1][key] += piece[1]
            else:
                out.append({key: piece[1]})
        return out

    def _call(self, call: ToolCall) -> dict[str, Any]:
        self._lifted = True
        index = self._take_index()
        return {"index": index, "id": call.id, "type": "function", "function": _function(call)}

    def _take_index(self) -> int:
        index, self._next_index = self._next_index, self._next_index + 1
        return index

    def _chunks(
        self, choice: Mapping[str, Any], deltas: list[dict[str, Any]], finish: object, usage: object
    ) -> list[dict[str, Any] | None]:
        if finish is not None or usage is not None:
            deltas = deltas or [{}]
        chunks: list[dict[str, Any] | None] = []
        for i, delta in enumerate(deltas):
            last = i == len(deltas) - 1
            out_choice = {**choice, "delta": delta, "finish_reason": finish if last else None}
            chunk = {**self._envelope, "choices": [out_choice]}
            if last and usage is not None:
                chunk["usage"] = usage
            chunks.append(chunk)
        return chunks


def _function(call: ToolCall) -> dict[str, str]:
    return {"name": call.name, "arguments": json_text(call.arguments)}


def _out(chunk: Mapping[str, Any]) -> Out:
    return Out(encode_data(_encode(chunk)), _is_content(chunk))


def _is_content(chunk: Mapping[str, Any]) -> bool:
    choice = first_choice(chunk.get("choices"))
    delta = choice.get("delta")
    return choice.get("finish_reason") is not None or (
        isinstance(delta, Mapping)
        and any(delta.get(k) for k in ("content", "tool_calls", "reasoning_content", "reasoning"))
    )


class FilteredOpenAITranscoder(FilteredTranscoder):
    """OpenAIPassthrough's checks and accounting, with the filters applied."""

    final_event = "data: [DONE]"

    def __init__(self, source: OpenAIPassthrough, stream: FilteredOpenAIStream) -> None:
        self._source: OpenAIPassthrough = source
        self._stream: FilteredOpenAIStream = stream

    def feed(self, chunk: bytes) -> list[Out]:
        return self._filtered(self._source.feed(chunk))

    def end(self) -> list[Out]:
        return self._filtered(self._source.end())

    def _filtered(self, outs: list[Out]) -> list[Out]:
        filtered: list[Out] = []
        for out in outs:
            parsed = parse_frame(out.raw.rstrip(b"\r\n"))
            data = parsed[1] if parsed is not None else b""
            if data.strip() == DONE:
                chunks = [*self._stream.finish(), None]
            elif self._source.upstream_error is None and data.lstrip().startswith(b"{"):
                chunks = self._stream.feed(msgspec.json.decode(data))
            else:
                chunks = [None]
            filtered += [out if c is None else _out(c) for c in chunks]
        return filtered


def filter_openai_completion(
    body: dict[str, Any], *, filters: OutputFilters, tool_names: frozenset[str]
) -> tuple[dict[str, Any], int] | None:
    """A whole chat.completion with its content filtered; None when nothing changed."""
    choices = body.get("choices")
    choice = first_choice(choices)
    message = choice.get("message")
    if not isinstance(message, Mapping) or not isinstance(choices, list):
        return None
    content = message.get("content")
    if not isinstance(content, str) or not content:
        return None
    pipeline = OutputPipeline(filters, tool_names)
    reasoned = pipeline.reasoning_arrived() if reasoning_of(message) else []
    pieces = reasoned + pipeline.feed(content) + pipeline.flush()
    text = "".join(p[1] for p in pieces if not isinstance(p, ToolCall) and p[0] == "text")
    thinking = "".join(p[1] for p in pieces if not isinstance(p, ToolCall) and p[0] == "thinking")
    calls = [p for p in pieces if isinstance(p, ToolCall)]
    if text == content and not thinking and not calls:
        return None
    new_message = {**message, "content": text or (None if calls else "")}
    if thinking:
        earlier = str(new_message.get("reasoning_content") or "")
        new_message["reasoning_content"] = earlier + thinking
    new_choice = {**choice, "message": new_message}
    if calls:
        lifted = [{"id": c.id, "type": "function", "function": _function(c)} for c in calls]
        new_message["tool_calls"] = [*(new_message.get("tool_calls") or []), *lifted]
        new_choice["finish_reason"] = "tool_calls"
    out_choices = [new_choice if c is choice else c for c in choices]
    return {**body, "choices": out_choices}, pipeline.repairs
