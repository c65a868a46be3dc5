"""Replay request bodies kept as shared pieces (pure).

A coding agent resends the whole conversation on every turn: the same
system prompt and tools, and a history that only grows at the end.
Compressing each body whole would cost about 1.7 ms of CPU per 80 KB
request and store the conversation again on every turn. Instead a body is
cut into pieces, `system`, `tools` and runs of `messages`, each stored once
under its SHA-256; a record keeps a small recipe naming its pieces.
The last run of `messages` stays in the recipe: it is the run the next turn
extends, so as a piece it would be named by this record alone.

A run of messages ends after a message whose digest's first byte is a
multiple of RUN_DIVISOR. The cut depends only on the messages themselves,
so the same history yields the same runs however much follows it, and from
one turn to the next only the last, still open run is new (and the run of
the message a client changed, e.g. to move its cache breakpoint). The open
run is stored again with every turn, so runs are short: a few messages.

A record's new pieces, when there are several, are written as one *pack*:
their bytes one after the other, compressed as one blob, each piece's row
naming where its bytes lie in it. zlib's cost on blobs of a few KB is per
call (a first turn's 39 new messages: ~570 us one by one, ~80 us together),
and together they compress to about a third of the bytes.

Hashing and decoding the history are most of the cost, so a `DigestMemo`
remembers the last body of recent conversations. A history that starts with
the bytes of an earlier one's closed runs reuses those runs as they are, or
all but the last few of them when a message there changed: only what
follows them is decoded, and a message there equal byte for byte to the one
at its place last time reuses that digest. `system` and `tools`
equal to a recent value reuse its digest. Comparing bytes is many times
cheaper than decoding or hashing them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import msgspec

from coderouterd.errors import CoderouterError
from coderouterd.lru import MEMO_BYTES, SizedLRU
from coderouterd.wire.prefix import kept_items

# Top-level fields stored as one piece each; `messages` is cut into runs.
WHOLE_FIELDS = ("system", "tools")
MESSAGES = "messages"
# Smaller values stay inline in the recipe: a piece costs a row and a lookup.
MIN_PIECE_BYTES = 512
RUN_DIVISOR = 4
# A piece named again this long after it was last written is written again
# (data included) with the new time, so a piece's last_ref is never more than
# this older than any record naming it. Retention relies on that.
PIECE_REFRESH_S = 3600.0
# Remembered whole fields of one length (system prompts, tool lists).
_SAME_LENGTH = 4
# How many of a remembered history's last closed runs a new one may differ in
# and still reuse the runs before them.
_RUNS_BACK = 3


_NO_TAIL = msgspec.Raw(b"")


class Piece(msgspec.Struct, frozen=True):
    digest: bytes
    # Raw JSON: a field's value, or a run of messages joined by commas.
    data: bytes


class Pack(msgspec.Struct, frozen=True):
    """Pieces' bytes one after the other, to be stored as one blob."""

    # Of the pieces' digests in order: the same pieces make the same pack.
    digest: bytes
    data: bytes
    # Each piece's digest, where its bytes start in `data`, and their length.
    places: list[tuple[bytes, int, int]]


def pack(new: Mapping[bytes, bytes]) -> Pack:
    """The pieces (bytes by digest) as one pack, in their order."""
    places = []
    at = 0
    for d, data in new.items():
        places.append((d, at, len(data)))
        at += len(data)
    return Pack(digest(b"".join(new)), b"".join(new.values()), places)


def unpack(data: bytes, places: list[tuple[bytes, int, int]]) -> dict[bytes, bytes]:
    """The pieces at these places of a pack's data; one that does not fit is left out."""
    return {d: data[at : at + n] for d, at, n in places if at >= 0 and at + n <= len(data)}


class Recipe(msgspec.Struct, frozen=True, omit_defaults=True):
    """The body's fields in their order, pieced ones as null, and their digests."""

    fields: dict[str, msgspec.Raw]
    pieces: dict[str, list[str]]
    # The last run of `messages`, as a JSON array: kept in the record itself,
    # since it is the run the next turn extends (a piece of it would be
    # written once and named by no later record).
    tail: msgspec.Raw = _NO_TAIL


class MissingPieceError(CoderouterError):
    """A stored body cannot be put together again: a piece it names, or an
    earlier record it continues, is not in the database (lost with a failed write)."""


_list = msgspec.json.Decoder(list[msgspec.Raw])
_recipe = msgspec.json.Decoder(Recipe)
_encode = msgspec.json.Encoder().encode
_NULL = msgspec.Raw(b"null")
_OPEN_BRACKET = ord("[")
_COMMA = ord(",")
_AFTER_RUN = frozenset(b",")


Buffer = bytes | memoryview | msgspec.Raw


def digest(data: Buffer) -> bytes:
    return hashlib.sha256(data).digest()


class _History(msgspec.Struct):
    """What the memo keeps of one conversation's last history."""

    # The history's raw JSON, its closed runs and where each ends in it.
    raw: bytes
    ends: list[int]
    closed: list[Piece]
    # The messages after the closed runs, and their digests.
    open_units: list[bytes]
    open_digests: list[bytes]


class DigestMemo:
    """The pieces of the last body of recent conversations, and recent whole
    fields (bounded by count and by bytes, each; only a cache: whatever it
    forgets is computed again).

    A caller that knows which conversation a body belongs to (ingress's
    BodyMemo does) passes it as `conversation`: the history is then checked
    against that conversation's alone, however many are remembered. It is a
    hint; the bytes are compared all the same.
    """

    def __init__(self, max_conversations: int = 64, max_bytes: int = MEMO_BYTES) -> None:
        self._max = max_conversations
        self._max_bytes = max_bytes
        # By conversation (or a key of our own), least recently used first.
        self._histories: SizedLRU[object, _History] = SizedLRU(
            max_conversations, max_bytes, lambda h: len(h.raw)
        )
        # Whole fields by length, each list newest first; lengths least recently used first.
        self._fields: dict[int, list[tuple[bytes, bytes]]] = {}
        self._field_bytes = 0
        # Histories that continued a remembered one (their closed runs reused).
        self.continued = 0

    def field(self, raw: Buffer) -> tuple[bytes, bytes]:
        """A whole field's bytes and digest (system, tools): a recently seen
        value is found by comparing bytes, and not copied again."""
        n = len(memoryview(raw))
        same = self._fields.pop(n, [])
        self._fields[n] = same
        for i, (known, d) in enumerate(same):
            # Of equal length: equal if it starts with them.
            if known.startswith(raw):
                same.insert(0, same.pop(i))
                return known, d
        unit = bytes(raw)
        d = digest(unit)
        same.insert(0, (unit, d))
        self._field_bytes += n
        for old, _ in same[_SAME_LENGTH:]:
            self._field_bytes -= len(old)
        del same[_SAME_LENGTH:]
        # The length just used is the newest: it goes last, whatever its size.
        while len(self._fields) > 2 * self._max or (
            self._field_bytes > self._max_bytes and len(self._fields) > 1
        ):
            for old, _ in self._fields.pop(next(iter(self._fields))):
                self._field_bytes -= len(old)
        return unit, d

    def size(self) -> tuple[int, int]:
        """Histories remembered, and their bytes with those of the whole fields."""
        return len(self._histories), self._histories.bytes + self._field_bytes

    @property
    def field_bytes(self) -> int:
        """The bytes of the whole fields remembered."""
        return self._field_bytes

    def history(
        self, raw: memoryview, conversation: object = None
    ) -> tuple[object, _History, int] | None:
        """The remembered history whose first closed runs `raw` continues, its
        key, and how many of its runs it continues."""
        if conversation is not None:
            h = self._histories.get(conversation)
            candidates = [] if h is None else [(conversation, h)]
        else:
            candidates = list(self._histories.newest_first())
        for key, h in candidates:
            # Only where more follows: the open run after the closed ones is new.
            k = kept_items(h.raw, h.ends, raw, back=_RUNS_BACK, delimiters=_AFTER_RUN)
            if k:
                self.continued += 1
                return key, h, k
        return None

    def remember(self, h: _History, replaces: object = None, conversation: object = None) -> None:
        if replaces is not None:
            self._histories.pop(replaces)
        key = conversation if conversation is not None else replaces
        if key is None:
            key = object()
        self._histories.put(key, h)


def split(
    fields: Mapping[str, msgspec.Raw],
    memo: DigestMemo | None = None,
    conversation: object = None,
) -> tuple[bytes, list[Piece]]:
    """The recipe (JSON) and the pieces of a request body's top-level fields.

    `conversation`: a hint for the memo (see DigestMemo).
    """
    out: dict[str, msgspec.Raw] = {}
    refs: dict[str, list[str]] = {}
    parts: list[Piece] = []
    tail = _NO_TAIL
    for name, raw in fields.items():
        if len(raw) < MIN_PIECE_BYTES:
            out[name] = raw
        elif name in WHOLE_FIELDS:
            out[name] = _NULL
            unit, d = memo.field(raw) if memo else (bytes(raw), digest(raw))
            refs[name] = [d.hex()]
            parts.append(Piece(d, unit))
        elif name == MESSAGES and memoryview(raw)[0] == _OPEN_BRACKET:
            out[name] = _NULL
            runs, last = _history_runs(memoryview(raw), memo, conversation)
            if last is None:
                out[name] = raw
                continue
            refs[name] = [p.digest.hex() for p in runs]
            parts += runs
            tail = msgspec.Raw(b"[" + last + b"]")
        else:
            out[name] = raw
    return _encode(Recipe(out, refs, tail)), parts


def _history_runs(
    raw: memoryview, memo: DigestMemo | None, conversation: object
) -> tuple[list[Piece], bytes | None]:
    """The runs of a history but its last, and the last one's data (None
    for an empty history); `raw` is its JSON array."""
    found = memo.history(raw, conversation) if memo is not None else None
    key, known, k = found if found is not None else (None, None, 0)
    if known is None:
        closed: list[Piece] = []
        ends: list[int] = []
        offset = 0
        units = [bytes(m) for m in _list.decode(raw)]
        digests = [digest(u) for u in units]
    else:
        closed, ends = known.closed[:k], known.ends[:k]
        offset = ends[-1]
        units = [bytes(m) for m in _list.decode(b"[" + raw[offset + 1 :])]
        # The remembered open messages follow the last closed run only.
        before, was = (known.open_units, known.open_digests) if k == len(known.ends) else ([], [])
        digests = [
            was[i] if i < len(before) and before[i] == u else digest(u) for i, u in enumerate(units)
        ]
    runs, last_from = _runs(units, digests)
    if not runs:
        return [], None
    if memo is not None:
        # The last run is remembered as open even when its last message closed
        # it: that message is the one a client changes next turn (it moves its
        # cache breakpoint off it), and a run that ends the history has no
        # comma after it to confirm where it ends.
        closing = runs[:-1]
        new_ends = _closed_ends(raw, offset, closing)
        kept = [*closed, *closing] if new_ends else closed
        rest = last_from if new_ends else 0
        # A history sent again unchanged (a retry) keeps the bytes already held.
        same = known is not None and _equal(known.raw, raw)
        held = known.raw if same and known is not None else bytes(raw)
        remembered = _History(held, [*ends, *new_ends], kept, units[rest:], digests[rest:])
        memo.remember(remembered, key, conversation)
    return [*closed, *runs[:-1]], runs[-1].data


def _closed_ends(raw: memoryview, offset: int, closing: list[Piece]) -> list[int]:
    """Where each newly closed run ends in `raw`, if they follow `offset` as
    compact JSON (a history with other spacing is not reused); else none."""
    if not closing:
        return []
    joined = b",".join(r.data for r in closing)
    start = offset + 1
    end = start + len(joined)
    if not (len(raw) > end and raw[end] == _COMMA and _equal(joined, raw[start:end])):
        return []
    ends = []
    for r in closing:
        start += len(r.data)
        ends.append(start)
        start += 1
    return ends


def _equal(held: bytes, raw: Buffer) -> bool:
    # bytes.startswith compares a buffer without copying it; == would copy or
    # compare item by item.
    return len(held) == len(memoryview(raw)) and held.startswith(raw)


def _runs(messages: list[bytes], digests: list[bytes]) -> tuple[list[Piece], int]:
    """The runs of these messages, and where the last one starts."""
    runs: list[Piece] = []
    start = last = 0
    for i, d in enumerate(digests):
        if d[0] % RUN_DIVISOR == 0:
            runs.append(_run(messages[start : i + 1], digests[start : i + 1]))
            start, last = i + 1, start
    if start < len(messages):
        runs.append(_run(messages[start:], digests[start:]))
        last = start
    return runs, last


def _run(members: list[bytes], digests: list[bytes]) -> Piece:
    # Digest of the members' digests: no need to hash the bytes twice.
    return Piece(digest(b"".join(digests)), b",".join(members))


def digests_in(recipe: bytes) -> list[bytes]:
    """Every piece a recipe needs, in order."""
    return [bytes.fromhex(h) for hexes in _recipe.decode(recipe).pieces.values() for h in hexes]


def join(recipe: bytes, pieces: Mapping[bytes, bytes]) -> bytes:
    """The body again, from its recipe and the pieces' data by digest."""
    r = _recipe.decode(recipe)
    fields = dict(r.fields)
    for name, hexes in r.pieces.items():
        parts = []
        for h in hexes:
            data = pieces.get(bytes.fromhex(h))
            if data is None:
                raise MissingPieceError(f"piece {h[:12]} of `{name}` is missing")
            parts.append(data)
        if name == MESSAGES:
            if r.tail:
                parts.append(bytes(r.tail)[1:-1])
            fields[name] = msgspec.Raw(b"[" + b",".join(parts) + b"]")
        else:
            fields[name] = msgspec.Raw(parts[0])
    return _encode(fields)
