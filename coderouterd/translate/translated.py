"""Codecs between the two dialects: Anthropic clients on OpenAI-compatible
providers, and OpenAI clients on Anthropic providers (translated_openai).

Each request body is decoded whole (translation needs every field), and each
stream is decoded frame by frame, translated, and encoded again in the
client's dialect. Unsigned thinking produced from an OpenAI backend's
reasoning never travels back to an Anthropic upstream: request_a2o drops
thinking blocks from the history it sends.
"""

from __future__ import annotations

from typing import Any

import msgspec

from coderouterd.config.model import ProviderConfig
from coderouterd.errors import UpstreamProtocolError
from coderouterd.routing.call import Call
from coderouterd.routing.upstream import Out, Transcoder, Unary
from coderouterd.translate.answer_check import check_completion
from coderouterd.translate.anthropic_passthrough import NOT_CONTENT
from coderouterd.translate.capabilities import ModelCapabilities
from coderouterd.translate.estimate import estimate_prompt_tokens
from coderouterd.translate.memo_a2o import TranslatedHistory
from coderouterd.translate.openai_passthrough import DONE, frames_left
from coderouterd.translate.request_a2o import anthropic_to_openai_request
from coderouterd.translate.request_params import reasoning_within
from coderouterd.translate.response_o2a import openai_to_anthropic_response
from coderouterd.translate.stream_o2a import OpenAIToAnthropicStream
from coderouterd.translate.translated_openai import (
    AnthropicToOpenAITranscoder,
    OpenAIToAnthropicCodec,
    decoded_fields,
    usage_of_counts,
)
from coderouterd.translate.types import (
    Degradation,
    OutputFilters,
    ToolNames,
    read_json,
    tool_names,
)
from coderouterd.wire.errors import (
    ANTHROPIC_TYPES,
    anthropic_error,
    reenvelope,
)
from coderouterd.wire.sse import SSEDecoder, SSEEvent, encode_event
from coderouterd.wire.usage import Usage, openai_counts

# Both directions' codecs and transcoders are imported from here.
__all__ = [
    "AnthropicToOpenAICodec",
    "AnthropicToOpenAITranscoder",
    "OpenAIToAnthropicCodec",
    "OpenAIToAnthropicTranscoder",
    "tool_names_of",
]

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.decode
_KEPT_RAW = frozenset({"tools", "messages"})


def tool_names_of(call: Call) -> ToolNames:
    """The request's tool names as the output filters read them (types.tool_names)."""
    return tool_names(call.fields)


def _accounted(counts: dict[str, Any] | None, upstream: object) -> Usage | None:
    """The usage to account: the client's complete counts, except that cache
    counts the upstream did not report are unknown rather than zero."""
    usage = usage_of_counts(counts)
    if usage is not None and openai_counts(upstream).cache_read_input_tokens is None:
        usage.cache_read_input_tokens = usage.cache_creation_input_tokens = None
    return usage


class OpenAIToAnthropicTranscoder:
    """An OpenAI-compatible stream, as Anthropic events for an Anthropic client."""

    final_event = "data: [DONE]"

    def __init__(
        self, provider: str, stream: OpenAIToAnthropicStream, request_id: str | None = None
    ) -> None:
        self._provider = provider
        self._request_id = request_id  # carried by the error events it writes
        self._stream = stream
        self._decoder = SSEDecoder()
        self._saw_finish_reason = False
        self.finished = False
        self.upstream_error: str | None = None
        self.upstream_error_body = b""

    @property
    def produced(self) -> bool:
        """A content chunk came (upstream.Holding), sent or held by the filters."""
        return self._stream.produced

    @property
    def usage(self) -> Usage | None:
        return _accounted(self._stream.usage, self._stream.upstream_usage)

    @property
    def repairs(self) -> int:
        return self._stream.repairs

    @property
    def usage_estimated(self) -> bool:
        return self._stream.usage_estimated

    def feed(self, chunk: bytes) -> list[Out]:
        return self._outs(self._decoder.feed(chunk))

    def _outs(self, events: list[SSEEvent]) -> list[Out]:
        out: list[Out] = []
        for ev in events:
            if ev.data.strip() == DONE:
                if not self._stream.produced and not self._saw_finish_reason:
                    # Nothing said, not even why it stopped: no answer, to
                    # fall through like a stream that ends before any content.
                    raise UpstreamProtocolError(self._provider, "[DONE] before any content")
                out += self._finish()
                continue
            try:
                data = _decode(ev.data)
            except msgspec.DecodeError as exc:
                raise UpstreamProtocolError(self._provider, "malformed data in a chunk") from exc
            if not isinstance(data, dict):
                raise UpstreamProtocolError(self._provider, "a chunk that is not a JSON object")
            if data.get("error") is not None:
                out.append(self._error(data["error"]))
                break  # the stream ends at its error: a [DONE] after it is no clean end
            choices = data.get("choices")
            if isinstance(choices, list) and any(
                isinstance(c, dict) and c.get("finish_reason") for c in choices
            ):
                self._saw_finish_reason = True
            out += [_anthropic_out(name, d) for name, d in self._stream.feed(data)]
        return out

    def end(self) -> list[Out]:
        """A clean end of the body. After a finish_reason it is a complete answer,
        [DONE] or not (some servers never send it; the usage chunk may be missing
        too, and is then estimated), its last frame read even without its blank
        line (openai_passthrough.frames_left). Before one, nothing is produced:
        the engine ends the stream with an error event, never with a clean
        end_turn."""
        left = frames_left(self._decoder)
        if left is None:
            raise UpstreamProtocolError(self._provider, "stream cut in the middle of a chunk")
        out = self._outs(left)
        if self._saw_finish_reason and not self.finished and self.upstream_error is None:
            out += self._finish()
        return out

    def _finish(self) -> list[Out]:
        self.finished = True
        return [_anthropic_out(name, d) for name, d in self._stream.finish()]

    def _error(self, error: object) -> Out:
        detail = error if isinstance(error, dict) else {"message": str(error)}
        kind = detail.get("type") if isinstance(detail.get("type"), str) else "api_error"
        self.upstream_error = kind
        self.upstream_error_body = _encode({"error": detail})
        message = str(detail.get("message") or "the upstream reported an error")
        known = kind if kind in ANTHROPIC_TYPES.values() else "api_error"
        body = anthropic_error(500, message, error_type=known, request_id=self._request_id)
        return Out(encode_event("error", _encode(body)), False)


def _anthropic_out(name: str, data: dict[str, Any]) -> Out:
    return Out(encode_event(name, _encode(data)), name not in NOT_CONTENT)


class AnthropicToOpenAICodec:
    """Anthropic client, OpenAI-compatible provider."""

    def __init__(
        self, provider: ProviderConfig, caps: ModelCapabilities, filters: OutputFilters
    ) -> None:
        self._provider = provider
        self._caps = caps
        self._filters = filters
        self.history = TranslatedHistory()

    def request(self, call: Call) -> tuple[bytes, list[Degradation]]:
        # `tools` and `messages` stay raw: request_a2o decodes the schemas only
        # if they change, and only the messages it has not translated before.
        fields = decoded_fields(call, _KEPT_RAW)
        body, degraded = anthropic_to_openai_request(
            fields,
            model=self._provider.model,
            caps=self._caps,
            max_output_tokens=self._provider.max_output_tokens,
            stream=call.stream,
            history=self.history,
            conversation=call.conversation,
        )
        degraded += reasoning_within(body)
        return _encode(body), degraded

    def _settings(self, call: Call) -> dict[str, Any]:
        return {
            "message_id": f"msg_{call.request_id}",
            "model": call.requested_model or self._provider.model,
            "filters": self._filters,
            "names": tool_names_of(call),
            "estimated_input_tokens": estimate_prompt_tokens(call.fields, call.media),
            "stop_sequences": _stop_sequences(call),
        }

    def transcoder(self, call: Call) -> Transcoder:
        stream = OpenAIToAnthropicStream(**self._settings(call))
        return OpenAIToAnthropicTranscoder(self._provider.name, stream, call.request_id)

    def unary(self, body: bytes, call: Call) -> Unary:
        try:
            decoded = _decode(body)
        except msgspec.DecodeError as exc:
            raise UpstreamProtocolError(self._provider.name, "response is not JSON") from exc
        check_completion(self._provider.name, decoded, body)
        message, repairs, estimated = openai_to_anthropic_response(decoded, **self._settings(call))
        upstream = decoded.get("usage")
        return Unary(
            _encode(message),
            "application/json",
            _accounted(message.get("usage"), upstream),
            repairs=repairs,
            usage_estimated=estimated,
        )

    def error_body(self, status: int, body: bytes) -> bytes:
        return reenvelope("anthropic", status, body)


def _stop_sequences(call: Call) -> frozenset[str]:
    raw = call.fields.get("stop_sequences")
    stop = read_json(raw, "stop_sequences") if raw is not None else None
    return (
        frozenset(s for s in stop if isinstance(s, str)) if isinstance(stop, list) else frozenset()
    )
