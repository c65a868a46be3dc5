"""Translations of a conversation's history kept between its turns (pure).

A conversation resends its whole history every turn, and a message's
translation depends on nothing but its own bytes and the backend's
capabilities (fixed per codec): keeping recent translations by bytes lets a
turn translate only what it has not sent before.

Looking each message up by its bytes still hashes the whole history every
turn. So each conversation's last translated history is kept as well, with
where each of its messages ends: a turn whose history starts with the same
bytes, up to the end of one of those messages, takes their translations as
they are, and only the messages after them are looked up or translated.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import msgspec

from coderouterd.translate.types import Degradation, Notes

_encode = msgspec.json.Encoder().encode


class Entry(NamedTuple):
    """One message's translation: its OpenAI messages (encoded, comma-joined;
    b"" for none), the notes it took, the tool call ids it makes (an
    assistant message) and answers (a user message's tool results), and the
    roles of its messages in order, which tell whether its neighbours pair
    up, and their roles follow each other, without decoding it again."""

    encoded: bytes
    notes: tuple[Degradation, ...]
    calls: tuple[str, ...] = ()
    answers: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LastTurn:
    """A conversation's `messages` as last translated, in compact JSON."""

    raw: bytes
    # Where each message ends in `raw`: the offset of the `,` or `]` after it.
    ends: tuple[int, ...]
    # Each message's translation.
    entries: tuple[Entry, ...]
    # Whether every tool call and result of these messages paired up.
    paired: bool


class TranslatedHistory:
    """Recently translated messages by their bytes, and the last translated
    history of recent conversations, for one backend's capabilities (each
    bounded by `max_bytes` of JSON, and the histories by count too, least
    recently used out; only a cache)."""

    def __init__(self, max_bytes: int = 8 << 20, max_conversations: int = 32) -> None:
        self._max = max_bytes
        self._bytes = 0
        self._max_turns = max_conversations
        # By conversation (ingress's hint), least recently used first.
        self._turns: collections.OrderedDict[object, LastTurn] = collections.OrderedDict()
        self._turn_bytes = 0
        # Message bytes -> its translation.
        self._known: collections.OrderedDict[bytes, Entry] = collections.OrderedDict()
        self.reused = 0

    def get(self, message: bytes) -> Entry | None:
        known = self._known.get(message)
        if known is not None:
            self._known.move_to_end(message)
            self.reused += 1
        return known

    def through(self, key: bytes, notes: Notes, translate: Callable[[Notes], bytes]) -> bytes:
        """What `translate` gives for `key`, remembered; the notes it took are
        added to `notes` on every call, remembered or not."""
        known = self.entry(key, lambda own: Entry(translate(own), ()))
        for d in known.notes:
            notes.add(d.field, d.reason)
        return known.encoded

    def entry(self, key: bytes, translate: Callable[[Notes], Entry]) -> Entry:
        """What `translate` gives for `key` (the notes it adds to the Notes it
        is handed are kept in the entry), remembered."""
        known = self.get(key)
        if known is None:
            own = Notes()
            known = translate(own)._replace(notes=tuple(own.items()))
            self.put(key, known)
        return known

    def put(self, message: bytes, translated: Entry) -> None:
        if message in self._known:
            return
        self._known[message] = translated
        self._bytes += len(message) + len(translated.encoded)
        while self._bytes > self._max:
            old, out = self._known.popitem(last=False)
            self._bytes -= len(old) + len(out.encoded)

    def last_turn(self, conversation: object) -> LastTurn | None:
        return self._turns.get(conversation)

    def remember_turn(self, conversation: object, turn: LastTurn) -> None:
        size = len(turn.raw)
        if size > self._max or not self._max_turns:
            return
        old = self._turns.pop(conversation, None)
        if old is not None:
            self._turn_bytes -= len(old.raw)
        self._turns[conversation] = turn
        self._turn_bytes += size
        while len(self._turns) > self._max_turns or self._turn_bytes > self._max:
            _, out = self._turns.popitem(last=False)
            self._turn_bytes -= len(out.raw)


def entry_of(translated: list[dict[str, Any]]) -> Entry:
    """The Entry of one message's translation (`translated`), its notes to come."""
    calls: tuple[str, ...] = ()
    answers: tuple[str, ...] = ()
    for m in translated:
        if m["role"] == "tool":
            answers += (m["tool_call_id"],)
        elif "tool_calls" in m:
            calls = tuple(c["id"] for c in m["tool_calls"])
    roles = tuple(m["role"] for m in translated)
    return Entry(b",".join(_encode(m) for m in translated), (), calls, answers, roles)
