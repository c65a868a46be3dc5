"""Replay request bodies kept as shared pieces (pure).

A coding agent resends the whole conversation on every turn: the same
system prompt and tools, and a history that only grows at the end.
Compressing each body whole would cost about 1.7 ms of CPU per 80 KB
request and store the conversation again on every turn. Instead a body is
cut into pieces, `system`, `tools` and runs of `messages`, each stored once
under its SHA-256; a record keeps a small recipe naming its pieces.

A run of messages ends after a message whose digest's first byte is a
multiple of RUN_DIVISOR. The cut depends only on the messages themselves,
so the same history yields the same runs however much follows it, and from
one turn to the next only the last, still open run is new.

Hashing is most of the cost, so a `DigestMemo` remembers the previous body
of recent conversations: a unit (system, tools, a message) equal byte for
byte to the one at its place last time reuses that digest, and comparing
bytes is several times cheaper than hashing them.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping

import msgspec

from coderouterd.errors import CoderouterError

# Top-level fields stored as one piece each; `messages` is cut into runs.
WHOLE_FIELDS = ("system", "tools")
MESSAGES = "messages"
# Smaller values stay inline in the recipe: a piece costs a row and a lookup.
MIN_PIECE_BYTES = 512
RUN_DIVISOR = 8
# A piece named again this long after it was last written is written again
# (data included) with the new time, so a piece's last_ref is never more than
# this older than any record naming it. Retention relies on that.
PIECE_REFRESH_S = 3600.0


class Piece(msgspec.Struct, frozen=True):
    digest: bytes
    # Raw JSON: a field's value, or a run of messages joined by commas.
    data: bytes


class Recipe(msgspec.Struct, frozen=True):
    """The body's fields in their order, pieced ones as null, and their digests."""

    fields: dict[str, msgspec.Raw]
    pieces: dict[str, list[str]]


class MissingPieceError(CoderouterError):
    """A recipe names a piece the database does not have (lost with a failed write)."""


_list = msgspec.json.Decoder(list[msgspec.Raw])
_recipe = msgspec.json.Decoder(Recipe)
_encode = msgspec.json.Encoder().encode
_NULL = msgspec.Raw(b"null")
_OPEN_BRACKET = ord("[")


def digest(data: bytes | memoryview) -> bytes:
    return hashlib.sha256(data).digest()


class DigestMemo:
    """The units and digests of the last body of recent conversations, each
    known by its first message (bounded LRU; only a cache)."""

    def __init__(self, max_conversations: int = 8) -> None:
        self._max = max_conversations
        self._last: OrderedDict[bytes, tuple[list[bytes], list[bytes]]] = OrderedDict()

    def digests(self, units: list[bytes], key: bytes | None) -> list[bytes]:
        previous = self._last.get(key) if key is not None else None
        if previous is None:
            out = [digest(u) for u in units]
        else:
            before, known = previous
            out = [
                known[i] if i < len(before) and before[i] == u else digest(u)
                for i, u in enumerate(units)
            ]
        if key is not None:
            self._last[key] = (units, out)
            self._last.move_to_end(key)
            while len(self._last) > self._max:
                self._last.popitem(last=False)
        return out


def split(
    fields: Mapping[str, msgspec.Raw], memo: DigestMemo | None = None
) -> tuple[bytes, list[Piece]]:
    """The recipe (JSON) and the pieces of a request body's top-level fields."""
    out: dict[str, msgspec.Raw] = {}
    whole: list[str] = []
    units: list[bytes] = []
    messages: list[bytes] = []
    for name, raw in fields.items():
        if len(raw) < MIN_PIECE_BYTES:
            out[name] = raw
        elif name in WHOLE_FIELDS:
            out[name] = _NULL
            whole.append(name)
            units.append(bytes(raw))
        elif name == MESSAGES and memoryview(raw)[0] == _OPEN_BRACKET:
            out[name] = _NULL
            messages = [bytes(m) for m in _list.decode(raw)]
        else:
            out[name] = raw
    if not units and not messages:
        return _encode(Recipe(out, {})), []
    units += messages
    key = messages[0] if messages else None
    digests = memo.digests(units, key) if memo is not None else [digest(u) for u in units]
    n = len(whole)
    pieces = [Piece(d, u) for d, u in zip(digests[:n], units[:n], strict=True)]
    refs = {name: [p.digest.hex()] for name, p in zip(whole, pieces, strict=True)}
    if messages:
        runs = _runs(messages, digests[n:])
        refs[MESSAGES] = [p.digest.hex() for p in runs]
        pieces += runs
    return _encode(Recipe(out, refs)), pieces


def _runs(messages: list[bytes], digests: list[bytes]) -> list[Piece]:
    runs: list[Piece] = []
    start = 0
    for i, d in enumerate(digests):
        if d[0] % RUN_DIVISOR == 0:
            runs.append(_run(messages[start : i + 1], digests[start : i + 1]))
            start = i + 1
    if start < len(messages):
        runs.append(_run(messages[start:], digests[start:]))
    return runs


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
            fields[name] = msgspec.Raw(b"[" + b",".join(parts) + b"]")
        else:
            fields[name] = msgspec.Raw(parts[0])
    return _encode(fields)
