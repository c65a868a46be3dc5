"""Anthropic client to Anthropic provider: the stream's bytes forwarded.

The transcoder forwards each SSE frame's raw bytes untouched. It still looks
at every frame: its data must be JSON (msgspec validates while skipping
fields, which is cheap) so a malformed frame never reaches the client, and
usage, the terminal `message_stop` and in-stream errors are noted on the way.
Two frames may be rewritten: a `message_start` whose usage lacks a count
(Anthropic-compatible servers that do not cache leave the cache counts out)
gets it as 0, since clients read all four (Claude Code's status line and
`/context` broke without them); the usage recorded keeps them unknown. And
a `message_delta` without an output count gets the estimated one, beside
the counts it has: the SDKs' stream helpers read `usage.output_tokens` from
it and fail without.

The final output count comes in the last `message_delta`; `message_start`
holds a placeholder (often 1). A stream that ends without it (cut, left by
the client, or from a server that reports no usage) is accounted at
estimated usage, as the OpenAI passthrough does: the input reported, else
the prompt's estimate, and the output reported or a quarter of the bytes of
the content deltas, whichever is more. The bytes are counted undecoded, as
the frame's length less a text delta's envelope, since this is the hot path:
tool input and thinking deltas, whose envelopes are longer, and JSON
escapes count a few bytes high, which errs on the side a budget wants.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from coderouterd.errors import UpstreamProtocolError
from coderouterd.routing.upstream import Out
from coderouterd.translate.estimate import estimate_text_tokens
from coderouterd.wire.errors import error_type_of
from coderouterd.wire.sse import SSEDecoder, SSEEvent, encode_event
from coderouterd.wire.usage import COUNTS, Usage, completed, is_complete, merged_split

# Events that do not commit a stream: until another event arrives, nothing
# the provider sent has to reach the client, so another provider may take over.
NOT_CONTENT = frozenset({"message_start", "ping", "error"})


class _Typed(msgspec.Struct):
    type: str | None = None


class _Message(msgspec.Struct):
    usage: Usage | None = None


class _MessageStart(msgspec.Struct):
    message: _Message | None = None


class _MessageDelta(msgspec.Struct):
    usage: Usage | None = None


_encode = msgspec.json.Encoder().encode
_typed = msgspec.json.Decoder(_Typed)
# The events a stream ends at.
_LAST = frozenset({"error", "message_stop"})
# SSE's name for a frame without an event line; no Anthropic event has it.
_UNNAMED = "message"
# Lax: a count sent as 12.0 is read as 12 (see _observe for worse).
_start = msgspec.json.Decoder(_MessageStart, strict=False)
_delta = msgspec.json.Decoder(_MessageDelta, strict=False)
# What a content_block_delta's data holds beside the model's output, at its
# smallest (a text delta, sent compact).
_DELTA_ENVELOPE = len(
    b'{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":""}}'
)


def merge_usage(into: Usage, update: Usage) -> None:
    """Later counts merged into earlier ones, field by field. Counts are
    cumulative and never go back: a smaller one (a `message_delta` that
    repeats `input_tokens` as 0, as some servers do) does not replace the
    count already known, as the OpenAI client's translated usage keeps it
    (response_a2o), so what is accounted is what that client is told."""
    for name in COUNTS:
        value = getattr(update, name)
        known = getattr(into, name)
        if value is not None and (known is None or value > known):
            setattr(into, name, value)
    into.cache_creation = merged_split(into.cache_creation, update.cache_creation)


class AnthropicPassthrough:
    final_event = "message_stop"
    repairs = 0
    __slots__ = (
        "_bare_delta",
        "_decoder",
        "_final",
        "_produced",
        "_prompt_tokens",
        "_provider",
        "_reported",
        "finished",
        "upstream_error",
        "upstream_error_body",
    )

    def __init__(self, provider: str, *, prompt_tokens: Callable[[], int] | None = None) -> None:
        """`prompt_tokens` estimates the prompt when the stream reports no
        input count; without it, that count stays unknown."""
        self._provider = provider
        self._prompt_tokens = prompt_tokens
        self._decoder = SSEDecoder()
        # Whether a message_delta gave the final output count.
        self._final = False
        # Whether the message_delta just observed has no output count (to be given one).
        self._bare_delta = False
        # About the bytes of the model's output: content deltas' data less _DELTA_ENVELOPE.
        self._produced = 0
        self._reported: Usage | None = None
        self.finished = False
        self.upstream_error: str | None = None
        self.upstream_error_body = b""

    @property
    def usage(self) -> Usage | None:
        if self._final:
            return self._reported
        reported = self._reported or Usage()
        input_tokens = reported.input_tokens
        if input_tokens is None and self._prompt_tokens is not None:
            input_tokens = self._prompt_tokens()
        output = self._output_estimate(reported)
        return msgspec.structs.replace(reported, input_tokens=input_tokens, output_tokens=output)

    def _output_estimate(self, reported: Usage) -> int:
        return max(reported.output_tokens or 0, estimate_text_tokens(self._produced))

    @property
    def usage_estimated(self) -> bool:
        return not self._final

    def feed(self, chunk: bytes) -> list[Out]:
        return [Out(ev.raw, ev.event not in NOT_CONTENT) for ev in self.events(chunk)]

    def events(self, chunk: bytes) -> list[SSEEvent]:
        """The chunk's complete events, each checked to carry JSON and observed;
        none after an `error` or `message_stop` event: the stream ends there,
        whatever the upstream sent after it (a gateway's `data: [DONE]`
        trailer), as it does when that comes in a later chunk, never read."""
        events = self._decoder.feed(chunk)
        for i, frame in enumerate(events):
            try:
                typed = _typed.decode(frame.data)
            except msgspec.DecodeError as exc:
                raise UpstreamProtocolError(
                    self._provider, f"malformed data in {frame.event!r} event"
                ) from exc
            ev = frame
            if frame.event == _UNNAMED and typed.type:
                # A server that writes data lines only: the SDKs dispatch on
                # the event line, so the frame gets the one its type names.
                raw = encode_event(typed.type, frame.data)
                ev = events[i] = SSEEvent(typed.type, frame.data, raw)
            if ev.event == "content_block_delta":
                self._produced += max(len(ev.data) - _DELTA_ENVELOPE, 0)
            else:
                self._observe(ev.event, ev.data)
            if ev.event == "message_start" and not is_complete(self._reported):
                events[i] = _with_complete_usage(ev)
            elif ev.event == "message_delta" and self._bare_delta:
                self._bare_delta = False
                output = self._output_estimate(self._reported or Usage())
                events[i] = _with_output_count(ev, output)
            elif ev.event in _LAST:
                return events[: i + 1]
        return events

    def end(self) -> list[Out]:
        if self._decoder.pending.strip():
            raise UpstreamProtocolError(self._provider, "stream cut in the middle of an event")
        return []

    def _observe(self, kind: str, data: bytes) -> None:
        try:
            if kind == "message_start":
                start = _start.decode(data)
                if start.message and start.message.usage:
                    self._reported = start.message.usage
            elif kind == "message_delta":
                delta = _delta.decode(data).usage
                self._bare_delta = delta is None or delta.output_tokens is None
                if delta is not None:
                    if self._reported is None:
                        self._reported = Usage()
                    merge_usage(self._reported, delta)
                    if delta.output_tokens is not None:
                        self._final = True
        except msgspec.ValidationError:
            # Counts in a shape no count has (2.5, "many"): the answer is
            # whole, only its accounting is not; those counts stay unknown.
            return
        if kind == "message_stop":
            self.finished = True
        elif kind == "error":
            self.upstream_error = error_type_of(data) or "api_error"
            self.upstream_error_body = data


def _with_complete_usage(ev: SSEEvent) -> SSEEvent:
    start = msgspec.json.decode(ev.data)
    message = start.get("message") if isinstance(start, dict) else None
    if not isinstance(message, dict):
        return ev
    message["usage"] = completed(message.get("usage"))
    data = _encode(start)
    return SSEEvent(ev.event, data, encode_event(ev.event, data))


def _with_output_count(ev: SSEEvent, output: int) -> SSEEvent:
    delta = msgspec.json.decode(ev.data)
    if not isinstance(delta, dict):
        return ev
    usage = delta.get("usage")
    delta["usage"] = {**(usage if isinstance(usage, dict) else {}), "output_tokens": output}
    data = _encode(delta)
    return SSEEvent(ev.event, data, encode_event(ev.event, data))
