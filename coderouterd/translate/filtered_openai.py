"""Output filters on an OpenAI-compatible provider's answer, for an OpenAI client (pure).

Used only for providers whose output filters are on; otherwise the
passthrough forwards bytes. Each choice's `delta.content` goes through an
output pipeline of its own (think filter, then tool-call repair or markup
stripping) and comes out in the client's dialect: text as `content`,
thinking as `reasoning_content`, a lifted call as a `tool_calls` item, and
the finish_reason `tool_calls` once a call was lifted, unless the upstream
said something other than `stop` (`length`: the answer was cut, and the
client must know). Tool calls are numbered in the order they are sent,
lifted and upstream ones alike, each choice its own; the upstream's are
told apart by stream_o2a's rules (its module doc: Ollama reuses index 0,
Gemini sends none), since a client's SDK merges fragments by index and
cannot place one without it. A whole completion lists the calls lifted
from its text before the upstream's own, the order a stream sends them in
(the text comes first). A lifted call's id is random, shaped like OpenAI's
(`call_…`): the client's history holds the calls of many answers, and
neither the upstream's completion id (a local server may repeat it) nor a
count is unique across them. Text that follows a lifted call keeps the
separator the repair puts before it (repair.py), so the one content string
reads as the model wrote it. Held text is released before the upstream's
own tool calls and before its finish_reason. A chunk the filters leave
alone (role, usage, tool calls without text …) is forwarded as the
upstream's own bytes; one that they change is rebuilt with the upstream's
envelope (id, created, model), its logprobs sent once: with the first
chunk rebuilt from it, or, while the filters hold all its text, with that
choice's next chunk.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from coderouterd.routing.upstream import Out
from coderouterd.translate.blocks import json_text
from coderouterd.translate.call_indexes import CallIndexes
from coderouterd.translate.filtered import FilteredTranscoder
from coderouterd.translate.openai_passthrough import DONE, OpenAIPassthrough
from coderouterd.translate.repair import ToolCall
from coderouterd.translate.response_o2a import OutputPipeline, Piece, reasoning_of
from coderouterd.translate.types import OutputFilters, ToolNames
from coderouterd.wire.sse import encode_data, parse_frame

_encode = msgspec.json.Encoder().encode


class _ChoiceState:
    """What one choice's filtering keeps between chunks: the choices of an
    n > 1 answer are separate texts, so none may open another's `<think>` or
    hold another's markup, and each numbers its own tool calls (module doc).
    """

    __slots__ = ("_calls", "_next_index", "lifted", "logprobs", "pipeline")

    def __init__(self, filters: OutputFilters, names: ToolNames) -> None:
        self.pipeline = OutputPipeline(filters, names)
        self._calls = CallIndexes(self._take_index)
        self._next_index = 0
        self.lifted = False
        # The logprobs of chunks whose text the filters still hold: they go
        # out with this choice's next chunk.
        self.logprobs: object = None

    def renumbered(self, calls: list[Any]) -> list[Any]:
        return self._calls.renumbered(calls)

    def deltas(self, pieces: list[Piece]) -> list[dict[str, Any]]:
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
        self.lifted = True
        index, function = self._take_index(), _function(call)
        return {"index": index, "id": new_call_id(), "type": "function", "function": function}

    def _take_index(self) -> int:
        index, self._next_index = self._next_index, self._next_index + 1
        return index


# One choice of a chunk as the filters rebuilt it: its state, the upstream's
# choice, the deltas to send, the finish_reason and logprobs to send. A plain
# tuple: this is built for nearly every chunk of a stream.
_Rebuilt = tuple[_ChoiceState, Mapping[str, Any], list[dict[str, Any]], object, object]


class FilteredOpenAIStream:
    """Decoded chunks in; for each, the chunks to send (None: the chunk itself, unchanged).

    Each choice (by its `index`) has a pipeline of its own. A chunk of
    several choices that the filters change is sent as one chunk per choice,
    in the upstream's order, a choice they leave alone as it came.
    """

    def __init__(self, filters: OutputFilters, names: ToolNames) -> None:
        self._filters = filters
        self._names = names
        self._choices: dict[int, _ChoiceState] = {}
        self._envelope: dict[str, Any] = {}

    @property
    def repairs(self) -> int:
        return sum(state.pipeline.repairs for state in self._choices.values())

    def feed(self, chunk: Mapping[str, Any]) -> Sequence[dict[str, Any] | None]:
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices:
            return [None]
        if len(choices) == 1:  # n = 1: nearly every stream
            rebuilt = self._rebuilt(choices[0])
            if rebuilt is None:
                return [None]
            self._envelope = _envelope_of(chunk)
            return self._chunks(rebuilt, chunk.get("usage"))
        rebuilts = [self._rebuilt(choice) for choice in choices]
        if all(r is None for r in rebuilts):
            return [None]
        self._envelope = _envelope_of(chunk)
        out: list[dict[str, Any]] = []
        for choice, rebuilt in zip(choices, rebuilts, strict=True):
            if rebuilt is None:
                out.append({**self._envelope, "choices": [choice]})
            else:
                out += self._chunks(rebuilt, None)
        usage = chunk.get("usage")
        if usage is not None:
            out = out or [{**self._envelope, "choices": []}]
            out[-1]["usage"] = usage
        return out

    def finish(self) -> list[dict[str, Any]]:
        """The end of the stream without a finish_reason: release what is held."""
        out: list[dict[str, Any]] = []
        for index, state in self._choices.items():
            deltas = state.deltas(state.pipeline.flush())
            held, state.logprobs = state.logprobs, None
            if held is not None:
                deltas = deltas or [{}]
            out += self._chunks((state, {"index": index}, deltas, None, held), None)
        return out

    def _new_state(self, index: object) -> _ChoiceState:
        key = index if isinstance(index, int) else 0
        state = self._choices.get(key)
        if state is None:
            state = self._choices[key] = _ChoiceState(self._filters, self._names)
        return state

    def _rebuilt(self, choice: object) -> _Rebuilt | None:
        """The choice rebuilt by its filters; None when they leave it as it came."""
        if not isinstance(choice, Mapping):
            return None
        index = choice.get("index", 0)
        state = self._choices.get(index) if isinstance(index, int) else None
        state = state or self._new_state(index)
        delta = choice.get("delta")
        delta = delta if isinstance(delta, Mapping) else {}
        content = delta.get("content")
        text = content if isinstance(content, str) else ""
        calls = delta.get("tool_calls")
        finish = choice.get("finish_reason")
        reasoning = reasoning_of(delta)
        held = state.logprobs
        quiet = not text and not reasoning and not isinstance(calls, list) and finish is None
        if quiet and held is None:
            return None
        pipeline = state.pipeline
        before = pipeline.reasoning_arrived() if reasoning else []
        pieces = pipeline.feed(text) if text else []
        # Before the upstream's own calls the text so far comes out, and what
        # follows goes on (its spaces kept); a finish_reason ends the run.
        if finish is not None:
            flushed = pipeline.flush()
        elif isinstance(calls, list):
            flushed = pipeline.flush(end_of_run=False)
        else:
            flushed = []
        # Tool calls are numbered as they are sent: calls lifted from the
        # text go out before the upstream's own.
        before_deltas = state.deltas(before)
        text_deltas = state.deltas(pieces + flushed)
        renumbered = state.renumbered(calls) if isinstance(calls, list) else None
        unchanged = not before and not flushed and pieces == ([("text", text)] if text else [])
        # Computed after the pieces: a call lifted from this chunk's text counts.
        new_finish = finish_with_lifted(finish) if finish is not None and state.lifted else finish
        if unchanged and held is None and renumbered is calls and new_finish == finish:
            return None
        head = {k: v for k, v in delta.items() if k not in ("content", "tool_calls")}
        deltas = [*before_deltas, *([head] if head else []), *text_deltas]
        if renumbered is not None:
            deltas.append({"tool_calls": renumbered})
        logprobs = choice.get("logprobs")
        if held is not None:
            state.logprobs = None
            logprobs = _joined(held, logprobs)
        return state, choice, deltas, new_finish, logprobs

    def _chunks(self, rebuilt: _Rebuilt, usage: object) -> list[dict[str, Any]]:
        state, choice, deltas, finish, logprobs = rebuilt
        if finish is not None or usage is not None:
            deltas = deltas or [{}]
        if not deltas:
            state.logprobs = logprobs
            return []
        # Logprobs describe the chunk's tokens: sent once, with its first piece.
        carries = logprobs is not None or "logprobs" in choice
        chunks: list[dict[str, Any]] = []
        for i, delta in enumerate(deltas):
            last = i == len(deltas) - 1
            out_choice = {**choice, "delta": delta, "finish_reason": finish if last else None}
            if carries:
                out_choice["logprobs"] = logprobs if i == 0 else None
            chunk = {**self._envelope, "choices": [out_choice]}
            if last and usage is not None:
                chunk["usage"] = usage
            chunks.append(chunk)
        return chunks


def _envelope_of(chunk: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in chunk.items() if k not in ("choices", "usage")}


def _joined(held: object, new: object) -> object:
    """Logprobs held from earlier chunks and this chunk's, as one object:
    their token lists (`content`, `refusal`) joined in order."""
    if held is None:
        return new
    if not isinstance(held, Mapping) or not isinstance(new, Mapping):
        return held if new is None else new
    out = dict(held)
    for key, value in new.items():
        before = out.get(key)
        if isinstance(before, list) and isinstance(value, list):
            out[key] = before + value
        elif value is not None:
            out[key] = value
    return out


def finish_with_lifted(finish: object) -> object:
    """The finish_reason of an answer a call was lifted from: a turn that
    ended (`stop`, or none said) ended with the call; any other reason
    (`length`, `content_filter`, …) is kept, as the Anthropic translation
    keeps `max_tokens` (response_o2a.stop_reason_of)."""
    return "tool_calls" if finish in (None, "stop") else finish


def new_call_id() -> str:
    return f"call_{secrets.token_hex(12)}"


def _function(call: ToolCall) -> dict[str, str]:
    return {"name": call.name, "arguments": json_text(call.arguments)}


def _out(chunk: Mapping[str, Any]) -> Out:
    return Out(encode_data(_encode(chunk)), _is_content(chunk))


def _is_content(chunk: Mapping[str, Any]) -> bool:
    choices = chunk.get("choices")
    return isinstance(choices, list) and any(_choice_is_content(c) for c in choices)


def _choice_is_content(choice: object) -> bool:
    if not isinstance(choice, Mapping):
        return False
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
        self._produced = False

    @property
    def produced(self) -> bool:
        """A content chunk came (upstream.Holding), sent or held by the filters."""
        return self._produced

    def feed(self, chunk: bytes) -> list[Out]:
        return self._filtered(self._source.feed(chunk))

    def end(self) -> list[Out]:
        return self._filtered(self._source.end())

    def _filtered(self, outs: list[Out]) -> list[Out]:
        # The source's error frame is the last it gives (the stream ends
        # there); the chunks before it, in the same read, are filtered.
        error = outs[-1] if outs and self._source.upstream_error is not None else None
        filtered: list[Out] = []
        for out in outs:
            self._produced = self._produced or out.content
            parsed = parse_frame(out.raw.rstrip(b"\r\n"))
            data = parsed[1] if parsed is not None else b""
            chunks: Sequence[dict[str, Any] | None]
            if data.strip() == DONE:
                chunks = [*self._stream.finish(), None]
            elif out is not error and data.lstrip().startswith(b"{"):
                chunks = self._stream.feed(msgspec.json.decode(data))
            else:
                chunks = [None]
            filtered += [out if c is None else _out(c) for c in chunks]
        return filtered


def filter_openai_completion(
    body: dict[str, Any],
    *,
    filters: OutputFilters,
    names: ToolNames,
) -> tuple[dict[str, Any], int] | None:
    """A whole chat.completion with every choice's content filtered, each
    through a pipeline of its own; None when nothing changed."""
    choices = body.get("choices")
    if not isinstance(choices, list):
        return None
    out_choices: list[Any] = []
    repairs = 0
    for choice in choices:
        filtered = _filtered_choice(choice, filters, names)
        out_choices.append(choice if filtered is None else filtered[0])
        repairs += 0 if filtered is None else filtered[1]
    if all(new is old for new, old in zip(out_choices, choices, strict=True)):
        return None
    return {**body, "choices": out_choices}, repairs


def _filtered_choice(
    choice: object, filters: OutputFilters, names: ToolNames
) -> tuple[dict[str, Any], int] | None:
    if not isinstance(choice, Mapping):
        return None
    message = choice.get("message")
    if not isinstance(message, Mapping):
        return None
    content = message.get("content")
    if not isinstance(content, str) or not content:
        return None
    pipeline = OutputPipeline(filters, names)
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
        lifted = [
            {"id": new_call_id(), "type": "function", "function": _function(c)} for c in calls
        ]
        # Lifted first, as the stream sends them (the text came before the
        # upstream's own calls) and as the Anthropic translation places them.
        new_message["tool_calls"] = [*lifted, *(new_message.get("tool_calls") or [])]
        new_choice["finish_reason"] = finish_with_lifted(choice.get("finish_reason"))
    return new_choice, pipeline.repairs
