"""Replay records: what is kept of a request, and how a replay is compared.

Everything here is pure except the two read helpers at the bottom. The
state writer stores rows built from `redact_headers`, `compress` and a
`ResponseCapture`; `coderouterd replay` reads them back with `get_replay`,
sends the request again, and prints `render_diff(diff(...))` of the two
assembled responses.
"""

from __future__ import annotations

import difflib
import functools
import zlib
from collections.abc import Mapping
from typing import Any

import aiosqlite
import msgspec

from coderouterd.state import deltas, pieces
from coderouterd.state.assemble import Assembled, Dialect
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


# --- comparing two responses --------------------------------------------------


class Change(msgspec.Struct, frozen=True):
    field: str
    before: Any
    after: Any


_TEXT_FIELDS = ("text", "thinking")
# A cache count left out is none read from or written to the cache.
_CACHE_USAGE = ("cache_read_input_tokens", "cache_creation_input_tokens")
_COMPARED_USAGE = ("input_tokens", "output_tokens", *_CACHE_USAGE)


def diff(
    recorded: Assembled,
    new: Assembled,
    *,
    recorded_ms: float | None,
    new_ms: float | None,
    partial: bool = False,
) -> list[Change]:
    """What differs, in a fixed order: content first, then accounting.

    Tool calls are matched by position. Latency is compared in whole
    milliseconds, and only when both sides were measured.

    `partial`: the recording was cut (replay.max_record_kb), so only what it
    holds is compared: text and thinking that the new answer does not begin
    with, its tool calls (the last one's by name only: its input may be cut);
    the error still is, but not the stop reason and usage, which come last.
    """
    changes = [
        Change(name, before, after)
        for name in _TEXT_FIELDS
        if not _same_text(before := getattr(recorded, name), after := getattr(new, name), partial)
    ]
    changes += _tool_call_changes(recorded, new, partial)
    if not partial and recorded.stop_reason != new.stop_reason:
        changes.append(Change("stop_reason", recorded.stop_reason, new.stop_reason))
    # Compared even past a cut: a recording long enough to be cut was no
    # error envelope, and an answer that is one now is what a replay is for.
    if recorded.error != new.error:
        changes.append(Change("error", recorded.error, new.error))
    if not partial:
        changes += _usage_changes(recorded, new)
    if recorded_ms is not None and new_ms is not None and round(recorded_ms) != round(new_ms):
        changes.append(Change("latency_ms", round(recorded_ms), round(new_ms)))
    return changes


def _same_text(recorded: str, new: str, partial: bool) -> bool:
    return new.startswith(recorded) if partial else new == recorded


def _tool_call_changes(recorded: Assembled, new: Assembled, partial: bool) -> list[Change]:
    changes: list[Change] = []
    known = len(recorded.tool_calls)
    for i in range(known if partial else max(known, len(new.tool_calls))):
        before = recorded.tool_calls[i] if i < known else None
        after = new.tool_calls[i] if i < len(new.tool_calls) else None
        cut = partial and i == known - 1
        for part in ("name",) if cut else ("name", "input"):
            old_value = getattr(before, part, None)
            new_value = getattr(after, part, None)
            if old_value != new_value:
                changes.append(Change(f"tool_calls[{i}].{part}", old_value, new_value))
    return changes


def _usage_changes(recorded: Assembled, new: Assembled) -> list[Change]:
    changes = []
    for key in _COMPARED_USAGE:
        unset = 0 if key in _CACHE_USAGE else None
        before, after = recorded.usage.get(key, unset), new.usage.get(key, unset)
        if before != after:
            changes.append(Change(f"usage.{key}", before, after))
    return changes


_PARTIAL_NOTE = (
    "the recorded response was cut at replay.max_record_kb: compared up to the cut "
    "(stop reason and usage not compared)"
)


def render_diff(changes: list[Change], *, partial: bool = False) -> str:
    shown = "\n".join(_render(change, partial) for change in changes) or "no differences"
    return f"{_PARTIAL_NOTE}\n{shown}" if partial else shown


def _render(change: Change, partial: bool) -> str:
    before, after = _shown(change.before), _shown(change.after)
    if change.field in _TEXT_FIELDS or "\n" in before or "\n" in after:
        lines = difflib.unified_diff(
            before.splitlines(),
            after.splitlines(),
            fromfile=f"recorded {change.field}{' (partial)' if partial else ''}",
            tofile=f"replayed {change.field}",
            lineterm="",
        )
        if rendered := "\n".join(lines):
            return rendered
        # Only line endings differ, which a line diff cannot show.
        return f"{change.field}: {change.before!r} -> {change.after!r}"
    return f"{change.field}: {before} -> {after}"


def _shown(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, dict):
        # Sorted and indented, so a tool input differing in one key diffs as
        # one line.
        text = msgspec.json.format(msgspec.json.encode(value, order="sorted"), indent=2)
        return text.decode()
    return str(value)


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


async def get_replay(conn: aiosqlite.Connection, request_id: str) -> ReplayRecord | None:
    """The record, its request body whole again; MissingPieceError if a piece
    or an earlier record its body continues is gone."""
    async with conn.execute(_SELECT_ONE, (request_id,)) as cursor:
        row = await cursor.fetchone()
    if row is None:
        return None
    response = row[7]
    body = await request_body(conn, request_id)
    return ReplayRecord(
        request_id=row[0],
        ts=row[1],
        dialect=row[2],
        profile=row[3],
        provider=row[4],
        stream=bool(row[5]),
        request_headers=_headers_decoder.decode(row[6]),
        request_body=body,
        response_body=None if response is None else decompress(response),
        response_truncated=bool(row[8]),
    )


async def request_body(conn: aiosqlite.Connection, request_id: str) -> bytes:
    """A stored record's request body, whole: its blob, with its pieces joined
    in or the earlier records it continues read first."""
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
