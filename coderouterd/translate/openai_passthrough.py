"""OpenAI client to OpenAI-compatible provider: the stream's bytes forwarded.

Usage is always requested upstream (`stream_options.include_usage`) so it
can be accounted; when the client did not ask for it, the usage-only chunk
is kept from the client, whose code may not expect an empty `choices`. A
stream without that chunk (cut, left by the client, or from a server that
never sends it) is accounted at estimated usage, as the translated paths
do (response_o2a): the prompt's estimate, and a quarter of the characters
the model produced.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import msgspec

from coderouterd.errors import NESTED_TOO_DEEP, InvalidRequestError, UpstreamProtocolError
from coderouterd.routing.call import Call
from coderouterd.routing.upstream import Out
from coderouterd.translate.estimate import estimate_text_tokens
from coderouterd.wire.sse import SSEDecoder, SSEEvent, encode_data, parse_frame
from coderouterd.wire.usage import Usage, anthropic_counts, filled

_encode = msgspec.json.Encoder().encode
DONE = b"[DONE]"
DONE_FRAME = b"data: [DONE]\n\n"
# A `data` field line of a frame: one with no colon is a field with no value.
_DATA_FIELD = re.compile(rb"(?:^|[\r\n])data(?:[:\r\n]|$)")


def frames_left(decoder: SSEDecoder) -> list[SSEEvent] | None:
    """What the body left undecoded at its end, as the frame it is when that
    frame is whole and merely lacks its blank line (some servers end so):
    `data: [DONE]`, or a chunk whose data is whole JSON (the usage chunk of
    a server that sends no [DONE]). [] when nothing (or only a comment) is
    left; None when what is left is a frame cut in the middle."""
    pending = decoder.pending.strip()
    frame = parse_frame(pending) if pending else None
    if frame is None:
        return []
    if frame[1].strip() != DONE:
        try:
            msgspec.json.decode(frame[1])
        except msgspec.DecodeError:
            return None
    return [SSEEvent(frame[0], frame[1], pending + b"\n\n")]


class _Delta(msgspec.Struct):
    content: str | None = None
    tool_calls: list[Any] | None = None
    # The legacy form of one tool call, for clients that sent `functions`.
    function_call: dict[str, Any] | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None


class _Choice(msgspec.Struct):
    delta: _Delta | None = None
    message: _Delta | None = None
    finish_reason: str | None = None


class _Details(msgspec.Struct):
    cached_tokens: int | None = None
    cache_write_tokens: int | None = None


_NO_DETAILS = _Details()


class OpenAIUsage(msgspec.Struct):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    prompt_tokens_details: _Details | None = None


class _ErrorInfo(msgspec.Struct):
    type: str | None = None


class _Chunk(msgspec.Struct):
    choices: list[_Choice] | None = None
    usage: OpenAIUsage | None = None
    error: _ErrorInfo | str | None = None


# Lax: a count sent as 12.0 is read as 12.
_chunk = msgspec.json.Decoder(_Chunk, strict=False)


def usage_from_openai(u: OpenAIUsage) -> Usage:
    details = u.prompt_tokens_details or _NO_DETAILS
    return anthropic_counts(
        u.prompt_tokens, u.completion_tokens, details.cached_tokens, details.cache_write_tokens
    )


def _produced(delta: _Delta) -> int:
    """Characters of the model's output in a delta, counted as the translated
    stream counts them (stream_o2a) for an estimate of the output tokens."""
    chars = len(delta.content or "") + len(delta.reasoning_content or delta.reasoning or "")
    for call in delta.tool_calls or ():
        chars += _call_chars(call.get("function") if isinstance(call, dict) else None)
    return chars + _call_chars(delta.function_call)


def _call_chars(function: Any) -> int:
    if not isinstance(function, dict):
        return 0
    return sum(len(v) for k in ("name", "arguments") if isinstance(v := function.get(k), str))


def _error_frame(ev: SSEEvent) -> bytes:
    """An upstream's error frame as OpenAI clients read it: a `data` frame.
    llama.cpp's `error:` field (parse_frame reads it as `{"error": …}`
    data) is one SSE clients ignore: forwarded as it came, the answer would
    end as if whole. Its data is valid JSON, so a line break in it is only
    whitespace between tokens."""
    if _DATA_FIELD.search(ev.raw):
        return ev.raw
    return encode_data(ev.data.replace(b"\n", b" "))


def _has_content(choice: _Choice) -> bool:
    d = choice.delta
    return choice.finish_reason is not None or (
        d is not None
        and bool(d.content or d.tool_calls or d.function_call or d.reasoning_content or d.reasoning)
    )


class OpenAIPassthrough:
    final_event = "data: [DONE]"
    repairs = 0
    __slots__ = (
        "_chars",
        "_content",
        "_decoder",
        "_ended",
        "_forward_usage",
        "_prompt_tokens",
        "_provider",
        "_reported",
        "finished",
        "upstream_error",
        "upstream_error_body",
    )

    def __init__(
        self,
        provider: str,
        *,
        forward_usage: bool,
        prompt_tokens: Callable[[], int] | None = None,
    ) -> None:
        """`prompt_tokens` estimates the prompt when no usage chunk comes;
        without it, such a stream's usage is unknown."""
        self._provider = provider
        self._forward_usage = forward_usage
        self._prompt_tokens = prompt_tokens
        self._decoder = SSEDecoder()
        self._ended = False
        # Whether a content frame (text, a tool or function call, reasoning, a finish_reason) came.
        self._content = False
        self._chars = 0
        self._reported: Usage | None = None
        self.finished = False
        self.upstream_error: str | None = None
        self.upstream_error_body = b""

    @property
    def usage(self) -> Usage | None:
        return self._filled()[0]

    @property
    def usage_estimated(self) -> bool:
        return self._filled()[1]

    def _filled(self) -> tuple[Usage | None, bool]:
        """The usage chunk's counts, those it lacks (or all, without one) estimated."""
        if self._prompt_tokens is None:
            return self._reported, False
        return filled(
            self._reported, self._prompt_tokens, lambda: estimate_text_tokens(self._chars)
        )

    def feed(self, chunk: bytes) -> list[Out]:
        return self._outs(self._decoder.feed(chunk))

    def _outs(self, events: list[SSEEvent]) -> list[Out]:
        out: list[Out] = []
        for ev in events:
            if ev.data.strip() == DONE:
                if not self._content:
                    # Nothing said, not even why it stopped: no answer, to fall
                    # through like a stream that ends before any content.
                    raise UpstreamProtocolError(self._provider, "[DONE] before any content")
                self.finished = True
                out.append(Out(ev.raw, True))
                continue
            try:
                parsed = _chunk.decode(ev.data)
            except msgspec.DecodeError as exc:
                raise UpstreamProtocolError(self._provider, "malformed data in a chunk") from exc
            if parsed.error is not None:
                err = parsed.error
                self.upstream_error = (
                    err.type if isinstance(err, _ErrorInfo) else None
                ) or "api_error"
                self.upstream_error_body = ev.data
                out.append(Out(_error_frame(ev), False))
                break  # the stream ends at its error, whatever follows it
            if parsed.usage is not None:
                self._reported = usage_from_openai(parsed.usage)
            choices = parsed.choices or []
            self._chars += sum(_produced(c.delta) for c in choices if c.delta is not None)
            if not choices and parsed.usage is not None and not self._forward_usage:
                continue
            if any(c.finish_reason for c in choices):
                self._ended = True
            content = any(_has_content(c) for c in choices)
            self._content = self._content or content
            out.append(Out(ev.raw, content))
        return out

    def end(self) -> list[Out]:
        left = frames_left(self._decoder)
        if left is None:
            raise UpstreamProtocolError(self._provider, "stream cut in the middle of a chunk")
        out = self._outs(left)
        if not self.finished and self._ended and self.upstream_error is None:
            # Some servers stop after the finish_reason chunk without [DONE].
            self.finished = True
            out.append(Out(DONE_FRAME, True))
        return out


class _StreamOptions(msgspec.Struct):
    include_usage: bool = False


_stream_options = msgspec.json.Decoder(_StreamOptions)


class _UnaryBody(msgspec.Struct):
    usage: OpenAIUsage | None = None


_unary = msgspec.json.Decoder(_UnaryBody, strict=False)  # 12.0 is 12


class _Answer(msgspec.Struct):
    choices: list[_Choice] | None = None


_answer = msgspec.json.Decoder(_Answer, strict=False)


def produced_in_completion(body: bytes) -> int:
    """Characters of the model's output in a whole completion's choices,
    counted as a stream's deltas are (for an estimate of the output tokens);
    a body whose messages this cannot read counts all its bytes, high, the
    side a budget wants."""
    try:
        choices = _answer.decode(body).choices or []
    except msgspec.DecodeError:
        return len(body)
    return sum(_produced(c.message) for c in choices if c.message is not None)


def usage_of_completion(body: bytes) -> Usage | None:
    try:
        usage = _unary.decode(body).usage
    except msgspec.DecodeError:
        return None
    return usage_from_openai(usage) if usage else None


def client_wants_usage(call: Call) -> bool:
    raw = call.fields.get("stream_options")
    try:
        return raw is not None and _stream_options.decode(raw).include_usage
    except msgspec.DecodeError:
        return False


_USAGE_ONLY = msgspec.Raw(b'{"include_usage":true}')


def with_usage_asked(raw: msgspec.Raw | None) -> msgspec.Raw:
    """The client's `stream_options` asking for usage too; its other options
    (`include_obfuscation`, …) reach the provider as it sent them."""
    if raw is None:
        return _USAGE_ONLY
    try:
        options = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return _USAGE_ONLY
    except RecursionError as exc:
        # The first read lets through what is nested a little less than this
        # decode, deeper in the stack, can take.
        raise InvalidRequestError(NESTED_TOO_DEEP, field="stream_options") from exc
    if not isinstance(options, dict):
        return _USAGE_ONLY
    if options.get("include_usage") is True:
        return raw
    return msgspec.Raw(_encode({**options, "include_usage": True}))
