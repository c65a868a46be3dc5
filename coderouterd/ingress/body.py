"""Decode only the top-level keys a request needs; leave the rest as raw JSON (pure).

Checking that a body is JSON means reading all of it: about 40 us for the
80 KB a coding agent sends on every turn, the largest single cost of a
request. A `BodyMemo` reads most of that only once per conversation. A
turn's body is the previous turn's with a longer `messages`: the same bytes
before the history and after it. Given a remembered body in compact JSON,
a new body that starts and ends with the same bytes around its history has
the same fields but `messages`; only the history is read, and of the
history only what follows the messages already read before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

import msgspec

from coderouterd.errors import InvalidRequestError
from coderouterd.translate.anthropic_request import HistoryCheck

T = TypeVar("T")

_top = msgspec.json.Decoder(dict[str, msgspec.Raw])
_value = msgspec.json.Decoder(msgspec.Raw)
_list = msgspec.json.Decoder(list[msgspec.Raw])
_str = msgspec.json.Decoder(str)
_bool = msgspec.json.Decoder(bool)
_encode = msgspec.json.Encoder().encode
_OPEN_BRACKET = ord("[")
_CLOSE_BRACKET = ord("]")
_COMMA = ord(",")
MESSAGES = "messages"


@dataclass(frozen=True, slots=True)
class RequestBody:
    fields: dict[str, msgspec.Raw]
    model: str | None
    stream: bool
    profile: str | None
    # What is known of the history's thinking blocks (Anthropic upstreams).
    history: HistoryCheck = field(compare=False)


def parse_body(body: bytes) -> RequestBody:
    """Check the shape of a Messages or Chat Completions request; pull out model,
    stream and profile. Both dialects agree on these four keys.

    `profile` is removed from the fields: it is ours, not the upstream's.
    """
    if not body.strip():
        raise InvalidRequestError("request body is empty; expected a JSON object", field="body")
    try:
        fields = _top.decode(body)
    except msgspec.DecodeError as exc:
        raise InvalidRequestError(f"body is not a JSON object ({exc})", field="body") from exc
    model = _optional(fields, "model", _str, "a string")
    stream = _optional(fields, "stream", _bool, "a boolean") or False
    profile = _optional(fields, "profile", _str, "a string")
    fields.pop("profile", None)
    if MESSAGES not in fields:
        raise InvalidRequestError("field required", field=MESSAGES)
    messages = fields[MESSAGES]
    # A full decode of the history would cost as much as the rest of the request;
    # its first byte is enough to tell an array.
    if memoryview(messages)[0] != _OPEN_BRACKET:
        raise InvalidRequestError("must be an array", field=MESSAGES)
    return RequestBody(fields, model, stream, profile, HistoryCheck(messages))


def _optional(
    fields: dict[str, msgspec.Raw], name: str, decoder: msgspec.json.Decoder[T], what: str
) -> T | None:
    raw = fields.get(name)
    if raw is None:
        return None
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise InvalidRequestError(f"must be {what}", field=name) from exc


@dataclass(frozen=True, slots=True)
class _Known:
    """A body read whole once, or through a _Known before it: where its history lies."""

    body: bytes
    parsed: RequestBody
    start: int  # of the `messages` value
    end: int  # one past it
    # Whether the history has a message: only then can a comma and more follow it.
    continuable: bool


class BodyMemo:
    """The last body of recent conversations (bounded; only a cache: a body it
    cannot place is read whole, and an error is always that of `parse_body`)."""

    def __init__(self, max_conversations: int = 8) -> None:
        self._max = max_conversations
        self._known: list[_Known] = []
        # Bodies read through a remembered one instead of whole.
        self.reused = 0

    def parse(self, body: bytes) -> RequestBody:
        for i, known in enumerate(self._known):
            found = _through(known, body)
            if found is not None:
                self.reused += 1
                del self._known[i]
                self._known.insert(0, found)
                return found.parsed
        parsed = parse_body(body)
        learned = _learn(body, parsed)
        if learned is not None:
            self._known.insert(0, learned)
            del self._known[self._max :]
        return parsed


def _learn(body: bytes, parsed: RequestBody) -> _Known | None:
    """Where the history lies in a body that is compact JSON, else None.

    Compact means the body is exactly the encoding of its fields: no spacing
    to skip, no key escaped or repeated, so the bytes around the history are
    the other fields and nothing else.
    """
    fields = parsed.fields
    if parsed.profile is not None or _encode(fields) != body:
        return None
    names = list(fields)
    before = _encode({k: fields[k] for k in names[: names.index(MESSAGES)]})
    # `{"a":1}` -> `{"a":1,"messages":`; `{}` -> `{"messages":`
    head = before[:-1] + (b"," if len(before) > 2 else b"") + b'"messages":'
    if not body.startswith(head):
        return None
    start, size = len(head), len(fields[MESSAGES])
    # Compact: `[]` is the only empty history.
    return _Known(body, parsed, start, start + size, continuable=size > 2)


def _through(known: _Known, body: bytes) -> _Known | None:
    """`body` read through `known`: its fields, if it differs only in its history.

    The bytes before and after the history are those of `known`, so they hold
    the same fields; the history between them is read, as far as needed.
    """
    old = memoryview(known.body)
    start = known.start
    end = len(body) - (len(old) - known.end)
    if end <= start or not body.startswith(old[:start]) or not body.endswith(old[known.end :]):
        return None
    new = memoryview(body)[start:end]
    p = known.parsed
    was = known.end - start
    if len(new) == was and known.body.startswith(new, start):
        # The same body again (a retry): nothing new to read.
        history = HistoryCheck(p.fields[MESSAGES], unsigned=p.history.unsigned)
        return _Known(
            known.body, _with(p, p.fields[MESSAGES], history), start, known.end, known.continuable
        )
    read = _read_history(known, new)
    if read is None:
        return None
    history, continuable = read
    return _Known(body, _with(p, history.messages, history), start, end, continuable)


def _read_history(known: _Known, new: memoryview) -> tuple[HistoryCheck, bool] | None:
    """A history between known fields, if it is an array, and whether it has a message."""
    if new[0] != _OPEN_BRACKET or new[-1] != _CLOSE_BRACKET:
        # Not an array, or spacing after it that a whole read leaves out of its value.
        return None
    messages = msgspec.Raw(new)
    was = known.end - known.start
    if (
        known.continuable
        and len(new) > was
        and new[was - 1] == _COMMA
        and known.body.startswith(new[: was - 1], known.start)
        and _has_messages(b"[" + new[was:])
    ):
        # The messages read before, a comma, and more: only the more is read.
        clean_upto = was - 1 if known.parsed.history.unsigned is False else 0
        return HistoryCheck(messages, clean_upto=clean_upto), True
    try:
        _value.decode(new)
    except msgspec.DecodeError:
        return None
    return HistoryCheck(messages), _opens_with_message(new)


def _with(p: RequestBody, messages: msgspec.Raw, history: HistoryCheck) -> RequestBody:
    fields = dict(p.fields)
    fields[MESSAGES] = messages
    return RequestBody(fields, p.model, p.stream, p.profile, history)


def _has_messages(array: bytes) -> bool:
    """Whether `array` is a JSON array of one or more values."""
    try:
        return len(_list.decode(array)) > 0
    except msgspec.DecodeError:
        return False


def _opens_with_message(array: memoryview) -> bool:
    # A valid array: non-empty unless `]` follows `[` and spacing. Past 64 bytes
    # of spacing it is taken as empty, which only costs a whole read later.
    return bytes(array[1:65]).lstrip(b" \t\r\n")[:1] not in (b"]", b"")
