"""Replay records: what is kept of a request, and how it is read back.

Everything here is pure except the read helpers at the bottom. The state
writer stores rows built from `redact_headers`, `compress` and a
`ResponseCapture`; `coderouterd replay` reads them back with `get_replay`,
sends the request again, and prints how the two assembled responses differ
(state/replay_diff).
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Mapping

import aiosqlite
import msgspec

from coderouterd.state import deltas, pieces
from coderouterd.state.assemble import Dialect
from coderouterd.state.records import BODY_DELTA, BODY_PIECES

# Headers that change what a provider answers, or identify the client and
# session for the person reading a replay. Anything else is dropped: an
# allow-list cannot leak a credential header invented next year.
SAFE_HEADERS = frozenset(
    {
        "anthropic-version",
        "anthropic-beta",
        "content-type",
        "user-agent",
        "x-app",
        "x-coderouter-mode",
        "x-coderouter-profile",
        "x-request-id",
        "x-claude-code-session-id",
    }
)
# Checked even for allowed names, so a careless addition above stays safe.
_SECRET_PARTS = ("key", "token", "secret", "auth", "cookie", "password")

# Level 1: a new turn's pieces (about 8 KB) compress in ~35 us instead of
# ~105 us at level 6, for about a tenth more bytes stored.
_ZLIB_LEVEL = 1


def redact_headers(
    headers: Mapping[str, str], allowed: frozenset[str] = SAFE_HEADERS
) -> dict[str, str]:
    """The allowed headers, names lower-cased; repeated ones joined by ", "."""
    keep = _keepable(allowed)
    out: dict[str, str] = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower in keep:
            out[lower] = f"{out[lower]}, {value}" if lower in out else value
    return out


@functools.lru_cache(maxsize=8)
def _keepable(allowed: frozenset[str]) -> frozenset[str]:
    # Once per allow-list, not once per header of every recorded request.
    return frozenset(n for n in allowed if not any(part in n for part in _SECRET_PARTS))


# Below this, zlib's set-up costs more CPU than the bytes it would save.
_COMPRESS_FROM = 1024
# A zlib stream never starts with 0: its first byte names the deflate method.
_STORED = b"\x00"


def compress(data: bytes) -> bytes:
    if len(data) < _COMPRESS_FROM:
        return stored(data)
    return zlib.compress(data, _ZLIB_LEVEL)


def stored(data: bytes) -> bytes:
    """`data` as a blob `decompress` reads, uncompressed."""
    return _STORED + data


def decompress(blob: bytes) -> bytes:
    if blob[:1] == _STORED:
        return blob[1:]
    return zlib.decompress(blob)


class ResponseCapture:
    """The first `limit` bytes of a response; the rest is counted, not kept."""

    __slots__ = ("_chunks", "_size", "limit", "seen", "truncated")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen = 0
        self.truncated = False
        self._chunks: list[bytes] = []
        self._size = 0

    def add(self, chunk: bytes) -> None:
        self.seen += len(chunk)
        room = self.limit - self._size
        if len(chunk) > room:
            self.truncated = True
            chunk = chunk[: max(room, 0)]
        if chunk:
            self._chunks.append(chunk)
            self._size += len(chunk)

    @property
    def data(self) -> bytes:
        return b"".join(self._chunks)


# --- reading stored records ---------------------------------------------------


class ReplayRecord(msgspec.Struct, frozen=True, kw_only=True):
    request_id: str
    ts: float
    dialect: Dialect
    profile: str
    provider: str | None
    stream: bool
    request_headers: dict[str, str]
    request_body: bytes
    response_body: bytes | None
    response_truncated: bool


class ReplaySummary(msgspec.Struct, frozen=True, kw_only=True):
    request_id: str
    ts: float
    dialect: Dialect
    profile: str
    provider: str | None
    stream: bool
    size: int


_headers_decoder = msgspec.json.Decoder(dict[str, str])

_SELECT_ONE = (
    "SELECT request_id, ts, dialect, profile, provider, stream, request_headers,"
    " response_body, response_truncated"
    " FROM replays WHERE request_id = ?"
)
_SELECT_BODY = (
    "SELECT request_body, body_format, base_id, base_len FROM replays WHERE request_id = ?"
)
# Bound per query, well under SQLite's limit on variables.
_PIECES_PER_QUERY = 500

# What reading back a stored record raises when it cannot be put together:
# a piece or earlier record lost, a blob that is not zlib, a recipe that is
# not JSON or names a digest that is not hex.
UNREADABLE = (pieces.MissingPieceError, zlib.error, msgspec.MsgspecError, ValueError)


async def get_replay(conn: aiosqlite.Connection, request_id: str) -> ReplayRecord | None:
    """The record, its request body whole again; MissingPieceError if a piece
    or an earlier record its body continues is gone, or a blob is damaged."""
    async with conn.execute(_SELECT_ONE, (request_id,)) as cursor:
        row = await cursor.fetchone()
    if row is None:
        return None
    response = row[7]
    body = await request_body(conn, request_id)
    try:
        headers = _headers_decoder.decode(row[6])
    except UNREADABLE as exc:
        raise _damaged(request_id, "request headers", exc) from exc
    try:
        response_body = None if response is None else decompress(response)
    except UNREADABLE as exc:
        raise _damaged(request_id, "response body", exc) from exc
    return ReplayRecord(
        request_id=row[0],
        ts=row[1],
        dialect=row[2],
        profile=row[3],
        provider=row[4],
        stream=bool(row[5]),
        request_headers=headers,
        request_body=body,
        response_body=response_body,
        response_truncated=bool(row[8]),
    )


async def request_body(conn: aiosqlite.Connection, request_id: str) -> bytes:
    """A stored record's request body, whole: its blob, with its pieces joined
    in or the earlier records it continues read first. MissingPieceError when
    it cannot be put together: a piece or earlier record gone, a blob damaged."""
    try:
        return await _request_body(conn, request_id)
    except pieces.MissingPieceError:
        raise
    except UNREADABLE as exc:
        raise _damaged(request_id, "request body", exc) from exc


def _damaged(request_id: str, what: str, exc: Exception) -> pieces.MissingPieceError:
    return pieces.MissingPieceError(
        f"the replay record of {request_id} is damaged: its {what} cannot be read ({exc})"
    )


async def _request_body(conn: aiosqlite.Connection, request_id: str) -> bytes:
    added: list[tuple[int, bytes]] = []
    at = request_id
    while True:
        async with conn.execute(_SELECT_BODY, (at,)) as cursor:
            row = await cursor.fetchone()
        if row is None:
            raise pieces.MissingPieceError(
                f"record {at}, whose body {request_id}'s continues, is missing"
            )
        blob, body_format, base_id, base_len = row
        if body_format != BODY_DELTA:
            break
        # Chains are at most MAX_DEPTH long; a longer one is a loop.
        if len(added) > deltas.MAX_DEPTH:
            raise pieces.MissingPieceError(f"the records {request_id}'s body continues loop")
        added.append((base_len, decompress(blob)))
        at = base_id
    body = decompress(blob)
    if body_format == BODY_PIECES:
        body = pieces.join(body, await _load_pieces(conn, pieces.digests_in(body)))
    try:
        return deltas.rebuild(body, reversed(added))
    except ValueError as exc:
        raise pieces.MissingPieceError(f"{request_id}'s body cannot be rebuilt: {exc}") from exc


async def _load_pieces(conn: aiosqlite.Connection, digests: list[bytes]) -> dict[bytes, bytes]:
    """The data of these pieces that are stored, by digest: their own, or
    cut from their pack's."""
    found: dict[bytes, bytes] = {}
    # Where packed pieces lie, by pack.
    packed: dict[bytes, list[tuple[bytes, int, int]]] = {}
    query = "SELECT digest, data, pack, pack_at, size FROM replay_pieces WHERE digest IN"
    for d, data, pack, at, size in await _select_in(conn, query, digests):
        if pack is None:
            found[bytes(d)] = decompress(data)
        else:
            packed.setdefault(bytes(pack), []).append((bytes(d), at, size))
    query = "SELECT digest, data FROM replay_packs WHERE digest IN"
    for d, data in await _select_in(conn, query, list(packed)):
        found.update(pieces.unpack(decompress(data), packed[bytes(d)]))
    return found


async def _select_in(
    conn: aiosqlite.Connection, query: str, keys: list[bytes]
) -> list[aiosqlite.Row]:
    """`query` ending in `... WHERE column IN`, for these keys (any number)."""
    wanted = list(dict.fromkeys(keys))
    rows: list[aiosqlite.Row] = []
    for i in range(0, len(wanted), _PIECES_PER_QUERY):
        chunk = wanted[i : i + _PIECES_PER_QUERY]
        marks = ", ".join("?" * len(chunk))
        rows += await conn.execute_fetchall(f"{query} ({marks})", chunk)
    return rows


async def list_replays(
    conn: aiosqlite.Connection,
    *,
    since: float | None = None,
    provider: str | None = None,
    profile: str | None = None,
    limit: int = 50,
) -> list[ReplaySummary]:
    """Newest first."""
    # Only fixed fragments are concatenated; values are always bound.
    where: list[str] = []
    params: list[object] = []
    if since is not None:
        where.append("ts >= ?")
        params.append(since)
    if provider is not None:
        where.append("provider = ?")
        params.append(provider)
    if profile is not None:
        where.append("profile = ?")
        params.append(profile)
    query = "SELECT request_id, ts, dialect, profile, provider, stream, size FROM replays"
    if where:
        query += " WHERE " + " AND ".join(where)
    query += " ORDER BY ts DESC, request_id LIMIT ?"
    params.append(limit)
    async with conn.execute(query, params) as cursor:
        return [
            ReplaySummary(
                request_id=row[0],
                ts=row[1],
                dialect=row[2],
                profile=row[3],
                provider=row[4],
                stream=bool(row[5]),
                size=row[6],
            )
            async for row in cursor
        ]
