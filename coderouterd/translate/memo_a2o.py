"""Translations of a conversation's history kept between its turns (pure).

A conversation resends its whole history every turn, and a message's
translation depends on nothing but its own bytes and the backend's
capabilities (fixed per codec): keeping recent translations by bytes lets a
turn translate only what it has not sent before.
"""

from __future__ import annotations

import collections
from collections.abc import Callable

from coderouterd.translate.types import Degradation, Notes


class TranslatedHistory:
    """Recently translated messages by their bytes, for one backend's
    capabilities (bounded by bytes, least recently used out; only a cache)."""

    def __init__(self, max_bytes: int = 8 << 20) -> None:
        self._max = max_bytes
        self._bytes = 0
        # Message bytes -> its OpenAI messages (encoded, comma-joined) and notes.
        self._known: collections.OrderedDict[bytes, tuple[bytes, tuple[Degradation, ...]]] = (
            collections.OrderedDict()
        )
        self.reused = 0

    def get(self, message: bytes) -> tuple[bytes, tuple[Degradation, ...]] | None:
        known = self._known.get(message)
        if known is not None:
            self._known.move_to_end(message)
            self.reused += 1
        return known

    def through(self, key: bytes, notes: Notes, translate: Callable[[Notes], bytes]) -> bytes:
        """What `translate` gives for `key`, remembered; the notes it took are
        added to `notes` on every call, remembered or not."""
        known = self.get(key)
        if known is None:
            own = Notes()
            known = (translate(own), tuple(own.items()))
            self.put(key, known)
        encoded, degraded = known
        for d in degraded:
            notes.add(d.field, d.reason)
        return encoded

    def put(self, message: bytes, translated: tuple[bytes, tuple[Degradation, ...]]) -> None:
        if message in self._known:
            return
        self._known[message] = translated
        self._bytes += len(message) + len(translated[0])
        while self._bytes > self._max:
            old, (out, _) = self._known.popitem(last=False)
            self._bytes -= len(old) + len(out)
