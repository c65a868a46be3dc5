"""What a 2xx body must be to be an answer (pure).

A 2xx body that is no answer falls through to the next provider, as an
error event before a stream's content does (routing.stream_head.head_error):
OpenRouter says an error met once the model started in a 200 body,
`{"error": {"code": 502, …}}`, and a gateway in front of Claude may answer
200 with Anthropic's own envelope, `{"type": "error", "error": {…}}`. An
error so said is read by its own words: out of memory, another provider
may fit the model; anything else is the provider's failure. A body without
a choice that holds a message (OpenAI), or that is no message with a
content list (Anthropic), says nothing either.

The passthrough codecs forward an answer as bytes: they first glance at it
(one decode that builds no content) and decode it whole only when the
glance is not enough to tell, so the common answer costs what reading its
usage did.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import msgspec

from coderouterd.errors import UpstreamError, UpstreamMemoryError, UpstreamProtocolError
from coderouterd.translate.openai_passthrough import OpenAIUsage, usage_from_openai
from coderouterd.translate.response_o2a import first_choice
from coderouterd.wire.errors import mentions_memory_pressure
from coderouterd.wire.usage import Usage

_NULL = b"null"


def error_said(provider: str, error: object, body: bytes) -> UpstreamError:
    """What an `error` a 2xx `body` holds means: the backend out of memory
    when the body says so, else a failure; named by the error's code or type."""
    detail = error.get("code", error.get("type")) if isinstance(error, Mapping) else None
    said = f"error in a successful response: {detail}"
    if mentions_memory_pressure(body):
        return UpstreamMemoryError(provider, said)
    return UpstreamProtocolError(provider, said)


def check_completion(provider: str, decoded: object, body: bytes) -> None:
    """A decoded 2xx body from an OpenAI-compatible backend that is no
    completion raised as no answer (see the module docstring)."""
    if not isinstance(decoded, dict):
        raise UpstreamProtocolError(provider, "response is not a JSON object")
    error = decoded.get("error")
    if error is not None:
        raise error_said(provider, error, body)
    if not isinstance(first_choice(decoded.get("choices")).get("message"), dict):
        raise UpstreamProtocolError(provider, "response has no choice with a message")


def check_message(provider: str, decoded: object, body: bytes) -> None:
    """A decoded 2xx body from an Anthropic backend that is no message raised
    as no answer. A body without `type` but with its content list is taken
    for a message, as a lenient reader of a compatible server should."""
    if not isinstance(decoded, dict):
        raise UpstreamProtocolError(provider, "response is not a JSON object")
    kind = decoded.get("type")
    error = decoded.get("error")
    if kind == "error" or error is not None:
        raise error_said(provider, error, body)
    if kind not in (None, "message") or not isinstance(decoded.get("content"), list):
        raise UpstreamProtocolError(provider, "response is not a message with content")


class Glance(NamedTuple):
    """What a glance at a 2xx body tells: its usage, and whether it is plainly
    an answer (when not, decode it and check it whole)."""

    usage: Usage | None
    plain: bool


_UNREAD = Glance(usage=None, plain=False)


class _MessageHead(msgspec.Struct):
    type: msgspec.Raw = msgspec.Raw(_NULL)
    content: msgspec.Raw = msgspec.Raw(_NULL)
    error: msgspec.Raw = msgspec.Raw(_NULL)
    usage: Usage | None = None


class _ChoiceHead(msgspec.Struct):
    message: msgspec.Raw = msgspec.Raw(_NULL)


class _CompletionHead(msgspec.Struct):
    choices: list[_ChoiceHead] | None = None
    error: msgspec.Raw = msgspec.Raw(_NULL)
    usage: OpenAIUsage | None = None


# Lax: a count sent as 12.0 is read as 12.
_message_head = msgspec.json.Decoder(_MessageHead, strict=False)
_completion_head = msgspec.json.Decoder(_CompletionHead, strict=False)


def glance_at_message(body: bytes) -> Glance:
    """An Anthropic answer: plainly a message when its type is `message`
    (or absent), its content a list and it holds no error."""
    try:
        head = _message_head.decode(body)
    except msgspec.DecodeError:
        return _UNREAD
    plain = (
        bytes(head.type) in (b'"message"', _NULL)
        and _starts(head.content, b"[")
        and bytes(head.error) == _NULL
    )
    return Glance(head.usage, plain)


def glance_at_completion(body: bytes) -> Glance:
    """An OpenAI answer: plainly a completion when it holds no error and every
    one of its choices (one at least) holds a message object."""
    try:
        head = _completion_head.decode(body)
    except msgspec.DecodeError:
        return _UNREAD
    plain = (
        bytes(head.error) == _NULL
        and bool(head.choices)
        and all(_starts(c.message, b"{") for c in head.choices or ())
    )
    return Glance(usage_from_openai(head.usage) if head.usage else None, plain)


def _starts(raw: msgspec.Raw, opening: bytes) -> bool:
    return memoryview(raw)[:1] == opening
