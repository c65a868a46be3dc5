"""The codec for OpenAI clients on Anthropic providers, and the helpers both
translating codecs share (translated.py holds the Anthropic-client one).

A client that declares its functions the legacy way (`functions`, no
`tools`) reads a call in the answer's `function_call`, so the translated
answer and stream are put in that form (response_a2o.as_function_call).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import msgspec

from coderouterd.config.model import ProviderConfig
from coderouterd.errors import UpstreamProtocolError
from coderouterd.routing.call import Call
from coderouterd.routing.upstream import Out, Transcoder, Unary
from coderouterd.translate.answer_check import check_message
from coderouterd.translate.answer_usage import message_usage
from coderouterd.translate.anthropic_passthrough import NOT_CONTENT, AnthropicPassthrough
from coderouterd.translate.capabilities import ModelCapabilities
from coderouterd.translate.estimate import estimate_prompt_tokens
from coderouterd.translate.filtered_openai import FilteredOpenAIStream, filter_openai_completion
from coderouterd.translate.openai_passthrough import DONE_FRAME, client_wants_usage
from coderouterd.translate.params_o2a import legacy_functions
from coderouterd.translate.request_o2a import openai_to_anthropic_request
from coderouterd.translate.response_a2o import (
    AnthropicToOpenAIStream,
    anthropic_to_openai_response,
    as_function_call,
)
from coderouterd.translate.thinking_shape import claude_shape
from coderouterd.translate.types import (
    Degradation,
    OutputFilters,
    read_json,
    tool_names,
)
from coderouterd.translate.unsupported import OPENAI_TOOL_FIELDS, without_tools
from coderouterd.wire.errors import error_message_of, openai_error, reenvelope
from coderouterd.wire.sse import encode_data
from coderouterd.wire.usage import Usage

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.decode


def decoded_fields(call: Call, kept_raw: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The request's top-level fields decoded, but those in `kept_raw`."""
    return {k: v if k in kept_raw else read_json(v, k) for k, v in call.fields.items()}


def usage_of_counts(counts: dict[str, Any] | None) -> Usage | None:
    """Usage from an answer's counts, those of Usage's fields it has."""
    if not counts:
        return None
    known = {k: v for k, v in counts.items() if k in Usage.__struct_fields__}
    try:
        return msgspec.convert(known, Usage, strict=False)  # 12.0 is 12
    except msgspec.ValidationError:
        return None  # counts no count looks like: unknown, the answer stands


class AnthropicToOpenAITranscoder:
    """An Anthropic stream, as Chat Completions chunks for an OpenAI client;
    with `filtered`, the chunks go through the provider's output filters as
    an OpenAI provider's would (filtered_openai); with `functions` (the
    client declared legacy functions), a call goes as `function_call`."""

    final_event = "message_stop"

    def __init__(
        self,
        provider: str,
        stream: AnthropicToOpenAIStream,
        *,
        include_usage: bool,
        filtered: FilteredOpenAIStream | None = None,
        functions: bool = False,
        prompt_tokens: Callable[[], int] | None = None,
    ) -> None:
        self._source = AnthropicPassthrough(provider, prompt_tokens=prompt_tokens)
        self._stream = stream
        self._include_usage = include_usage
        self._filtered = filtered
        self._functions = functions
        self.upstream_error: str | None = None
        self.upstream_error_body = b""
        self._produced = False

    @property
    def produced(self) -> bool:
        """A content event came (upstream.Holding), sent or held by the filters."""
        return self._produced

    @property
    def repairs(self) -> int:
        return self._filtered.repairs if self._filtered is not None else 0

    @property
    def finished(self) -> bool:
        return self._source.finished

    @property
    def usage(self) -> Usage | None:
        return self._source.usage

    @property
    def usage_estimated(self) -> bool:
        return self._source.usage_estimated

    def feed(self, chunk: bytes) -> list[Out]:
        out: list[Out] = []
        for ev in self._source.events(chunk):
            if ev.event == "error":
                self.upstream_error = self._source.upstream_error
                self.upstream_error_body = self._source.upstream_error_body
                message = error_message_of(ev.data) or "the upstream reported an error"
                body = openai_error(500, message, error_type=self.upstream_error)
                out.append(Out(encode_data(_encode(body)), False))
                break  # the last of the events: the stream ends at its error
            content = ev.event not in NOT_CONTENT
            self._produced = self._produced or content
            chunks = self._stream.feed(ev.event, _decode(ev.data))
            if self._filtered is not None:
                chunks = _filtered(self._filtered, chunks, ending=ev.event == "message_stop")
            if self._functions:
                chunks = [as_function_call(c) for c in chunks]
            if ev.event == "message_stop":
                chunks += self._stream.finish(self._include_usage)
            out += [Out(encode_data(_encode(c)), content) for c in chunks]
            if ev.event == "message_stop":
                out.append(Out(DONE_FRAME, True))
        return out

    def end(self) -> list[Out]:
        return self._source.end()


def _filtered(
    stream: FilteredOpenAIStream, chunks: list[dict[str, Any]], *, ending: bool
) -> list[dict[str, Any]]:
    """The chunks as the filters send them; at the end, what they still hold."""
    out: list[dict[str, Any]] = []
    for chunk in chunks:
        out += [chunk if c is None else c for c in stream.feed(chunk)]
    return out + stream.finish() if ending else out


class OpenAIToAnthropicCodec:
    """OpenAI client, Anthropic provider. With output filters on (a local
    server's Messages API), the translated answer goes through them as an
    OpenAI provider's answer would; with them off, nothing more is done.
    A backend that cannot call tools (`capabilities: {tools: false}`) gets
    the request without its tools, in either form; a Claude model that takes
    thinking only as adaptive or no sampling parameters gets the translated
    request so (thinking_shape)."""

    def __init__(
        self, provider: ProviderConfig, caps: ModelCapabilities, filters: OutputFilters
    ) -> None:
        self._provider = provider
        self._caps = caps
        self._shape = claude_shape(caps)
        self._filters = filters if filters.active else None

    def request(self, call: Call) -> tuple[bytes, list[Degradation]]:
        fields = decoded_fields(call)
        # Before translation, so that a forced tool_choice of tools not sent
        # does not cost the request its thinking (params_o2a.limits).
        dropped = without_tools(fields, OPENAI_TOOL_FIELDS) if self._caps.tools is False else []
        body, degraded = openai_to_anthropic_request(
            fields,
            model=self._provider.model,
            max_output_tokens=self._caps.output_ceiling(self._provider.max_output_tokens),
            signed_thinking=self._caps.signed_thinking,
            can_think=self._caps.thinking is not False,
            cache_control=self._caps.cache_control is not False,
        )
        if self._shape is not None:
            degraded += self._shape.fit_translated(body, fields.get("reasoning_effort"))
        body["stream"] = call.stream
        return _encode(body), dropped + degraded

    def _settings(self, call: Call) -> dict[str, Any]:
        """What the answer says of itself, whole or streamed alike: an id of
        the request's, and the model the client asked for."""
        return {
            "completion_id": f"chatcmpl-{call.request_id}",
            "model": call.requested_model or self._provider.model,
            "created": call.created,
        }

    def transcoder(self, call: Call) -> Transcoder:
        stream = AnthropicToOpenAIStream(**self._settings(call))
        filtered = None
        if self._filters is not None:
            filtered = FilteredOpenAIStream(self._filters, tool_names(call.fields))
        return AnthropicToOpenAITranscoder(
            self._provider.name,
            stream,
            include_usage=client_wants_usage(call),
            filtered=filtered,
            functions=legacy_functions(call.fields),
            # Estimated only for a stream that reports no input count.
            prompt_tokens=functools.partial(estimate_prompt_tokens, call.fields, call.media),
        )

    def unary(self, body: bytes, call: Call) -> Unary:
        try:
            decoded = _decode(body)
        except msgspec.DecodeError as exc:
            raise UpstreamProtocolError(self._provider.name, "response is not JSON") from exc
        usage = usage_of_counts(decoded.get("usage")) if isinstance(decoded, dict) else None
        check_message(self._provider.name, decoded, body)
        usage, estimated = message_usage(usage, decoded, call)
        completion = anthropic_to_openai_response(decoded, **self._settings(call))
        repairs = 0
        if self._filters is not None:
            filtered = filter_openai_completion(
                completion, filters=self._filters, names=tool_names(call.fields)
            )
            if filtered is not None:
                completion, repairs = filtered
        if legacy_functions(call.fields):
            completion = as_function_call(completion)
        return Unary(
            _encode(completion),
            "application/json",
            usage,
            repairs=repairs,
            usage_estimated=estimated,
        )

    def error_body(self, status: int, body: bytes) -> bytes:
        return reenvelope("openai", status, body)
