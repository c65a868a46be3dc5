"""A recorded response, stream or not, reduced to what a replay compares (pure).

Both dialects come out in Anthropic terms: stop reasons in Anthropic's
vocabulary (an unknown OpenAI finish_reason is kept verbatim, so a diff
shows what the provider said), usage under Anthropic's keys.

Input is whatever was captured, which may stop anywhere (the capture has a
size limit and upstreams drop connections). Everything up to the cut is
assembled (of a JSON body, what state/json_prefix reads before it);
`complete` says whether the end of the response (`message_stop`, `[DONE]`,
a whole JSON body) was seen. `error` is set only by an error the provider
sent (an error event or envelope), never by the cut, so a diff does not
mistake a short capture for a failure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

from coderouterd.state.json_prefix import decode_prefix
from coderouterd.wire.sse import SSEDecoder, parse_frame
from coderouterd.wire.stop import stop_of_finish
from coderouterd.wire.usage import COUNTS, openai_counts

Dialect = Literal["anthropic", "openai"]

_USAGE_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
)


class ToolCallOut(msgspec.Struct, frozen=True):
    """`input` is the raw argument text when it is not a JSON object (cut short)."""

    name: str
    input: dict[str, Any] | str


class Assembled(msgspec.Struct, kw_only=True):
    text: str = ""
    thinking: str = ""
    tool_calls: list[ToolCallOut] = msgspec.field(default_factory=list)
    stop_reason: str | None = None
    usage: dict[str, int] = msgspec.field(default_factory=dict)
    error: str | None = None
    complete: bool = False


def assemble(dialect: Dialect, stream: bool, body: bytes) -> Assembled:
    # An error answered before the stream began is a JSON envelope even when
    # a stream was asked for.
    if not stream or body.lstrip()[:1] == b"{":
        return _whole(dialect, body)
    parts = _Parts()
    for data in _frames(body):
        if dialect == "anthropic":
            _anthropic_event(parts, data)
        else:
            _openai_chunk(parts, data)
    return parts.build()


def _whole(dialect: Dialect, body: bytes) -> Assembled:
    """A body that is one JSON document; one that does not decode was cut,
    and what it holds up to the cut is read."""
    value, complete = _json(body), True
    if value is None:
        value, complete = decode_prefix(body), False
    if not isinstance(value, Mapping):
        return Assembled()
    whole = _anthropic_message(value) if dialect == "anthropic" else _openai_completion(value)
    whole.complete = complete
    return whole


# --- shared -----------------------------------------------------------------


@dataclass(slots=True)
class _Call:
    name: str = ""
    upstream_id: str | None = None
    arguments: list[str] = field(default_factory=list)
    start_input: Any = None


@dataclass(slots=True)
class _Parts:
    text: list[str] = field(default_factory=list)
    thinking: list[str] = field(default_factory=list)
    calls: list[_Call] = field(default_factory=list)
    # Which call a block index (Anthropic) or tool-call index (OpenAI) feeds.
    by_index: dict[int, _Call] = field(default_factory=dict)
    stop_reason: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    complete: bool = False

    def build(self) -> Assembled:
        return Assembled(
            text="".join(self.text),
            thinking="".join(self.thinking),
            tool_calls=[_tool_call(c.name, c.arguments, c.start_input) for c in self.calls],
            stop_reason=self.stop_reason,
            usage=self.usage,
            error=self.error,
            complete=self.complete,
        )


def _frames(body: bytes) -> list[bytes]:
    decoder = SSEDecoder()
    datas = [event.data for event in decoder.feed(body)]
    # A capture cut just before the blank line still holds a whole frame;
    # one cut inside its JSON fails to decode later and is dropped there.
    if decoder.pending and (last := parse_frame(decoder.pending.rstrip(b"\r\n"))):
        datas.append(last[1])
    return datas


def _json(data: bytes) -> Any:
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError:
        return None


def _tool_call(name: str, fragments: list[str], start_input: Any) -> ToolCallOut:
    raw = "".join(fragments)
    if not raw.strip():
        return ToolCallOut(name, dict(start_input) if isinstance(start_input, Mapping) else {})
    value = _json(raw.encode())
    return ToolCallOut(name, value if isinstance(value, dict) else raw)


def _error_text(error: object) -> str:
    if isinstance(error, Mapping):
        kind, message = error.get("type"), error.get("message")
        words = [str(w) for w in (kind, message) if w]
        return ": ".join(words) if words else msgspec.json.encode(error).decode()
    return str(error)


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _merge_anthropic_usage(into: dict[str, int], usage: object) -> None:
    if not isinstance(usage, Mapping):
        return
    for key in _USAGE_KEYS:
        if (value := _int(usage.get(key))) is not None:
            into[key] = value


def _openai_usage(usage: object) -> dict[str, int]:
    """The counts an OpenAI usage object reports, split as Anthropic does:
    cache reads and writes are not input (wire.usage.openai_counts)."""
    if not isinstance(usage, Mapping):
        return {}
    counts = msgspec.structs.asdict(openai_counts(usage))
    return {k: n for k in COUNTS if isinstance(n := counts[k], int)}


# --- Anthropic --------------------------------------------------------------


def _anthropic_message(message: Mapping[str, Any]) -> Assembled:
    if message.get("type") == "error" or "error" in message:
        return Assembled(error=_error_text(message.get("error")), complete=True)
    parts = _Parts(complete=True)
    content = message.get("content")
    for block in content if isinstance(content, list) else []:
        if isinstance(block, Mapping):
            _anthropic_block(parts, block, None)
    stop = message.get("stop_reason")
    parts.stop_reason = stop if isinstance(stop, str) else None
    _merge_anthropic_usage(parts.usage, message.get("usage"))
    return parts.build()


def _anthropic_block(parts: _Parts, block: Mapping[str, Any], index: object) -> None:
    kind = block.get("type")
    if kind == "text" and isinstance(text := block.get("text"), str):
        parts.text.append(text)
    elif kind == "thinking" and isinstance(thinking := block.get("thinking"), str):
        parts.thinking.append(thinking)
    elif kind in ("tool_use", "server_tool_use"):
        name = block.get("name")
        call = _Call(name=name if isinstance(name, str) else "", start_input=block.get("input"))
        parts.calls.append(call)
        if isinstance(index, int):
            parts.by_index[index] = call


def _anthropic_event(parts: _Parts, data: bytes) -> None:
    event = _json(data)
    if not isinstance(event, Mapping):
        return
    kind = event.get("type")
    if kind == "message_start" and isinstance(message := event.get("message"), Mapping):
        _merge_anthropic_usage(parts.usage, message.get("usage"))
    elif kind == "content_block_start" and isinstance(block := event.get("content_block"), Mapping):
        _anthropic_block(parts, block, event.get("index"))
    elif kind == "content_block_delta" and isinstance(delta := event.get("delta"), Mapping):
        _anthropic_delta(parts, delta, event.get("index"))
    elif kind == "message_delta":
        delta = event.get("delta")
        if isinstance(delta, Mapping) and isinstance(stop := delta.get("stop_reason"), str):
            parts.stop_reason = stop
        # message_delta usage is cumulative: it replaces what message_start said.
        _merge_anthropic_usage(parts.usage, event.get("usage"))
    elif kind == "message_stop":
        parts.complete = True
    elif kind == "error":
        parts.error = _error_text(event.get("error"))


def _anthropic_delta(parts: _Parts, delta: Mapping[str, Any], index: object) -> None:
    kind = delta.get("type")
    if kind == "text_delta" and isinstance(text := delta.get("text"), str):
        parts.text.append(text)
    elif kind == "thinking_delta" and isinstance(thinking := delta.get("thinking"), str):
        parts.thinking.append(thinking)
    elif kind == "input_json_delta" and isinstance(index, int):
        call = parts.by_index.get(index)
        if call is not None and isinstance(fragment := delta.get("partial_json"), str):
            call.arguments.append(fragment)


# --- OpenAI -----------------------------------------------------------------


def _first_choice(choices: object) -> Mapping[str, Any]:
    """The choice with index 0 (or the first one); n>1 is not recorded."""
    if not isinstance(choices, list):
        return {}
    maps = [c for c in choices if isinstance(c, Mapping)]
    return next((c for c in maps if c.get("index", 0) == 0), maps[0] if maps else {})


def _content_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p["text"] for p in content if isinstance(p, Mapping) and isinstance(p.get("text"), str)
        )
    return ""


def _reasoning(source: Mapping[str, Any]) -> str:
    # Providers disagree on the name: DeepSeek/vLLM vs OpenRouter/Ollama.
    for key in ("reasoning_content", "reasoning"):
        if isinstance(value := source.get(key), str) and value:
            return value
    return ""


def _openai_completion(completion: Mapping[str, Any]) -> Assembled:
    if "error" in completion:
        return Assembled(error=_error_text(completion.get("error")), complete=True)
    parts = _Parts(complete=True)
    choice = _first_choice(completion.get("choices"))
    message = choice.get("message")
    if isinstance(message, Mapping):
        parts.text.append(_content_text(message.get("content")))
        parts.thinking.append(_reasoning(message))
        for call in _calls(message):
            function = call.get("function") if isinstance(call, Mapping) else None
            if isinstance(function, Mapping):
                parts.calls.append(_whole_call(function))
    parts.stop_reason = stop_of_finish(choice.get("finish_reason"))
    parts.usage = _openai_usage(completion.get("usage"))
    return parts.build()


def _calls(part: Mapping[str, Any]) -> list[Any]:
    """A message's (a delta's) `tool_calls`, or its legacy `function_call` as
    the one call, at index 0, that a client declaring `functions` is sent."""
    calls = part.get("tool_calls")
    if isinstance(calls, list):
        return calls
    legacy = part.get("function_call")
    return [{"index": 0, "function": legacy}] if isinstance(legacy, Mapping) else []


def _whole_call(function: Mapping[str, Any]) -> _Call:
    name, arguments = function.get("name"), function.get("arguments")
    # Arguments are a JSON string per the spec; some servers send the object.
    return _Call(
        name=name if isinstance(name, str) else "",
        arguments=[arguments] if isinstance(arguments, str) else [],
        start_input=arguments if isinstance(arguments, Mapping) else None,
    )


def _openai_chunk(parts: _Parts, data: bytes) -> None:
    if data.strip() == b"[DONE]":
        parts.complete = True
        return
    chunk = _json(data)
    if not isinstance(chunk, Mapping):
        return
    if "error" in chunk:
        parts.error = _error_text(chunk.get("error"))
        return
    if chunk.get("usage"):
        parts.usage = _openai_usage(chunk.get("usage"))
    choice = _first_choice(chunk.get("choices"))
    if (stop := stop_of_finish(choice.get("finish_reason"))) is not None:
        parts.stop_reason = stop
    delta = choice.get("delta")
    if not isinstance(delta, Mapping):
        return
    parts.text.append(_content_text(delta.get("content")))
    parts.thinking.append(_reasoning(delta))
    for fragment in _calls(delta):
        if isinstance(fragment, Mapping):
            _openai_tool_fragment(parts, fragment)


def _openai_tool_fragment(parts: _Parts, fragment: Mapping[str, Any]) -> None:
    """Attach a streamed tool-call fragment to its call.

    With an `index`, a fragment continues that index's call unless it brings
    a different `id` (Ollama reuses index 0 for every call). Without one
    (Gemini), a new `id`, or a `name` with no `id`, starts a call.
    """
    index, upstream_id = fragment.get("index"), fragment.get("id")
    function = fragment.get("function")
    function = function if isinstance(function, Mapping) else {}
    name = function.get("name")
    new_id = isinstance(upstream_id, str) and upstream_id != ""
    if isinstance(index, int):
        call = parts.by_index.get(index)
        if call is None or (new_id and call.upstream_id not in (None, upstream_id)):
            call = None
    else:
        call = parts.calls[-1] if parts.calls else None
        if call is not None and (
            (new_id and call.upstream_id != upstream_id) or (name and not new_id)
        ):
            call = None
    if call is None:
        call = _Call()
        parts.calls.append(call)
        if isinstance(index, int):
            parts.by_index[index] = call
    if new_id and call.upstream_id is None:
        call.upstream_id = upstream_id
    if isinstance(name, str) and name and not call.name:
        call.name = name
    if isinstance(arguments := function.get("arguments"), str):
        call.arguments.append(arguments)
