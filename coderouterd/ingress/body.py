"""Decode only the top-level keys a request needs; leave the rest as raw JSON (pure).

Checking that a body is JSON means reading all of it: about 40 us for the
80 KB a coding agent sends on every turn, the largest single cost of a
request. A `BodyMemo` reads most of that only once per conversation. A
turn's body is the previous turn's with more messages: the same bytes
before the history and after it, and the same messages up to the end of
one of the last few (a client may have changed the last one, moving its
cache breakpoint). Given a remembered body in compact JSON, a new body that
matches it so has the same fields but `messages`, and only the messages
after that point are read.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import msgspec

from coderouterd.errors import NESTED_TOO_DEEP, InvalidRequestError
from coderouterd.lru import MEMO_BYTES, SizedLRU
from coderouterd.translate.anthropic_request import HistoryCheck
from coderouterd.translate.estimate import MediaScan
from coderouterd.wire.empty import says_nothing

T = TypeVar("T")

_top = msgspec.json.Decoder(dict[str, msgspec.Raw])
_list = msgspec.json.Decoder(list[msgspec.Raw])
_str = msgspec.json.Decoder(str)
_bool = msgspec.json.Decoder(bool)
_encode = msgspec.json.Encoder().encode
_OPEN_BRACKET = ord("[")
_CLOSE_BRACKET = ord("]")
_COMMA = ord(",")
MESSAGES = "messages"
AT_LEAST_ONE_MESSAGE = "at least one message is required"


@dataclass(frozen=True, slots=True)
class RequestBody:
    fields: dict[str, msgspec.Raw]
    model: str | None
    stream: bool
    profile: str | None
    # What is known of the history's thinking blocks (Anthropic upstreams).
    history: HistoryCheck = field(compare=False)
    # Which remembered conversation (BodyMemo) this body belongs to, if any:
    # a hint for other caches of the conversation, never trusted without a compare.
    conversation: int | None = None
    # The body's bytes when they are exactly `fields` encoded (a compact body
    # BodyMemo placed in a conversation), for whoever keeps the body as sent.
    raw: bytes | None = field(default=None, compare=False, repr=False)
    # Which body of its conversation this is (from 1; 0 outside any), and how
    # many first bytes it has in common with the one before (0: unknown), as
    # BodyMemo compared them: a hint for whoever keeps the conversation's last.
    turn: int = field(default=0, compare=False)
    shared: int = field(default=0, compare=False)
    # Where the last messages (up to MAX_BOUNDS - 1) lie in `raw`: message k
    # between bounds[k] + 1 and bounds[k + 1], the first bound being the `[`
    # or the `,` before the first of them. Empty when not known (not compact).
    bounds: tuple[int, ...] = field(default=(), compare=False, repr=False)
    # What is known of the history's inline media (prompt estimates).
    media: MediaScan | None = field(default=None, compare=False, repr=False)


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
    except RecursionError as exc:
        raise InvalidRequestError(NESTED_TOO_DEEP, field="body") from exc
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
    if says_nothing(messages):
        # Both APIs refuse it; a backend given none answers an error of its
        # own (llama.cpp: "No user query found", a 500) or a prompt nobody asked.
        raise InvalidRequestError(AT_LEAST_ONE_MESSAGE, field=MESSAGES)
    return RequestBody(
        fields, model, stream, profile, HistoryCheck(messages), media=MediaScan(messages)
    )


def newest_first(
    body: RequestBody, keep: Callable[[bytes, int, int], bool] | None = None
) -> Iterator[memoryview | msgspec.Raw]:
    """The history's messages, newest first, undecoded.

    Through the bounds BodyMemo found (the last MAX_BOUNDS - 1 messages) when
    it placed the body, slices of it, and `keep(raw, lo, hi)` may pass over a
    message by its bytes without a copy; otherwise the whole history, read
    once, its last MAX_BOUNDS - 1 messages kept: how far back a reader looks
    must not depend on the body's spacing.
    """
    raw, bounds = body.raw, body.bounds
    if raw is None or len(bounds) < 2:
        try:
            messages = _list.decode(body.fields[MESSAGES])
            yield from reversed(messages[-(MAX_BOUNDS - 1) :])
        except (msgspec.DecodeError, RecursionError, KeyError):
            return
        return
    view = memoryview(raw)
    for k in range(len(bounds) - 1, 0, -1):
        lo, hi = bounds[k - 1] + 1, bounds[k]
        if keep is None or keep(raw, lo, hi):
            yield view[lo:hi]


def _optional(
    fields: dict[str, msgspec.Raw], name: str, decoder: msgspec.json.Decoder[T], what: str
) -> T | None:
    raw = fields.get(name)
    # JSON null is the field left out: OpenAI's schema allows it for `stream`
    # and clients that serialise every field of their own types send it.
    if raw is None or bytes(raw).strip() == b"null":
        return None
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise InvalidRequestError(f"must be {what}", field=name) from exc
    except msgspec.DecodeError as exc:
        # Invalid UTF-8 inside a string: not caught by the skipping first read.
        raise InvalidRequestError(f"must be {what} ({exc})", field=name) from exc


# A later turn goes on after one of the last few messages: the one before the
# last is where it does when the client moved a cache breakpoint off the last.
_CUTS = 4
# Bytes compared before a cut to tell a conversation's turn from another's.
_PROBE = 16
# Last bytes of a body it is filed by.
_END = 32
# Message bounds kept per body: 100 messages, the last 50 tool calls with
# their results (tool_loop_window's largest).
MAX_BOUNDS = 101


@dataclass(frozen=True, slots=True)
class _Known:
    """A body read whole once, or through a _Known before it: where its history lies."""

    body: bytes
    parsed: RequestBody
    start: int  # of the `messages` value
    end: int  # one past it
    # Where the last few messages end in `body`: the `,` after each, or the
    # closing `]` after the last. A later turn may go on from any of them.
    cuts: tuple[int, ...]
    # Each field in order, with where its value lies: (name, offset, size,
    # whether after the history: then the offset counts from `end`). A later
    # turn's fields are cut from its own body, so no earlier body is kept
    # alive through them.
    layout: tuple[tuple[str, int, int, bool], ...]


class BodyMemo:
    """The last body of recent conversations (bounded; only a cache: a body it
    cannot place is read whole, and an error is always that of `parse_body`).

    Bodies are filed by their last bytes, which lie after the history (the
    fields that follow it: for a coding agent its session's metadata), so
    finding a body's conversation among many costs a dict lookup and a few
    byte compares.
    """

    def __init__(self, max_conversations: int = 64, max_bytes: int = MEMO_BYTES) -> None:
        # By conversation, least recently used first.
        self._known: SizedLRU[int, _Known] = SizedLRU(
            max_conversations, max_bytes, lambda known: len(known.body)
        )
        # Conversations by how many bytes end them (at most _END), then by those bytes.
        self._by_end: dict[int, dict[bytes, list[int]]] = {}
        self._ids = itertools.count(1)
        # Bodies read through a remembered one instead of whole.
        self.reused = 0

    def size(self) -> tuple[int, int]:
        """Conversations remembered, and the bytes of their bodies."""
        return len(self._known), self._known.bytes

    def parse(self, body: bytes) -> RequestBody:
        for n, filed in self._by_end.items():
            for conversation in reversed(filed.get(body[-n:], ())):
                known = self._known.get(conversation)
                found = None if known is None else _through(known, body)
                if found is not None:
                    self.reused += 1
                    self._forget(self._known.put(conversation, found))
                    return found.parsed
        parsed = parse_body(body)
        first = dataclasses.replace(parsed, conversation=next(self._ids), raw=body, turn=1)
        learned = _learn(body, first)
        if learned is None:
            return parsed
        self._add(learned)
        return learned.parsed

    def _add(self, known: _Known) -> None:
        conversation = known.parsed.conversation
        assert conversation is not None
        n, end = _end_of(known)
        self._by_end.setdefault(n, {}).setdefault(end, []).append(conversation)
        self._forget(self._known.put(conversation, known))

    def _forget(self, evicted: list[tuple[int, _Known]]) -> None:
        """Unfile the bodies the memo let go."""
        for conversation, oldest in evicted:
            n, end = _end_of(oldest)
            filed = self._by_end[n]
            filed[end].remove(conversation)
            if not filed[end]:
                del filed[end]
            if not filed:
                del self._by_end[n]


def _end_of(known: _Known) -> tuple[int, bytes]:
    """The bytes a body is filed by: its last ones, after the history."""
    n = min(_END, len(known.body) - known.end)
    return n, known.body[-n:]


def _learn(body: bytes, parsed: RequestBody) -> _Known | None:
    """Where the history lies in a body that is compact JSON, else None.

    Compact means the body is exactly the encoding of its fields: no spacing
    to skip, no key escaped or repeated, so the bytes around the history are
    the other fields and nothing else, and each message ends where its
    length says.
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
    start = len(head)
    end = start + len(fields[MESSAGES])
    layout = []
    at = 1  # after `{`
    for name, value in fields.items():
        at += len(_encode(name)) + 1
        after = at > start
        layout.append((name, at - end if after else at, len(value), after))
        at += len(value) + 1
    ends = _ends(start, _list.decode(fields[MESSAGES]))
    parsed = dataclasses.replace(parsed, bounds=(start, *ends)[-MAX_BOUNDS:])
    return _Known(body, parsed, start, end, tuple(ends[-_CUTS:]), tuple(layout))


def _ends(at: int, messages: list[msgspec.Raw]) -> list[int]:
    """Where compact `messages` end (the `,` or `]` after each), in an array
    whose `[` (or the `,` before them) is at offset `at`."""
    ends = []
    for m in messages:
        at += 1 + len(m)
        ends.append(at)
    return ends


def _through(known: _Known, body: bytes) -> _Known | None:
    """`body` read through `known`: its fields, if it is `known` again or goes on
    from one of its cuts with more messages and the same bytes after the history.

    The bytes before the cut and after the history are those of `known`, so
    they hold the same fields and messages; only what follows the cut is read.
    """
    old = known.body
    if len(body) == len(old) and body == old:
        # Sent again unchanged (a retry): nothing new to read.
        p = known.parsed
        history = HistoryCheck(p.fields[MESSAGES], unsigned=p.history.unsigned)
        again = _with(p, p.fields, history, old, shared=len(old), bounds=p.bounds, media=p.media)
        return _Known(old, again, known.start, known.end, known.cuts, known.layout)
    new = memoryview(body)
    end = len(body) - (len(old) - known.end)
    for cut in reversed(known.cuts):
        if end <= cut + 1 or new[cut] != _COMMA:
            continue
        probe = max(cut - _PROBE, known.start)
        if not old.startswith(new[probe:cut], probe):
            continue
        # This conversation: it goes on from here, or from nowhere.
        if old.startswith(new[:probe]) and body.endswith(memoryview(old)[known.end :]):
            return _go_on(known, body, cut, end)
        return None
    return None


def _go_on(known: _Known, body: bytes, cut: int, end: int) -> _Known | None:
    if body[end - 1] != _CLOSE_BRACKET:
        # Spacing after the history, which a whole read leaves out of its value.
        return None
    try:
        more = _list.decode(b"[" + memoryview(body)[cut + 1 : end])
    except (msgspec.DecodeError, RecursionError):
        # Read whole instead, to fail with parse_body's error.
        return None
    if not more:
        return None
    start, p = known.start, known.parsed
    messages = msgspec.Raw(memoryview(body)[start:end])
    clean_upto = cut - start if p.history.unsigned is False else 0
    history = HistoryCheck(messages, clean_upto=clean_upto)
    kept = tuple(c for c in known.cuts if c <= cut)
    compact = cut + 1 + sum(len(m) + 1 for m in more) == end
    ends = _ends(cut, more) if compact else []
    cuts = (*kept, *ends) if compact else kept
    bounds = (
        (p.bounds[: bisect.bisect_right(p.bounds, cut)] + tuple(ends))[-MAX_BOUNDS:]
        if compact
        else ()
    )
    view = memoryview(body)
    fields = {
        name: messages
        if name == MESSAGES
        else msgspec.Raw(view[at + end if after else at :][:size])
        for name, at, size, after in known.layout
    }
    media = p.media.going_on(messages, cut - start) if p.media is not None else None
    # _through compared the bytes before the cut with the known body's.
    parsed = _with(p, fields, history, body, shared=cut, bounds=bounds, media=media)
    return _Known(body, parsed, start, end, cuts[-_CUTS:], known.layout)


def _with(
    p: RequestBody,
    fields: dict[str, msgspec.Raw],
    history: HistoryCheck,
    raw: bytes,
    *,
    shared: int,
    bounds: tuple[int, ...],
    media: MediaScan | None,
) -> RequestBody:
    """The next body of `p`'s conversation."""
    return RequestBody(
        dict(fields),
        p.model,
        p.stream,
        p.profile,
        history,
        p.conversation,
        raw,
        p.turn + 1,
        shared,
        bounds,
        media,
    )
