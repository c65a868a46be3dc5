"""How many items of an earlier JSON array a new one starts with."""

from __future__ import annotations

from coderouterd.wire.prefix import kept_items

OLD = b'[{"a":1},{"b":2},{"c":3}]'
ENDS = (8, 16, 24)  # the `,` or `]` after each item
ANY = frozenset(b",]")


def test_every_item_kept_when_the_array_goes_on_or_ends_the_same() -> None:
    assert kept_items(OLD, ENDS, OLD[:-1] + b',{"d":4}]', back=3, delimiters=ANY) == 3
    assert kept_items(OLD, ENDS, OLD, back=3, delimiters=ANY) == 3
    # Only where more follows, if so asked.
    assert kept_items(OLD, ENDS, OLD, back=3, delimiters=frozenset(b",")) == 2


def test_a_changed_item_keeps_only_those_before_it() -> None:
    new = b'[{"a":1},{"b":2},{"c":9},{"d":4}]'
    assert kept_items(OLD, ENDS, new, back=3, delimiters=ANY) == 2
    # Same length, a byte changed before the probe window: the whole prefix is compared.
    changed = b'[{"x":1},{"b":2},{"c":3}]'
    assert kept_items(OLD, ENDS, changed, back=3, delimiters=ANY) == 0


def test_only_the_last_few_ends_are_tried_and_a_short_array_keeps_none_past_it() -> None:
    new = b'[{"a":1},{"b":5},{"c":7}]'
    assert kept_items(OLD, ENDS, new, back=1, delimiters=ANY) == 0
    assert kept_items(OLD, ENDS, new, back=3, delimiters=ANY) == 1
    assert kept_items(OLD, ENDS, b'[{"a":1}]', back=3, delimiters=ANY) == 1
    assert kept_items(OLD, ENDS, memoryview(b"[]"), back=3, delimiters=ANY) == 0
