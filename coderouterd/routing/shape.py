"""What a reply did: why the model stopped, and whether it called a tool (pure).

Read from what the client gets, in the client's dialect, so one reader
serves every provider and every translation. A stream is read frame by
frame, and only the frames that can tell are decoded: an Anthropic
`content_block_start` (until a tool_use block is seen) and `message_delta`;
an OpenAI chunk with `tool_calls` or the legacy `function_call` (until a
call is seen) or a `finish_reason` that is not null. Stop reasons are
Anthropic's (wire/stop.py maps OpenAI's).

What a request offers is read from its top-level fields, as the provider
was sent them: tools, in either OpenAI form, and whether its tool choice
lets the model call one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

import msgspec

from coderouterd.wire.empty import says_nothing
from coderouterd.wire.sse import parse_frame
from coderouterd.wire.stop import stop_of_finish

_CONTENT_BLOCK_START = b"content_block_start"
_MESSAGE_DELTA = b"message_delta"
_TOOL_CALLS = b'"tool_calls"'
_FUNCTION_CALL = b'"function_call"'
_FINISH = b'"finish_reason"'
_NO_FINISH = b'"finish_reason":null'
_SHORT = 8
_NULL = msgspec.Raw(b"null")


class _Typed(msgspec.Struct):
    type: str = ""


class _BlockStart(msgspec.Struct):
    content_block: _Typed | None = None


class _StopDelta(msgspec.Struct):
    stop_reason: str | None = None


class _MessageDelta(msgspec.Struct):
    delta: _StopDelta | None = None


class _Message(msgspec.Struct):
    stop_reason: str | None = None
    content: list[_Typed] | None = None


class _Calls(msgspec.Struct):
    # Only whether there are any: the calls themselves are not read.
    tool_calls: list[msgspec.Raw] | None = None
    # The legacy form, one call (a client that declared `functions`): only
    # whether it is there, as JSON other than null (Raw takes no None).
    function_call: msgspec.Raw = _NULL


class _Choice(msgspec.Struct):
    finish_reason: str | None = None
    delta: _Calls | None = None
    message: _Calls | None = None


class _Chunk(msgspec.Struct):
    choices: list[_Choice] | None = None


class _ToolChoice(msgspec.Struct):
    # OpenAI's `{"type": "none"}` (or a tool's, a function's); a legacy
    # `{"name": …}` has none and names a function to call.
    type: str = ""


T = TypeVar("T")

# Read in this order: OpenAI lets `tool_choice` decide over `function_call`.
_CHOICES = ("tool_choice", "function_call")
_NONE = "none"
# A string, or an object like Anthropic's; null as if absent.
_tool_choice = msgspec.json.Decoder(str | _ToolChoice | None)

_block_start = msgspec.json.Decoder(_BlockStart)
_message_delta = msgspec.json.Decoder(_MessageDelta)
_message = msgspec.json.Decoder(_Message)
_chunk = msgspec.json.Decoder(_Chunk)


def offers_tools(fields: Mapping[str, msgspec.Raw]) -> bool:
    """Whether the request's `tools`, or the legacy `functions` (which an
    OpenAI-compatible backend takes as they are and params_o2a makes
    Anthropic tools), is a list with something in it."""
    return _listed(fields.get("tools")) or _listed(fields.get("functions"))


def tools_callable(fields: Mapping[str, msgspec.Raw]) -> bool:
    """Whether the request let the model call a tool: tools offered, and a
    tool choice other than `none`. The choice is `tool_choice` when given,
    else the legacy `function_call` (params_o2a's order); one that cannot be
    read lets the model choose. Drift counts an answer that called none
    against a model only then."""
    if not offers_tools(fields):
        return False
    for key in _CHOICES:
        raw = fields.get(key)
        if raw is None:
            continue
        try:
            choice = _tool_choice.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return True
        if choice is not None:
            return (choice if isinstance(choice, str) else choice.type) != _NONE
    return True


def _listed(raw: msgspec.Raw | None) -> bool:
    return raw is not None and not says_nothing(raw)


class ReplyShape:
    __slots__ = ("_anthropic", "stop_reason", "tool_use")

    def __init__(self, dialect: str) -> None:
        self._anthropic = dialect == "anthropic"
        self.stop_reason: str | None = None
        self.tool_use = False

    def frames(self, frames: Iterable[bytes]) -> None:
        """Frames of a stream as the client gets them, each whole."""
        for raw in frames:
            if self._anthropic:
                self._anthropic_frame(raw)
            else:
                self._openai_frame(raw)

    def body(self, body: bytes) -> None:
        """A whole reply (a message, a completion, or an error envelope)."""
        try:
            if self._anthropic:
                message = _message.decode(body)
                self.stop_reason = message.stop_reason
                self.tool_use = any(b.type == "tool_use" for b in message.content or ())
            else:
                self._choices(_chunk.decode(body))
        except msgspec.DecodeError:
            return

    def _anthropic_frame(self, raw: bytes) -> None:
        if not self.tool_use and _CONTENT_BLOCK_START in raw:
            block = _decoded(_block_start, raw)
            if block is not None and block.content_block is not None:
                self.tool_use = block.content_block.type == "tool_use"
        elif _MESSAGE_DELTA in raw:
            delta = _decoded(_message_delta, raw)
            if delta is not None and delta.delta is not None and delta.delta.stop_reason:
                self.stop_reason = delta.delta.stop_reason

    def _openai_frame(self, raw: bytes) -> None:
        if (not self.tool_use and (_TOOL_CALLS in raw or _FUNCTION_CALL in raw)) or (
            _FINISH in raw and _NO_FINISH not in raw
        ):
            chunk = _decoded(_chunk, raw)
            if chunk is not None:
                self._choices(chunk)

    def _choices(self, chunk: _Chunk) -> None:
        for choice in chunk.choices or ():
            calls = choice.delta or choice.message
            if calls is not None and (calls.tool_calls or _called(calls.function_call)):
                self.tool_use = True
            if choice.finish_reason is not None:
                self.stop_reason = stop_of_finish(choice.finish_reason)


def _called(raw: msgspec.Raw) -> bool:
    # Only short values are copied: anything longer is a call.
    return len(raw) > _SHORT or bytes(raw).strip() != b"null"


def _decoded(decoder: msgspec.json.Decoder[T], raw: bytes) -> T | None:
    frame = parse_frame(raw.rstrip(b"\r\n"))
    if frame is None:
        return None
    try:
        return decoder.decode(frame[1])
    except msgspec.DecodeError:
        return None
