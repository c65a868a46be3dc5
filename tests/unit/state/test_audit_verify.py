from __future__ import annotations

import json

import pytest

from coderouterd.state.audit import RawAuditRow, row_of, verify_rows
from coderouterd.state.chain import GENESIS, chain_hash


def build_chain(n: int, *, start_ts: float = 1_700_000_000.25) -> list[RawAuditRow]:
    """A sound chain of n rows, hashed the way the writer hashes them."""
    rows: list[RawAuditRow] = []
    prev = GENESIS
    for seq in range(1, n + 1):
        ts = start_ts + seq * 0.1
        event = "provider.ejected" if seq % 2 else "config.reloaded"
        fields = json.dumps({"provider": f"p{seq}", "reason": "timeout"})
        digest = chain_hash(prev, seq, ts, event, fields)
        rows.append((seq, ts, event, fields, prev, digest))
        prev = digest
    return rows


def replace(row: RawAuditRow, **changes: object) -> RawAuditRow:
    names = ("seq", "ts", "event", "fields", "prev_hash", "hash")
    values = dict(zip(names, row, strict=True)) | changes
    return tuple(values[n] for n in names)  # type: ignore[return-value]


def rehash(row: RawAuditRow) -> RawAuditRow:
    """What an attacker does after editing a row: fix that row's own hash."""
    seq, ts, event, fields, prev, _ = row
    return (seq, ts, event, fields, prev, chain_hash(prev, seq, ts, event, fields))


def test_a_sound_chain_verifies() -> None:
    result = verify_rows(build_chain(20))
    assert result.ok
    assert result.rows_checked == 20
    assert result.first_bad_seq is None
    assert result.problem is None


def test_an_empty_log_is_sound() -> None:
    assert verify_rows([]).ok


@pytest.mark.parametrize(
    "edit",
    [
        {"fields": json.dumps({"provider": "p7", "reason": "manual"})},
        # Same JSON value, different bytes: the stored text is what is hashed.
        {"fields": json.dumps({"reason": "timeout", "provider": "p7"})},
        {"event": "provider.restored"},
        {"ts": 1_700_000_001.0},
        {"prev_hash": "f" * 64},
    ],
    ids=["fields", "fields-reordered", "event", "ts", "prev_hash"],
)
def test_an_edited_row_is_named(edit: dict[str, object]) -> None:
    rows = build_chain(10)
    rows[6] = replace(rows[6], **edit)
    result = verify_rows(rows)
    assert not result.ok
    assert result.first_bad_seq == 7
    assert result.problem == "row 7 was edited (its hash does not match its content)"
    assert result.rows_checked == 6


def test_a_deleted_middle_row_is_named() -> None:
    rows = build_chain(15)
    del rows[11]
    result = verify_rows(rows)
    assert not result.ok
    assert result.first_bad_seq == 12
    assert result.problem == "row 12 is missing (deleted?)"


def test_a_deleted_first_row_is_named() -> None:
    result = verify_rows(build_chain(5)[1:])
    assert result.first_bad_seq == 1
    assert result.problem == "row 1 is missing (deleted?)"
    assert result.rows_checked == 0


def test_a_deleted_last_row_needs_an_anchor() -> None:
    rows = build_chain(8)[:-1]
    assert verify_rows(rows).ok
    result = verify_rows(rows, expected_last_seq=8)
    assert not result.ok
    assert result.first_bad_seq == 8
    assert result.problem is not None
    assert result.problem.startswith("row 8 is missing (deleted?)")


def test_rows_appended_after_the_anchor_are_fine() -> None:
    assert verify_rows(build_chain(8), expected_last_seq=5).ok


def test_an_anchor_on_an_emptied_log_names_row_1() -> None:
    assert verify_rows([], expected_last_seq=3).first_bad_seq == 1


def test_rows_out_of_order_are_caught() -> None:
    rows = build_chain(6)
    rows[2], rows[3] = rows[3], rows[2]
    result = verify_rows(rows)
    assert not result.ok
    # Row 4 arrives where row 3 belongs: row 3 looks missing.
    assert result.first_bad_seq == 3


def test_swapped_contents_under_the_original_seqs_are_edits() -> None:
    # What reordering looks like in the table, where seq is the key.
    rows = build_chain(6)
    third, fourth = rows[2], rows[3]
    rows[2] = (3, *fourth[1:])
    rows[3] = (4, *third[1:])
    result = verify_rows(rows)
    assert result.first_bad_seq == 3
    assert "edited" in (result.problem or "")


def test_a_duplicated_row_is_caught() -> None:
    rows = build_chain(4)
    rows.insert(2, rows[1])
    result = verify_rows(rows)
    assert result.first_bad_seq == 2
    assert result.problem == "row 2 is out of order or duplicated"


def test_a_row_rehashed_after_an_edit_breaks_the_next_link() -> None:
    rows = build_chain(10)
    rows[8] = rehash(replace(rows[8], fields=json.dumps({"provider": "evil"})))
    result = verify_rows(rows)
    assert not result.ok
    assert result.first_bad_seq == 10
    assert result.problem == "row 10 does not link to row 9"


def test_a_rehashed_first_row_with_a_forged_link_is_caught() -> None:
    rows = build_chain(3)
    rows[0] = rehash(replace(rows[0], prev_hash="a" * 64))
    result = verify_rows(rows)
    assert result.first_bad_seq == 1
    assert result.problem == "row 1 does not link to the start of the chain"


def test_a_rehashed_last_row_is_beyond_the_chain_alone() -> None:
    # Documented limit: nothing after the last row vouches for it.
    rows = build_chain(5)
    rows[4] = rehash(replace(rows[4], event="forged"))
    assert verify_rows(rows).ok


def test_verification_stops_reading_at_the_first_problem() -> None:
    rows = build_chain(10)
    rows[1] = replace(rows[1], event="tampered")
    consumed: list[int] = []

    def stream() -> object:
        for row in rows:
            consumed.append(row[0])
            yield row

    result = verify_rows(stream())  # type: ignore[arg-type]
    assert result.first_bad_seq == 2
    assert consumed == [1, 2]


def test_row_of_decodes_fields_and_keeps_garbage_readable() -> None:
    seq, ts, event, fields, prev, digest = build_chain(1)[0]
    assert row_of((seq, ts, event, fields, prev, digest)).fields == {
        "provider": "p1",
        "reason": "timeout",
    }
    assert row_of((seq, ts, event, "not json", prev, digest)).fields == {"_raw": "not json"}
    assert row_of((seq, ts, event, "[1, 2]", prev, digest)).fields == {"_raw": [1, 2]}
