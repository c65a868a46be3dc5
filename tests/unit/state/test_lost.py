"""Pieces a failed batch may have lost: which replay rows check theirs, and the
INSERT's check itself against the real schema in memory."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator

import msgspec
import pytest

from coderouterd.state.lost import LostPieces
from coderouterd.state.migrate import split_statements
from coderouterd.state.records import BODY_PIECES, PieceRow, ReplayRow, Writable
from tests.unit.state.test_records import MIGRATIONS, request, run


def digest(name: str) -> bytes:
    return hashlib.sha256(name.encode()).digest()


def replay(rid: str, *, writes: str = "", names: str = "") -> ReplayRow:
    """A record writing the pieces named by the letters of `writes` and naming
    those of `names` without writing them."""
    return ReplayRow(
        request_id=rid, ts=1.0, dialect="anthropic", profile="p", provider=None, stream=False,
        request_headers="{}", request_body=b"\x00{}", response_body=None,
        response_truncated=False, size=3, body_format=BODY_PIECES,
        new_pieces=tuple(
            PieceRow(digest=digest(c), data=b"\x00" + c.encode(), size=1, last_ref=1.0)
            for c in writes
        ),
        named_pieces=tuple(digest(c) for c in names),
    )  # fmt: skip


def checked(records: list[Writable]) -> list[str]:
    return [r.request_id for r in records if isinstance(r, ReplayRow) and r.check_pieces]


def lost_after(*failed: str) -> LostPieces:
    lost = LostPieces()
    for i, w in enumerate(failed):
        lost.settled([replay(f"w{i}", writes=w)], stored=False)
    return lost


@pytest.mark.parametrize(
    ("failed", "batch", "every", "expect"),
    [
        # Nothing lost: the batch goes as it is.
        ((), [("a", "", "xy")], False, []),
        # Only rows naming a lost piece check.
        (("x",), [("a", "", "xy"), ("b", "", "yz"), ("c", "x", "")], False, ["a"]),
        # Inserted one by one, any row naming a piece checks.
        ((), [("a", "", "y"), ("b", "y", ""), ("c", "", "")], True, ["a"]),
    ],
)
def test_rows_naming_a_piece_a_failed_batch_carried_check_it(
    failed: tuple[str, ...], batch: list[tuple[str, str, str]], every: bool, expect: list[str]
) -> None:
    records: list[Writable] = [request(rid) for rid, _, _ in batch]
    records += [replay(rid, writes=w, names=n) for rid, w, n in batch]
    guarded = lost_after(*failed).guard(records, every=every)
    assert checked(guarded) == expect
    if not expect:
        assert guarded is records


def test_a_piece_stays_doubted_until_a_stored_batch_writes_it() -> None:
    lost = lost_after("xy")
    # A batch that only names it, stored or not, proves nothing.
    lost.settled([replay("a", names="x")], stored=True)
    assert checked(lost.guard([replay("b", names="x")])) == ["b"]
    # Written by a batch with a record refused: still doubted.
    lost.settled([replay("c", writes="x")], stored=False)
    assert checked(lost.guard([replay("d", names="x")])) == ["d"]
    lost.settled([replay("e", writes="x")], stored=True)
    assert checked(lost.guard([replay("f", names="x"), replay("g", names="y")])) == ["g"]
    lost.settled([replay("h", writes="y")], stored=True)
    assert len(lost) == 0


def test_the_oldest_doubts_go_first_past_the_cap() -> None:
    lost = LostPieces(max_digests=2)
    lost.settled([replay("a", writes="xy")], stored=False)
    lost.settled([replay("b", writes="z")], stored=False)
    assert len(lost) == 2
    assert checked(lost.guard([replay(c, names=c) for c in "xyz"])) == ["y", "z"]


@pytest.fixture
def db() -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    for path in MIGRATIONS:
        for statement in split_statements(path.read_text()):
            conn.execute(statement)
    yield conn
    conn.close()


def stored(db: sqlite3.Connection) -> list[str]:
    return [r[0] for r in db.execute("SELECT request_id FROM replays ORDER BY request_id")]


def test_a_row_checking_its_pieces_is_inserted_only_if_all_are_stored(
    db: sqlite3.Connection,
) -> None:
    for rid in ("w", "a", "b", "c", "d"):
        run(db, request(rid).statements())
    run(db, replay("w", writes="xy").statements())
    for rid, names in (("a", "xy"), ("b", "xz"), ("c", "z")):
        row = msgspec.structs.replace(replay(rid, names=names), check_pieces=True)
        run(db, row.statements())
    # Unchecked, it goes in whatever it names.
    run(db, replay("d", names="z").statements())
    assert stored(db) == ["a", "d", "w"]


def test_a_checked_row_naming_nothing_is_inserted(db: sqlite3.Connection) -> None:
    run(db, request("a").statements())
    run(db, msgspec.structs.replace(replay("a"), check_pieces=True).statements())
    assert stored(db) == ["a"]
