"""Codecs for a client and a provider of the same dialect: bytes through.

The request body is forwarded with `model` replaced; fields the capability
registry says the backend cannot take are removed, or `thinking` reshaped
for its Claude model (thinking_shape; each change recorded),
and a Mistral-family backend gets an OpenAI client's messages with the tool
call ids and role order it takes (mistral_openai).
When the provider's output filters are on, its stream and unary body go
through them in the client's dialect (filtered_anthropic, filtered_openai);
when they are off, the transcoders forward the upstream's bytes and nothing
else is done: the Anthropic-to-anthropic path is the benchmarked hot path.
A 2xx unary body that is no answer (no JSON object, an error envelope, no
message or no choice holding one: answer_check) falls through, as on the
translated path; an error body that is not the client's dialect's error
envelope (not JSON, or another server's shape) reaches the client in it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, MutableMapping
from typing import Any

import msgspec

from coderouterd.errors import UpstreamProtocolError
from coderouterd.routing.call import Call
from coderouterd.routing.upstream import Transcoder, Unary
from coderouterd.translate.answer_check import (
    check_completion,
    check_message,
    glance_at_completion,
    glance_at_message,
)
from coderouterd.translate.answer_usage import completion_usage, message_usage
from coderouterd.translate.anthropic_passthrough import AnthropicPassthrough
from coderouterd.translate.anthropic_request import (
    CACHE_CONTROL_DROPPED,
    CALL_UNTHOUGHT,
    EFFORT_DROPPED,
    SYSTEM_FOLDED,
    UNSIGNED_DROPPED,
    fold_system_messages,
    loop_lost_thinking,
    loop_started_unthought,
    strip_cache_control,
    thinking_enabled,
    without_effort,
    without_thinking,
    without_unsigned_thinking,
)
from coderouterd.translate.capabilities import THINKING_UNSUPPORTED, ModelCapabilities
from coderouterd.translate.empty_text import EMPTY_TEXT_DROPPED, without_empty_text
from coderouterd.translate.estimate import estimate_prompt_tokens
from coderouterd.translate.filtered_anthropic import (
    FilteredAnthropicStream,
    FilteredAnthropicTranscoder,
    filter_anthropic_message,
)
from coderouterd.translate.filtered_openai import (
    FilteredOpenAIStream,
    FilteredOpenAITranscoder,
    filter_openai_completion,
)
from coderouterd.translate.mistral_openai import for_mistral
from coderouterd.translate.openai_passthrough import (
    OpenAIPassthrough,
    client_wants_usage,
    usage_of_completion,
    with_usage_asked,
)
from coderouterd.translate.params_o2a import fit_budget
from coderouterd.translate.thinking_removal import remove_thinking
from coderouterd.translate.thinking_shape import claude_shape
from coderouterd.translate.translated import tool_names_of
from coderouterd.translate.types import Degradation, OutputFilters, read_json
from coderouterd.translate.unsupported import (
    ANTHROPIC_TOOL_FIELDS,
    OPENAI_REASONING_FIELDS,
    OPENAI_TOOL_FIELDS,
    without_reasoning,
    without_tools,
)
from coderouterd.wire.errors import reenvelope
from coderouterd.wire.usage import completed, is_complete

_encode = msgspec.json.Encoder().encode
_max_tokens = msgspec.json.Decoder(int)


class _ErrorTop(msgspec.Struct):
    """An error body's `type` and `error`, as JSON text. Decoding into it
    checks the whole body's syntax while skipping its other fields, so
    nothing is built: a body forwarded as bytes is checked without being
    decoded."""

    type: msgspec.Raw = msgspec.Raw(b"")
    error: msgspec.Raw = msgspec.Raw(b"")


_error_top = msgspec.json.Decoder(_ErrorTop)
_ERROR_TYPE = msgspec.Raw(b'"error"')
_CANNOT_THINK = Degradation("thinking", THINKING_UNSUPPORTED)


class AnthropicPassthroughCodec:
    def __init__(
        self,
        provider: str,
        model: str,
        *,
        caps: ModelCapabilities | None = None,
        filters: OutputFilters | None = None,
        max_output_tokens: int | None = None,
    ) -> None:
        caps = caps or ModelCapabilities()
        self._provider = provider
        self._max_output_tokens = max_output_tokens
        self._model = msgspec.Raw(_encode(model))
        self._drop_thinking = caps.thinking is False
        self._strip_cache_control = caps.cache_control is False
        self._fold_system = caps.system_messages is False
        self._drop_effort = caps.effort is False
        self._drop_tools = caps.tools is False
        self._signed_thinking = caps.signed_thinking
        self._shape = claude_shape(caps)
        self._filters = filters if filters is not None and filters.active else None

    def request(self, call: Call) -> tuple[bytes, list[Degradation]]:
        fields = dict(call.fields)
        fields["model"] = self._model
        degraded: list[Degradation] = []
        if self._drop_thinking:
            degraded += remove_thinking(fields, _CANNOT_THINK)
        # Before the tool-loop check, which reads the thinking type sent, and
        # before effort goes, which sets a budget.
        if self._shape is not None:
            degraded += self._shape.fit(fields)
        if self._drop_tools:
            degraded += without_tools(fields, ANTHROPIC_TOOL_FIELDS)
        messages = fields.get("messages")
        # Only Claude (a backend that checks signatures) refuses these; a local
        # server's Anthropic API gets its model's own output back as it was.
        if messages is not None and self._signed_thinking:
            degraded += _for_claude(fields, messages, call)
        if self._strip_cache_control and strip_cache_control(fields):
            degraded.append(CACHE_CONTROL_DROPPED)
        if self._fold_system and fold_system_messages(fields):
            degraded.append(SYSTEM_FOLDED)
        if self._drop_effort and without_effort(fields):
            degraded.append(EFFORT_DROPPED)
        clamps = clamped(fields, ("max_tokens",), self._max_output_tokens)
        if clamps and self._max_output_tokens is not None:
            clamps += _fit_thinking(fields, self._max_output_tokens)
        degraded += clamps
        return _encode(fields), degraded

    def transcoder(self, call: Call) -> Transcoder:
        # Estimated only for a stream that reports no input count.
        prompt_tokens = functools.partial(estimate_prompt_tokens, call.fields, call.media)
        if self._filters is None:
            return AnthropicPassthrough(self._provider, prompt_tokens=prompt_tokens)
        stream = FilteredAnthropicStream(
            self._filters, tool_names_of(call), f"msg_{call.request_id}"
        )
        return FilteredAnthropicTranscoder(self._provider, stream, prompt_tokens=prompt_tokens)

    def unary(self, body: bytes, call: Call) -> Unary:
        usage, plain = glance_at_message(body)
        whole = is_complete(usage)
        if self._filters is None and whole and plain:
            return Unary(body, "application/json", usage)
        message = _object_of(body, self._provider)
        check_message(self._provider, message, body)
        # Counted before the filters change the content, as a stream's deltas are.
        usage, estimated = message_usage(usage, message, call)
        repairs = 0
        if self._filters is not None:
            message, repairs = filter_anthropic_message(
                message, filters=self._filters, names=tool_names_of(call)
            )
        if not whole:
            # As in a stream's message_start (anthropic_passthrough.py).
            message["usage"] = completed(message.get("usage"))
        body = _encode(message)
        return Unary(body, "application/json", usage, repairs=repairs, usage_estimated=estimated)

    def error_body(self, status: int, body: bytes) -> bytes:
        return _error_body("anthropic", status, body)


class OpenAIPassthroughCodec:
    def __init__(
        self,
        provider: str,
        model: str,
        *,
        max_output_tokens: int | None,
        filters: OutputFilters | None = None,
        caps: ModelCapabilities | None = None,
    ) -> None:
        caps = caps or ModelCapabilities()
        self._provider = provider
        self._model = msgspec.Raw(_encode(model))
        self._max_output_tokens = max_output_tokens
        self._drop_tools = caps.tools is False
        self._drop_reasoning = caps.thinking is False
        self._mistral = caps if caps.mistral_roles else None
        self._filters = filters if filters is not None and filters.active else None

    def request(self, call: Call) -> tuple[bytes, list[Degradation]]:
        fields = dict(call.fields)
        fields["model"] = self._model
        degraded: list[Degradation] = []
        if self._drop_tools:
            degraded += without_tools(fields, OPENAI_TOOL_FIELDS)
        if self._drop_reasoning:
            degraded += without_reasoning(fields, OPENAI_REASONING_FIELDS)
        messages = fields.get("messages")
        if self._mistral is not None and messages is not None:
            # Re-encoded only when its ids or role order need it (mistral_openai).
            fields["messages"] = for_mistral(messages, self._mistral) or messages
        if call.stream:
            fields["stream_options"] = with_usage_asked(fields.get("stream_options"))
        limit = self._max_output_tokens
        clamps = clamped(fields, ("max_tokens", "max_completion_tokens"), limit)
        if clamps and limit is not None:
            clamps += _fit_reasoning(fields, limit)
        degraded += clamps
        return _encode(fields), degraded

    def transcoder(self, call: Call) -> Transcoder:
        source = OpenAIPassthrough(
            self._provider,
            forward_usage=client_wants_usage(call),
            # Estimated only for a stream that ends without its usage chunk.
            prompt_tokens=functools.partial(estimate_prompt_tokens, call.fields, call.media),
        )
        if self._filters is None:
            return source
        return FilteredOpenAITranscoder(
            source, FilteredOpenAIStream(self._filters, tool_names_of(call))
        )

    def unary(self, body: bytes, call: Call) -> Unary:
        if self._filters is None:
            usage, plain = glance_at_completion(body)
            if plain:
                usage, estimated = completion_usage(usage, body, call)
                return Unary(body, "application/json", usage, usage_estimated=estimated)
        # No plain completion, or one the filters read: decoded and checked whole.
        completion = _object_of(body, self._provider)
        check_completion(self._provider, completion, body)
        usage, estimated = completion_usage(usage_of_completion(body), body, call)
        repairs = 0
        if self._filters is not None:
            filtered = filter_openai_completion(
                completion, filters=self._filters, names=tool_names_of(call)
            )
            if filtered is not None:
                body, repairs = _encode(filtered[0]), filtered[1]
        return Unary(body, "application/json", usage, repairs=repairs, usage_estimated=estimated)

    def error_body(self, status: int, body: bytes) -> bytes:
        return _error_body("openai", status, body)


def _for_claude(
    fields: dict[str, msgspec.Raw], messages: msgspec.Raw, call: Call
) -> list[Degradation]:
    """What Claude refuses in a history other backends wrote, taken out
    (anthropic_request.py, empty_text.py), and thinking turned off where a
    tool loop in progress cannot have it."""
    degraded: list[Degradation] = []
    cleaned = without_unsigned_thinking(messages, call.history)
    if cleaned is not None:
        fields["messages"] = cleaned
        degraded.append(UNSIGNED_DROPPED)
        if "thinking" in fields and loop_lost_thinking(messages):
            degraded += without_thinking(fields)
    elif thinking_enabled(fields.get("thinking")) and loop_started_unthought(messages):
        degraded += without_thinking(fields, CALL_UNTHOUGHT)
    if (full := without_empty_text(fields["messages"])) is not None:
        fields["messages"] = full
        degraded.append(EMPTY_TEXT_DROPPED)
    return degraded


def _object_of(body: bytes, provider: str) -> dict[str, Any]:
    """A 2xx body decoded; one that is no JSON object is no answer (an HTML
    page from a proxy), to fall through like a broken stream."""
    try:
        decoded = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise UpstreamProtocolError(provider, "response is not JSON") from exc
    except RecursionError as exc:
        raise UpstreamProtocolError(provider, "response is nested too deeply") from exc
    if not isinstance(decoded, dict):
        raise UpstreamProtocolError(provider, "response is not a JSON object")
    return decoded


def _error_body(dialect: str, status: int, body: bytes) -> bytes:
    """An upstream error forwarded as it is when it is a JSON object in the
    client's envelope (Anthropic's `type: error` and `error` object; OpenAI's
    `error` object), the only one its SDK reads; any other body in that
    envelope, its message kept: llama.cpp's and vLLM's OpenAI-shaped errors
    on their Anthropic API, Ollama's text/plain `404 page not found`, a
    proxy's HTML page. Quoted credentials are already out (providers/base.py)."""
    try:
        top = _error_top.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return reenvelope(dialect, status, body.strip())
    anthropic = dialect == "anthropic"
    if bytes(top.error).startswith(b"{") and (not anthropic or top.type == _ERROR_TYPE):
        return body
    return reenvelope(dialect, status, body)


def clamped(
    fields: dict[str, msgspec.Raw], names: tuple[str, ...], limit: int | None
) -> list[Degradation]:
    """Each of the `names` asking for more output than `limit` lowered to it
    in `fields` (raw JSON values), a Degradation for each."""
    degraded: list[Degradation] = []
    if limit is None:
        return degraded
    for name in names:
        raw = fields.get(name)
        if raw is not None and _int_or_none(raw) > limit:
            fields[name] = msgspec.Raw(_encode(limit))
            degraded.append(Degradation(name, f"clamped to the provider's {limit}"))
    return degraded


def _fit_thinking(fields: dict[str, msgspec.Raw], max_tokens: int) -> list[Degradation]:
    """Anthropic's enabled thinking budget kept below a clamped max_tokens;
    thinking dropped with the edits that need it when none fits."""
    return _fit(fields, "thinking", "budget_tokens", max_tokens, drop=remove_thinking)


def _fit_reasoning(fields: dict[str, msgspec.Raw], max_tokens: int) -> list[Degradation]:
    """OpenRouter's `reasoning: {max_tokens}` kept below a clamped max_tokens,
    as Anthropic behind OpenRouter requires."""
    return _fit(fields, "reasoning", "max_tokens", max_tokens, drop=_without_reasoning)


def _without_reasoning(
    fields: MutableMapping[str, msgspec.Raw], why: Degradation
) -> list[Degradation]:
    del fields["reasoning"]
    return [why]


def _fit(
    fields: dict[str, msgspec.Raw],
    name: str,
    key: str,
    max_tokens: int,
    *,
    drop: Callable[[MutableMapping[str, msgspec.Raw], Degradation], list[Degradation]],
) -> list[Degradation]:
    """The raw field `name` with its budget `key` fitted (fit_budget), written
    back only when it changed; `drop` takes it out when no budget fits."""
    raw = fields.get(name)
    asked = read_json(raw, name) if raw is not None else None
    # Only an enabled thinking has a budget; `disabled` and `adaptive` have none.
    if not isinstance(asked, dict):
        return []
    fitted, degraded = fit_budget(asked, key, max_tokens, (name, key))
    if fitted is None:
        return drop(fields, degraded[0])
    if degraded:
        fields[name] = msgspec.Raw(_encode(fitted))
    return degraded


def _int_or_none(raw: msgspec.Raw) -> int:
    # A non-integer is the upstream's to reject, with its own message.
    try:
        return _max_tokens.decode(raw)
    except msgspec.DecodeError:
        return -1
