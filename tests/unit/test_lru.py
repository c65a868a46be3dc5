"""SizedLRU: bounded by count and by size, the newest entry kept however large."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from coderouterd.lru import SizedLRU


def test_the_oldest_go_first_by_count_and_by_size() -> None:
    lru: SizedLRU[str, bytes] = SizedLRU(3, 10, len)
    assert lru.put("a", b"1234") == []
    assert lru.put("b", b"1234") == []
    # 12 bytes: "a" goes.
    assert lru.put("c", b"1234") == [("a", b"1234")]
    assert (len(lru), lru.bytes) == (2, 8)
    assert lru.put("d", b"") == []
    assert lru.put("e", b"") == [("b", b"1234")]
    assert [k for k, _ in lru.newest_first()] == ["e", "d", "c"]


def test_putting_a_key_again_replaces_and_refreshes_it() -> None:
    lru: SizedLRU[str, bytes] = SizedLRU(2, 100, len)
    lru.put("a", b"x" * 10)
    lru.put("b", b"y")
    lru.put("a", b"z" * 5)
    assert lru.bytes == 6 and [k for k, _ in lru.newest_first()] == ["a", "b"]
    assert lru.put("c", b"") == [("b", b"y")]
    # get does not refresh.
    assert lru.get("a") == b"zzzzz"
    assert lru.put("d", b"") == [("a", b"zzzzz")]


def test_an_entry_larger_than_the_bound_stays_alone() -> None:
    lru: SizedLRU[str, bytes] = SizedLRU(10, 4, len)
    lru.put("a", b"1")
    assert lru.put("big", b"123456789") == [("a", b"1")]
    assert len(lru) == 1 and lru.get("big") == b"123456789"
    assert lru.pop("big") == b"123456789" and lru.bytes == 0
    assert lru.pop("big") is None
    lru.put("a", b"1")
    lru.clear()
    assert (len(lru), lru.bytes) == (0, 0)


@settings(max_examples=200, deadline=None)
@given(
    ops=st.lists(
        st.tuples(st.sampled_from(["put", "pop"]), st.integers(0, 5), st.integers(0, 12)),
        max_size=40,
    )
)
def test_the_bounds_and_the_byte_count_hold_after_any_operations(
    ops: list[tuple[str, int, int]],
) -> None:
    lru: SizedLRU[int, bytes] = SizedLRU(3, 10, len)
    for op, key, size in ops:
        if op == "put":
            evicted = lru.put(key, b"x" * size)
            assert key not in {k for k, _ in evicted} and lru.get(key) == b"x" * size
        else:
            lru.pop(key)
        entries = list(lru.newest_first())
        assert lru.bytes == sum(len(v) for _, v in entries)
        assert len(entries) <= 3 and (lru.bytes <= 10 or len(entries) == 1)
