"""Reading an Anthropic SSE stream from an upstream, event by event.

Split in two phases around the commit point:

* the *head*: everything up to and including the first content event
  (anything but `message_start` and `ping`). Nothing of it has reached the
  client yet, so any failure here lets the engine try the next provider.
* the *body*: from the commit point on, each chunk's events are forwarded as
  soon as they are decoded; a failure can only end the stream with an
  in-stream `error` event.

Every event's data is checked to be JSON (msgspec validates while skipping
fields, which is cheap) so a malformed frame is never passed to the client.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from coderouterd.errors import UpstreamProtocolError
from coderouterd.routing.upstream import UpstreamBody
from coderouterd.wire.sse import SSEDecoder, SSEEvent
from coderouterd.wire.usage import Usage


class _Typed(msgspec.Struct):
    type: str | None = None


class _ErrorInner(msgspec.Struct):
    type: str | None = None
    message: str | None = None


class _ErrorEvent(msgspec.Struct):
    error: _ErrorInner | None = None


class _Message(msgspec.Struct):
    usage: Usage | None = None


class _MessageStart(msgspec.Struct):
    message: _Message | None = None


class _MessageDelta(msgspec.Struct):
    usage: Usage | None = None


_typed = msgspec.json.Decoder(_Typed)
_error = msgspec.json.Decoder(_ErrorEvent)
_start = msgspec.json.Decoder(_MessageStart)
_delta = msgspec.json.Decoder(_MessageDelta)

NOT_CONTENT = frozenset({"message_start", "ping"})


class EventReader:
    """Turns an upstream body into batches of validated SSE events."""

    __slots__ = ("_decoder", "_provider", "_resp")

    def __init__(self, resp: UpstreamBody, provider: str) -> None:
        self._resp = resp
        self._provider = provider
        self._decoder = SSEDecoder()

    async def next_batch(self) -> list[SSEEvent] | None:
        """The events completed by the next chunk(s); None at a clean end of stream."""
        while True:
            chunk = await self._resp.chunk()
            if not chunk:
                if self._decoder.pending.strip():
                    raise UpstreamProtocolError(
                        self._provider, "stream cut in the middle of an event"
                    )
                return None
            events = self._decoder.feed(chunk)
            if events:
                for ev in events:
                    self._validate(ev)
                return events

    def _validate(self, ev: SSEEvent) -> None:
        try:
            _typed.decode(ev.data)
        except msgspec.DecodeError as exc:
            raise UpstreamProtocolError(
                self._provider, f"malformed data in {ev.event!r} event"
            ) from exc


@dataclass(slots=True)
class StreamState:
    """What the engine learns while forwarding: usage and whether the stream ended properly."""

    usage: Usage = field(default_factory=Usage)
    saw_stop: bool = False
    error_type: str | None = None

    def observe(self, ev: SSEEvent) -> None:
        kind = ev.event
        if kind == "message_start":
            start = _start.decode(ev.data)
            if start.message and start.message.usage:
                self.usage = start.message.usage
        elif kind == "message_delta":
            delta = _delta.decode(ev.data).usage
            if delta is not None:
                _merge_usage(self.usage, delta)
        elif kind == "message_stop":
            self.saw_stop = True
        elif kind == "error":
            self.error_type = error_type_of_event(ev) or "api_error"


def error_type_of_event(ev: SSEEvent) -> str | None:
    try:
        inner = _error.decode(ev.data).error
    except msgspec.DecodeError:
        return None
    return inner.type if inner else None


def _merge_usage(into: Usage, delta: Usage) -> None:
    # message_delta carries cumulative counts; later values replace earlier ones.
    for name in Usage.__struct_fields__:
        value = getattr(delta, name)
        if value is not None:
            setattr(into, name, value)


@dataclass(slots=True)
class Head:
    """The events read up to the commit point, plus the reader to continue with."""

    resp: UpstreamBody
    reader: EventReader
    events: list[SSEEvent]


async def read_head(resp: UpstreamBody, provider: str) -> Head:
    """Read until the first content event; fail (so the engine falls back) before it."""
    reader = EventReader(resp, provider)
    held: list[SSEEvent] = []
    while True:
        batch = await reader.next_batch()
        if batch is None:
            raise UpstreamProtocolError(provider, "stream ended before any content")
        for i, ev in enumerate(batch):
            if ev.event == "ping":
                continue
            if ev.event == "error":
                kind = error_type_of_event(ev) or "api_error"
                raise UpstreamProtocolError(provider, f"error event before content: {kind}")
            held.append(ev)
            if ev.event not in NOT_CONTENT:
                held.extend(batch[i + 1 :])
                return Head(resp, reader, held)
