"""Anthropic client to Anthropic provider: the stream's bytes forwarded.

The transcoder forwards each SSE frame's raw bytes untouched. It still looks
at every frame: its data must be JSON (msgspec validates while skipping
fields, which is cheap) so a malformed frame never reaches the client, and
usage, the terminal `message_stop` and in-stream errors are noted on the way.
One frame may be rewritten: a `message_start` whose usage lacks a count
(Anthropic-compatible servers that do not cache leave the cache counts out)
gets it as 0, since clients read all four (Claude Code's status line and
`/context` broke without them). The usage recorded keeps them unknown.
"""

from __future__ import annotations

import msgspec

from coderouterd.errors import UpstreamProtocolError
from coderouterd.routing.upstream import Out
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
    usage_estimated = False
    __slots__ = (
        "_decoder",
        "_provider",
        "finished",
        "upstream_error",
        "upstream_error_body",
        "usage",
    )

    def __init__(self, provider: str) -> None:
        self._provider = provider
        self._decoder = SSEDecoder()
        self.finished = False
        self.upstream_error: str | None = None
        self.upstream_error_body = b""
        self.usage: Usage | None = None

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
            self._observe(ev.event, ev.data)
            if ev.event == "message_start" and not is_complete(self.usage):
                events[i] = _with_complete_usage(ev)
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
                    self.usage = start.message.usage
            elif kind == "message_delta":
                delta = _delta.decode(data).usage
                if delta is not None:
                    if self.usage is None:
                        self.usage = Usage()
                    merge_usage(self.usage, delta)
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
