"""What the tool-call repair keeps of the offered tool names: memory in
proportion to their length, however long one is, and the same decisions as
matching a line's first word against every prefix of every name."""

from __future__ import annotations

import tracemalloc

from hypothesis import given
from hypothesis import strategies as st

from coderouterd.translate.name_starts import begins_a_name, known_starts
from coderouterd.translate.repair import ToolCall, ToolCallRepair


def test_a_long_tool_name_costs_memory_in_proportion_to_its_length() -> None:
    # A request may offer any name its body can hold; an answer from an
    # openai_compat provider builds a repair over them.
    names = frozenset({"t" * 8_000, "u" * 12_000, "Read", "Write"})
    size = sum(len(n) for n in names)
    tracemalloc.start()
    try:
        repair = ToolCallRepair(names)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert repair.feed("plain text") == ["plain text"]
    # Generous: a hundred times the names' own bytes.
    assert peak < 100 * size, f"{peak / 1e6:.0f} MB for {size} bytes of tool names"


def test_a_long_tool_name_written_as_a_call_is_held_until_it_is_one() -> None:
    name = "t" * 7_999 + "x"
    repair = ToolCallRepair(frozenset({name, "Read"}))
    for at in range(0, len(name), 500):
        # Each part could still begin the name: nothing is released yet.
        assert repair.feed(name[at : at + 500]) == []
    assert repair.feed('(path="/a")\n') == [ToolCall(name, {"path": "/a"})]
    assert repair.flush() == []
    # One letter off: the line is text at the first letter that leaves the names.
    near = "t" * 7_999 + "y"
    assert repair.feed(near[:4_000]) == []
    assert repair.feed(near[4_000:]) == [near]


_NAME = st.text(alphabet="ab_-(.", min_size=1, max_size=6)


@given(
    names=st.frozensets(_NAME, max_size=6), word=st.text(alphabet="ab_-", min_size=1, max_size=7)
)
def test_a_first_word_is_held_exactly_when_it_begins_an_offered_name(
    names: frozenset[str], word: str
) -> None:
    prefixes = {n[:k] for n in names for k in range(1, len(n) + 1)}
    held = ToolCallRepair(names).feed(word) == []
    assert held == (word in prefixes)


@given(
    names=st.frozensets(_NAME, max_size=6), word=st.text(alphabet="ab_-", min_size=1, max_size=7)
)
def test_both_searches_of_the_names_agree_with_every_prefix(
    names: frozenset[str], word: str
) -> None:
    """Short names are looked up in the set of their prefixes, long ones
    searched in order (name_starts): the same answer either way."""
    prefixes = {n[:k] for n in names for k in range(1, len(n) + 1)}
    assert begins_a_name(known_starts(names), word) == (word in prefixes)
    assert begins_a_name(tuple(sorted(names)), word) == (word in prefixes)


def test_long_names_are_searched_not_expanded() -> None:
    assert isinstance(known_starts(frozenset({"Read", "Write"})), frozenset)
    assert known_starts(frozenset({"Read", "t" * 65})) == ("Read", "t" * 65)
