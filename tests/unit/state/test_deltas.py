"""Choosing what a replay body is stored against, and putting it back together."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coderouterd.state.deltas import MAX_DEPTH, MIN_SHARED, Base, Bases, rebuild, shared_prefix


def naive_prefix(a: bytes, b: bytes) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


@given(
    st.binary(max_size=600), st.binary(max_size=300), st.binary(max_size=300), st.integers(0, 600)
)
def test_shared_prefix_is_the_length_of_the_common_start(
    common: bytes, a: bytes, b: bytes, known: int
) -> None:
    x, y = common + a, common + b
    assert shared_prefix(x, y) == naive_prefix(x, y)
    assert shared_prefix(x, memoryview(y)) == naive_prefix(x, y)
    # Starting from any number of bytes known to be shared.
    known = min(known, naive_prefix(x, y))
    assert shared_prefix(x, y, known) == naive_prefix(x, y)


def test_shared_prefix_at_the_edges() -> None:
    assert shared_prefix(b"", b"abc") == 0
    assert shared_prefix(b"abc", b"abc") == 3
    assert shared_prefix(b"abc", b"abcdef") == 3
    assert shared_prefix(b"xbc", b"abc") == 0


BODY = b"h" * MIN_SHARED * 2


def test_a_body_continuing_the_last_is_stored_against_it() -> None:
    bases = Bases()
    bases.note("c", Base("r1", BODY + b"]}", 0))
    found = bases.against("c", BODY + b",new]}")
    assert found == (Base("r1", BODY + b"]}", 0), len(BODY))
    # Another conversation's body is never compared.
    assert bases.against("other", BODY + b",new]}") is None


def shared_with_base(bases: Bases, body: bytes, turn: int, shared: int) -> int | None:
    found = bases.against("c", body, turn, shared)
    return None if found is None else found[1]


def test_the_turn_before_is_compared_only_past_what_it_is_known_to_share() -> None:
    bases = Bases()
    bases.note("c", Base("r1", BODY + b"]}", 0, turn=4))
    # Its first byte differs: only a compare from the start would see it.
    body = b"x" + BODY[1:] + b",new]}"
    # Turn 5 is known to share 4100 bytes with turn 4, the base: compared from there.
    assert shared_with_base(bases, body, turn=5, shared=4100) == len(BODY)
    # Another turn, no turn, or nothing known: compared from the start.
    for turn, shared in ((6, 4100), (0, 4100), (5, 0)):
        assert shared_with_base(bases, body, turn, shared) is None
        assert shared_with_base(bases, BODY + b",new]}", turn, shared) == len(BODY)
    # A base whose turn is unknown is always compared from the start.
    bases.note("c", Base("r2", BODY + b"]}", 0))
    assert shared_with_base(bases, body, turn=1, shared=4100) is None


def test_too_little_shared_means_no_delta() -> None:
    bases = Bases()
    bases.note("c", Base("r1", BODY, 0))
    assert bases.against("c", BODY[: MIN_SHARED - 1] + b"x") is None
    # Shared enough bytes, but less than half the body: the rest is new.
    assert bases.against("c", BODY[:MIN_SHARED] + b"x" * (3 * MIN_SHARED)) is None
    assert bases.against("c", BODY[:MIN_SHARED] + b"x" * MIN_SHARED) is not None


def test_a_base_at_max_depth_ends_the_chain() -> None:
    bases = Bases()
    bases.note("c", Base("r1", BODY, MAX_DEPTH - 1))
    assert bases.against("c", BODY) is not None
    bases.note("c", Base("r2", BODY, MAX_DEPTH))
    assert bases.against("c", BODY) is None


def test_bases_are_bounded_least_recently_noted_first() -> None:
    bases = Bases(max_conversations=2)
    for c in ("a", "b", "a", "c"):
        bases.note(c, Base(c, BODY, 0))
    assert len(bases) == 2
    assert bases.against("b", BODY) is None
    assert bases.against("a", BODY) is not None
    bases.drop("a")
    assert bases.against("a", BODY) is None
    bases.clear()
    assert len(bases) == 0


def test_rebuild_applies_deltas_oldest_first() -> None:
    assert rebuild(b'{"m":[1]}', [(7, b",2]}"), (9, b",3]}")]) == b'{"m":[1,2,3]}'
    assert rebuild(b"same", []) == b"same"
    with pytest.raises(ValueError, match="keeps 9 bytes of a 4-byte body"):
        rebuild(b"abcd", [(9, b"x")])


def test_bases_are_bounded_by_the_bytes_of_their_bodies_the_newest_kept() -> None:
    bases = Bases(max_bytes=int(2.5 * len(BODY)))
    for c in "abc":
        bases.note(c, Base(f"r{c}", BODY, 0))
    assert len(bases) == 2 and bases.against("a", BODY + b"x") is None
    assert bases.against("c", BODY + b"x") is not None
    # Noted again, a conversation's base replaces its last: counted once.
    bases.note("c", Base("rc2", BODY, 1))
    bases.note("b", Base("rb2", BODY, 1))
    assert len(bases) == 2
    bases.note("big", Base("big", BODY * 4, 0))
    assert len(bases) == 1 and bases.against("big", BODY * 4 + b"x") is not None
    bases.drop("big")
    bases.note("a", Base("ra", BODY, 0))
    bases.note("b", Base("rb", BODY, 0))
    assert len(bases) == 2
