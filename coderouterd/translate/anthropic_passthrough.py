"""Anthropic client to Anthropic provider: bytes through, only `model` rewritten.

The transcoder forwards each SSE frame's raw bytes untouched. It still looks
at every frame: its data must be JSON (msgspec validates while skipping
fields, which is cheap) so a malformed frame never reaches the client, and
usage, the terminal `message_stop` and in-stream errors are noted on the way.
"""

from __future__ import annotations

import msgspec

from coderouterd.errors import UpstreamProtocolError
from coderouterd.routing.call import Call
from coderouterd.routing.upstream import Out, Transcoder, Unary
from coderouterd.translate.types import Degradation
from coderouterd.wire.errors import error_type_of
from coderouterd.wire.sse import SSEDecoder, SSEEvent
from coderouterd.wire.usage import Usage, usage_of_body

_encode = msgspec.json.Encoder().encode

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


_typed = msgspec.json.Decoder(_Typed)
_start = msgspec.json.Decoder(_MessageStart)
_delta = msgspec.json.Decoder(_MessageDelta)


def merge_usage(into: Usage, update: Usage) -> None:
    """Later (cumulative) counts replace earlier ones, field by field."""
    for name in Usage.__struct_fields__:
        value = getattr(update, name)
        if value is not None:
            setattr(into, name, value)


class AnthropicPassthrough:
    final_event = "message_stop"
    repairs = 0
    usage_estimated = False
    __slots__ = ("_decoder", "_provider", "finished", "upstream_error", "usage")

    def __init__(self, provider: str) -> None:
        self._provider = provider
        self._decoder = SSEDecoder()
        self.finished = False
        self.upstream_error: str | None = None
        self.usage: Usage | None = None

    def feed(self, chunk: bytes) -> list[Out]:
        return [Out(ev.raw, ev.event not in NOT_CONTENT) for ev in self.events(chunk)]

    def events(self, chunk: bytes) -> list[SSEEvent]:
        """The chunk's complete events, each checked to carry JSON and observed."""
        events = self._decoder.feed(chunk)
        for ev in events:
            try:
                _typed.decode(ev.data)
            except msgspec.DecodeError as exc:
                raise UpstreamProtocolError(
                    self._provider, f"malformed data in {ev.event!r} event"
                ) from exc
            self._observe(ev.event, ev.data)
        return events

    def end(self) -> list[Out]:
        if self._decoder.pending.strip():
            raise UpstreamProtocolError(self._provider, "stream cut in the middle of an event")
        return []

    def _observe(self, kind: str, data: bytes) -> None:
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
        elif kind == "message_stop":
            self.finished = True
        elif kind == "error":
            self.upstream_error = error_type_of(data) or "api_error"


# Thinking that a local model produced (from <think> text or reasoning_content)
# carries an empty signature; an Anthropic upstream rejects it with a 400.
# Clients serialise it compactly or with one space after the colon; two exact
# searches (memmem) cost a fraction of a regex over a long history.
_SIGNATURE = b'"signature"'


def has_empty_signature(raw: bytes) -> bool:
    """Whether some `"signature"` key holds "": one pass over the bytes, since
    scanning 50 KB costs about 20 us and most histories have no signature."""
    at = raw.find(_SIGNATURE)
    while at >= 0:
        rest = raw[at + len(_SIGNATURE) : at + len(_SIGNATURE) + 32].lstrip(b" \t\r\n")
        if rest.startswith(b":") and rest[1:].lstrip(b" \t\r\n").startswith(b'""'):
            return True
        at = raw.find(_SIGNATURE, at + 1)
    return False


_UNSIGNED_DROPPED = Degradation(
    "content.thinking",
    "unsigned thinking from another provider is not sent to an Anthropic upstream",
)


def without_unsigned_thinking(messages: msgspec.Raw) -> msgspec.Raw | None:
    """The history without unsigned thinking blocks, or None when it has none.

    A byte scan first: the common request has none and stays bytes.
    """
    if not has_empty_signature(bytes(messages)):
        return None
    decoded = msgspec.json.decode(messages)
    if not isinstance(decoded, list):
        return None
    for message in decoded:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            message["content"] = [b for b in content if not _is_unsigned_thinking(b)]
    return msgspec.Raw(_encode(decoded))


def _is_unsigned_thinking(block: object) -> bool:
    return (
        isinstance(block, dict) and block.get("type") == "thinking" and not block.get("signature")
    )


class AnthropicPassthroughCodec:
    def __init__(self, provider: str, model: str) -> None:
        self._provider = provider
        self._model = msgspec.Raw(_encode(model))

    def request(self, call: Call) -> tuple[bytes, list[Degradation]]:
        fields = dict(call.fields)
        fields["model"] = self._model
        degraded: list[Degradation] = []
        messages = fields.get("messages")
        if messages is not None and (cleaned := without_unsigned_thinking(messages)) is not None:
            fields["messages"] = cleaned
            degraded.append(_UNSIGNED_DROPPED)
        return _encode(fields), degraded

    def transcoder(self, call: Call) -> Transcoder:
        return AnthropicPassthrough(self._provider)

    def unary(self, body: bytes, call: Call) -> Unary:
        return Unary(body, "application/json", usage_of_body(body))

    def error_body(self, status: int, body: bytes) -> bytes:
        return body
