"""Anthropic responses and streams as OpenAI chat completions (pure).

Text blocks are concatenated without a separator, in the streamed and the
whole-body form alike, so both give the client the same content. Thinking
becomes `reasoning_content`, the field DeepSeek-style backends use; redacted
thinking and server-tool blocks have no OpenAI form and are left out. For a
client that declared legacy `functions`, the answer made carries its call
in the legacy form too (as_function_call).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from coderouterd.wire.compact import compact_json

_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)


def openai_finish_reason(stop_reason: object) -> str:
    """The OpenAI finish_reason of an Anthropic stop_reason; the set is open, unknown is stop."""
    return _FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def openai_usage(usage: Mapping[str, Any] | None) -> dict[str, Any]:
    """OpenAI usage from Anthropic usage: cached and cache-written tokens count
    as prompt, and are told apart in its details (the openai SDK's
    `cached_tokens` and `cache_write_tokens`: a write costs more than a
    prompt token, a read less)."""
    counts = _counts(usage)
    cache_read = counts["cache_read_input_tokens"]
    cache_write = counts["cache_creation_input_tokens"]
    prompt = counts["input_tokens"] + cache_read + cache_write
    completion = counts["output_tokens"]
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cache_read, "cache_write_tokens": cache_write},
    }


def _counts(usage: Mapping[str, Any] | None) -> dict[str, int]:
    usage = usage or {}
    return {key: _int(usage.get(key)) for key in _USAGE_FIELDS}


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def anthropic_to_openai_response(
    message: Mapping[str, Any],
    *,
    created: int,
    completion_id: str | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """The completion a message is; its id and model, unless given, the message's own."""
    texts: list[str] = []
    thinking: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in message.get("content") or []:
        kind = block.get("type") if isinstance(block, Mapping) else None
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "thinking":
            thinking.append(str(block.get("thinking", "")))
        elif kind == "tool_use":
            calls.append(_tool_call(block))
    reply: dict[str, Any] = {"role": "assistant", "content": "".join(texts)}
    if calls:
        reply["content"] = reply["content"] or None
        reply["tool_calls"] = calls
    if thinking:
        reply["reasoning_content"] = "".join(thinking)
    choice = {
        "index": 0,
        "message": reply,
        "logprobs": None,
        "finish_reason": openai_finish_reason(message.get("stop_reason")),
    }
    return {
        "id": completion_id if completion_id is not None else str(message.get("id", "")),
        "object": "chat.completion",
        "created": created,
        "model": model if model is not None else str(message.get("model", "")),
        "choices": [choice],
        "usage": openai_usage(message.get("usage")),
    }


def _tool_call(block: Mapping[str, Any]) -> dict[str, Any]:
    arguments = compact_json(block.get("input") or {})
    function = {"name": str(block.get("name", "")), "arguments": arguments}
    return {"id": str(block.get("id", "")), "type": "function", "function": function}


def as_function_call(completion: Mapping[str, Any]) -> dict[str, Any]:
    """A completion or chunk as a client that declared legacy `functions`
    reads it (params_o2a.legacy_functions): the call as the message's (the
    delta's) `function_call`, the finish_reason `function_call`. The request
    let the model make one call at a time (`disable_parallel_tool_use`); of
    more (lifted from text by output filters) the first is kept, index 0 of
    a chunk's, since the legacy form holds one."""
    choices = []
    for choice in completion.get("choices") or []:
        key = "message" if "message" in choice else "delta"
        part = dict(choice.get(key) or {})
        calls = [c for c in part.pop("tool_calls", None) or [] if c.get("index", 0) == 0]
        if calls:
            part["function_call"] = dict(calls[0].get("function") or {})
        choices.append({**choice, key: part, **_legacy_finish(choice)})
    return {**completion, "choices": choices}


def _legacy_finish(choice: Mapping[str, Any]) -> dict[str, Any]:
    finish = choice.get("finish_reason")
    return {"finish_reason": "function_call" if finish == "tool_calls" else finish}


class AnthropicToOpenAIStream:
    """Anthropic stream events in, OpenAI chat.completion.chunk objects out.

    Tool calls are numbered 0, 1, … in the order they start, whatever their
    Anthropic block index. A tool_use start that already carries its whole
    input (some Anthropic-compatible servers send no input_json_delta) has
    it emitted as one arguments fragment when the block stops; a call whose
    block stops with no arguments at all (a tool without parameters: one
    empty `partial_json`) gets `{}`, as the whole reply would. An `error`
    event yields nothing and is kept in `error` for the caller to turn into
    an OpenAI error frame. Unknown events and deltas are ignored.
    """

    def __init__(self, *, completion_id: str, model: str, created: int) -> None:
        self._id = completion_id
        self._model = model
        self._created = created
        self._role_sent = False
        self._blocks: dict[int, str] = {}  # Anthropic block index -> block type
        self._tool_index: dict[int, int] = {}  # Anthropic block index -> tool call index
        self._pending_input: dict[int, Any] = {}  # whole input sent in a tool_use start
        self._argued: set[int] = set()  # tool_use blocks whose arguments went out
        self._usage: dict[str, int] = _counts(None)
        self.error: Mapping[str, Any] | None = None
        self.finish_reason: str | None = None

    def feed(self, event: str, data: Mapping[str, Any]) -> list[dict[str, Any]]:
        name = event or str(data.get("type", ""))
        if name == "message_start":
            return self._message_start(data.get("message"))
        if name == "content_block_start":
            return self._block_start(data)
        if name == "content_block_delta":
            return self._block_delta(data)
        if name == "content_block_stop":
            return self._block_stop(data)
        if name == "message_delta":
            return self._message_delta(data)
        if name == "error":
            error = data.get("error")
            self.error = error if isinstance(error, Mapping) else data
        return []

    def finish(self, include_usage: bool) -> list[dict[str, Any]]:
        """The final usage chunk (`choices: []`), when the client asked for it."""
        if not include_usage:
            return []
        chunk = self._envelope([])
        chunk["usage"] = openai_usage(self._usage)
        return [chunk]

    @property
    def usage(self) -> dict[str, int]:
        """Anthropic usage counts seen so far (input from message_start, output cumulative)."""
        return dict(self._usage)

    def _message_start(self, message: object) -> list[dict[str, Any]]:
        if isinstance(message, Mapping):
            self._update_usage(message.get("usage"))
        return self._emit({})

    def _block_start(self, data: Mapping[str, Any]) -> list[dict[str, Any]]:
        index, block = data.get("index"), data.get("content_block")
        if not isinstance(index, int) or not isinstance(block, Mapping):
            return []
        kind = str(block.get("type", ""))
        self._blocks[index] = kind
        if kind == "text" and block.get("text"):
            return self._emit({"content": str(block["text"])})
        if kind == "thinking" and block.get("thinking"):
            return self._emit({"reasoning_content": str(block["thinking"])})
        if kind != "tool_use":
            return []
        position = self._tool_index[index] = len(self._tool_index)
        if block.get("input"):
            self._pending_input[index] = block["input"]
        function = {"name": str(block.get("name", "")), "arguments": ""}
        call = {"index": position, "id": str(block.get("id", "")), "type": "function"}
        return self._emit({"tool_calls": [{**call, "function": function}]})

    def _block_delta(self, data: Mapping[str, Any]) -> list[dict[str, Any]]:
        index, delta = data.get("index"), data.get("delta")
        if not isinstance(delta, Mapping):
            return []
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            return self._emit({"content": str(delta["text"])})
        if kind == "thinking_delta" and delta.get("thinking"):
            return self._emit({"reasoning_content": str(delta["thinking"])})
        fragment = delta.get("partial_json")
        # An empty fragment says nothing: a start that carried the whole input
        # still has it sent when the block stops.
        if (
            kind == "input_json_delta"
            and fragment
            and isinstance(index, int)
            and index in self._tool_index
        ):
            self._pending_input.pop(index, None)
            return self._arguments(index, str(fragment))
        return []

    def _block_stop(self, data: Mapping[str, Any]) -> list[dict[str, Any]]:
        index = data.get("index")
        if not isinstance(index, int) or index not in self._tool_index:
            return []
        if index in self._pending_input:
            return self._arguments(index, compact_json(self._pending_input.pop(index)))
        return [] if index in self._argued else self._arguments(index, "{}")

    def _arguments(self, index: int, fragment: str) -> list[dict[str, Any]]:
        self._argued.add(index)
        call = {"index": self._tool_index[index], "function": {"arguments": fragment}}
        return self._emit({"tool_calls": [call]})

    def _message_delta(self, data: Mapping[str, Any]) -> list[dict[str, Any]]:
        self._update_usage(data.get("usage"))
        delta = data.get("delta")
        if not isinstance(delta, Mapping) or delta.get("stop_reason") is None:
            return []
        if self.finish_reason is not None:
            # One finish chunk a choice, as OpenAI sends; a later message_delta
            # (Anthropic may send several) only brings usage.
            return []
        self.finish_reason = openai_finish_reason(delta["stop_reason"])
        return self._emit({}, finish_reason=self.finish_reason)

    def _update_usage(self, usage: object) -> None:
        # Every count is cumulative, so the largest seen is the latest; a
        # message_delta that repeats input_tokens as 0 cannot erase it.
        if isinstance(usage, Mapping):
            for key, value in _counts(usage).items():
                self._usage[key] = max(self._usage[key], value)

    def _emit(
        self, delta: dict[str, Any], finish_reason: str | None = None
    ) -> list[dict[str, Any]]:
        if not self._role_sent:
            self._role_sent = True
            delta = {"role": "assistant", "content": "", **delta}
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return [self._envelope([choice])]

    def _envelope(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": choices,
        }
