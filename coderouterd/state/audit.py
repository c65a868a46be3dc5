"""Reading and verifying the hash-chained audit log.

The writer appends rows; this module only reads them. Verification is a
pure walk (`ChainVerifier`) fed either a list (`verify_rows`) or a database
cursor (`verify`), so a log of millions of rows is never held in memory.

What the walk can prove: an edited row (its stored hash no longer matches
its content), a deleted row before the last one (a gap in `seq`), a row
whose hash was recomputed after an edit (the next row no longer links to
it). What it cannot prove on its own: that rows were cut off the end, or
that the last row was edited and re-hashed, since what remains is a valid
chain. Pass the last seq known from elsewhere (a printed receipt, a backup)
as `expected_last_seq` to catch the first.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import aiosqlite
import msgspec

from coderouterd.state.chain import GENESIS, chain_hash

# (seq, ts, event, fields, prev_hash, hash), as SELECTed from the table.
RawAuditRow = tuple[int, float, str, str, str, str]

_SELECT_ALL = "SELECT seq, ts, event, fields, prev_hash, hash FROM audit ORDER BY seq"
_SELECT_LAST = "SELECT seq, ts, event, fields, prev_hash, hash FROM audit ORDER BY seq DESC LIMIT ?"


class AuditRow(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    ts: float
    event: str
    fields: dict[str, Any]
    prev_hash: str
    hash: str


class VerifyResult(msgspec.Struct, frozen=True, kw_only=True):
    """`rows_checked` counts the rows found sound before the first problem;
    `last_seq` is the seq of the last of them (None when there is none), the
    number to keep and pass back as `expected_last_seq` later."""

    ok: bool
    rows_checked: int
    last_seq: int | None = None
    first_bad_seq: int | None = None
    problem: str | None = None


def _decode_fields(text: str) -> dict[str, Any]:
    # Display must survive a tampered row: anything that is not a JSON object
    # is shown raw rather than refused (verification reports the tampering).
    try:
        value = msgspec.json.decode(text)
    except msgspec.DecodeError:
        return {"_raw": text}
    return value if isinstance(value, dict) else {"_raw": value}


def row_of(raw: RawAuditRow) -> AuditRow:
    seq, ts, event, fields, prev_hash, hash_ = raw
    return AuditRow(
        seq=seq,
        ts=ts,
        event=event,
        fields=_decode_fields(fields),
        prev_hash=prev_hash,
        hash=hash_,
    )


class ChainVerifier:
    """Feed rows in seq order to `check`; it returns a failed result at the
    first problem and None while the chain is sound. `finish` gives the result.
    """

    __slots__ = ("_checked", "_failure", "_last_hash", "_next_seq")

    def __init__(self) -> None:
        self._next_seq = 1
        self._last_hash = GENESIS
        self._checked = 0
        self._failure: VerifyResult | None = None

    def check(self, raw: RawAuditRow) -> VerifyResult | None:
        if self._failure is not None:
            return self._failure
        seq, ts, event, fields, prev_hash, stored_hash = raw
        problem: tuple[int, str] | None = None
        if seq > self._next_seq:
            problem = (self._next_seq, f"row {self._next_seq} is missing (deleted?)")
        elif seq < self._next_seq:
            problem = (seq, f"row {seq} is out of order or duplicated")
        # float(): SQLite may hand back an integral REAL as it was bound; the
        # hash was taken over repr() of a float.
        elif chain_hash(prev_hash, seq, float(ts), event, fields) != stored_hash:
            problem = (seq, f"row {seq} was edited (its hash does not match its content)")
        elif prev_hash != self._last_hash:
            # A row edited and re-hashed by itself stays self-consistent; it is
            # the link from its successor (or to its predecessor) that breaks.
            before = f"row {seq - 1}" if seq > 1 else "the start of the chain"
            problem = (seq, f"row {seq} does not link to {before}")
        if problem is not None:
            self._failure = self._fail(*problem)
            return self._failure
        self._next_seq = seq + 1
        self._last_hash = stored_hash
        self._checked += 1
        return None

    def finish(self, expected_last_seq: int | None = None) -> VerifyResult:
        if self._failure is not None:
            return self._failure
        if expected_last_seq is not None and self._next_seq <= expected_last_seq:
            seq = self._next_seq
            problem = (
                f"row {seq} is missing (deleted?); the log should reach row {expected_last_seq}"
            )
            return self._fail(seq, problem)
        return VerifyResult(ok=True, rows_checked=self._checked, last_seq=self._last_seq)

    @property
    def _last_seq(self) -> int | None:
        return self._next_seq - 1 if self._checked else None

    def _fail(self, seq: int, problem: str) -> VerifyResult:
        return VerifyResult(
            ok=False,
            rows_checked=self._checked,
            last_seq=self._last_seq,
            first_bad_seq=seq,
            problem=problem,
        )


def verify_rows(rows: Iterable[RawAuditRow], expected_last_seq: int | None = None) -> VerifyResult:
    """Verify rows given in seq order; stops at the first problem.

    `expected_last_seq` is a lower bound: rows appended after it was taken
    are fine, fewer rows mean the tail was deleted.
    """
    verifier = ChainVerifier()
    for raw in rows:
        if (failed := verifier.check(raw)) is not None:
            return failed
    return verifier.finish(expected_last_seq)


async def verify(conn: aiosqlite.Connection, expected_last_seq: int | None = None) -> VerifyResult:
    verifier = ChainVerifier()
    # Iterating the cursor fetches in small batches; fetchall would load the
    # whole log.
    async with conn.execute(_SELECT_ALL) as cursor:
        async for raw in cursor:
            if (failed := verifier.check(_raw(raw))) is not None:
                return failed
    return verifier.finish(expected_last_seq)


async def tail(conn: aiosqlite.Connection, n: int) -> list[AuditRow]:
    """The last `n` rows, oldest first."""
    if n <= 0:
        return []
    async with conn.execute(_SELECT_LAST, (n,)) as cursor:
        rows = [row_of(_raw(raw)) async for raw in cursor]
    rows.reverse()
    return rows


def _raw(row: Any) -> RawAuditRow:
    # aiosqlite yields sqlite3.Row or tuples depending on the connection's
    # row_factory; both index by position.
    return (row[0], row[1], row[2], row[3], row[4], row[5])
