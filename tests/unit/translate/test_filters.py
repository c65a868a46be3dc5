"""ThinkFilter splits streamed text into text and thinking, however it is chunked."""

from __future__ import annotations

import itertools

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from coderouterd.translate.filters import CLOSE_TAG, ThinkFilter, ThinkSegment
from coderouterd.translate.response_o2a import OutputPipeline, Piece
from coderouterd.translate.types import OutputFilters, ThinkMode, ToolNames


def run(mode: ThinkMode, pieces: list[str], *, assume_open: bool = False) -> list[ThinkSegment]:
    """Feeds the pieces, flushes, and joins neighbouring segments of one kind."""
    f = ThinkFilter(mode, assume_open_at_start=assume_open)
    raw: list[ThinkSegment] = []
    for piece in pieces:
        raw += f.feed(piece)
    raw += f.flush()
    out: list[ThinkSegment] = []
    for kind, text in raw:
        assert text, "empty segments are never returned"
        if out and out[-1][0] == kind:
            out[-1] = (kind, out[-1][1] + text)
        else:
            out.append((kind, text))
    return out


THINK = "<think>\nplan the answer\n</think>\n\nThe answer."


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("thinking", [("thinking", "plan the answer\n"), ("text", "The answer.")]),
        ("strip", [("text", "The answer.")]),
        ("off", [("text", THINK)]),
    ],
)
def test_each_mode_handles_a_think_block(mode: ThinkMode, expected: list[ThinkSegment]) -> None:
    assert run(mode, [THINK]) == expected


def test_tag_split_across_chunks_is_recognised() -> None:
    assert run("thinking", ["<thi", "nk>a</", "thi", "nk>b"]) == [("thinking", "a"), ("text", "b")]


def test_every_split_point_gives_the_same_segments() -> None:
    expected = run("thinking", [THINK])
    for cut in range(len(THINK) + 1):
        assert run("thinking", [THINK[:cut], THINK[cut:]]) == expected
    assert run("thinking", list(THINK)) == expected


@given(st.text(alphabet="<>/thinkab \n", max_size=60), st.data())
def test_chunking_never_changes_the_result(text: str, data: st.DataObject) -> None:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=8)))
    bounds = [0, *cuts, len(text)]
    pieces = [text[a:b] for a, b in itertools.pairwise(bounds)]
    for mode in ("thinking", "strip", "off"):
        assert run(mode, pieces) == run(mode, [text])


def test_text_that_only_looks_like_a_tag_is_released_once_it_cannot_be_one() -> None:
    f = ThinkFilter("thinking")
    assert f.feed("a <b") == [("text", "a <b")]
    assert f.feed("r> and <t") == [("text", "r> and ")]
    assert f.feed("able>") == [("text", "<table>")]


def test_at_most_seven_characters_are_held_back() -> None:
    f = ThinkFilter("strip")
    assert f.feed("x</think") == [("text", "x")]
    assert f.feed("") == []
    assert f.flush() == [("text", "</think")]
    assert len("</think") == len(CLOSE_TAG) - 1


def test_stray_closing_tag_is_dropped_and_nested_opening_tag_is_thinking() -> None:
    assert run("thinking", ["a</think>b"]) == [("text", "ab")]
    assert run("thinking", ["<think>x<think>y</think>z"]) == [
        ("thinking", "x<think>y"),
        ("text", "z"),
    ]


def test_empty_think_block_leaves_nothing() -> None:
    assert run("thinking", ["<think>\n\n</think>\n\nHi"]) == [("text", "Hi")]


def test_unclosed_think_block_is_thinking_until_the_end() -> None:
    assert run("thinking", ["<think>still going"]) == [("thinking", "still going")]
    assert run("strip", ["ok <think>still going"]) == [("text", "ok ")]


def test_assume_open_makes_text_before_the_first_closing_tag_thinking() -> None:
    pieces = ["Let me", " think.\n</th", "ink>\n\nDone."]
    assert run("thinking", pieces, assume_open=True) == [
        ("thinking", "Let me think.\n"),
        ("text", "Done."),
    ]
    assert run("strip", pieces, assume_open=True) == [("text", "Done.")]


def test_assume_open_holds_the_start_until_a_tag_decides() -> None:
    f = ThinkFilter("thinking", assume_open_at_start=True)
    assert f.feed("reasoning ") == []
    assert f.feed("more</think>answer") == [("thinking", "reasoning more"), ("text", "answer")]


def test_assume_open_without_any_closing_tag_is_text() -> None:
    assert run("thinking", ["Just an answer."], assume_open=True) == [("text", "Just an answer.")]


def test_assume_open_with_an_opening_tag_first_is_ordinary() -> None:
    assert run("thinking", ["<think>a</think>b"], assume_open=True) == [
        ("thinking", "a"),
        ("text", "b"),
    ]


def test_assume_open_past_its_limit_streams_thinking_until_the_closing_tag() -> None:
    f = ThinkFilter("thinking", assume_open_at_start=True, undecided_limit=10)
    assert f.feed("0123456789ab") == [("thinking", "0123456789ab")]
    assert f.feed("c</think>d") == [("thinking", "c"), ("text", "d")]
    # Without a closing tag it stays thinking: reasoning cut short.
    assert f.feed("0123456789ab") == [("text", "0123456789ab")]  # the same run, after </think>
    f.flush()
    assert f.feed("0123456789ab") + f.flush() == [("thinking", "0123456789ab")]


def test_flush_ends_the_run_and_the_filter_can_be_fed_again() -> None:
    f = ThinkFilter("thinking")
    assert f.feed("<think>a") == [("thinking", "a")]
    assert f.flush() == []
    assert f.feed("b") == [("text", "b")]


def test_off_mode_passes_everything_untouched() -> None:
    f = ThinkFilter("off", assume_open_at_start=True)
    assert f.feed("  a</think>") == [("text", "  a</think>")]
    assert f.flush() == []


def test_a_megabyte_of_text_is_filtered_in_one_pass() -> None:
    f = ThinkFilter("thinking")
    chunk = "word < other <thin " * 50
    total = 0
    for _ in range(1_000_000 // len(chunk)):
        total += sum(len(t) for _, t in f.feed(chunk))
    total += sum(len(t) for _, t in f.flush())
    assert total == len(chunk) * (1_000_000 // len(chunk))


def test_reasoning_arriving_apart_decides_an_assumed_open_start_as_text() -> None:
    f = ThinkFilter("thinking", assume_open_at_start=True)
    assert f.feed("\nThe ans") == []
    assert f.reasoning_arrived() == [("text", "The ans")]
    assert f.feed("wer.") == [("text", "wer.")]
    assert f.flush() == []
    # Later runs start decided too: the server keeps reasoning apart.
    assert f.feed("next") == [("text", "next")]


PIPELINE_FILTERS = OutputFilters(think="thinking", strip_tool_markup=True, repair_tool_calls=True)
READ = ToolNames(frozenset({"Read"}))


def pipeline_run(pieces: list[str]) -> list[Piece]:
    pipeline = OutputPipeline(PIPELINE_FILTERS, READ)
    out: list[Piece] = []
    for piece in pieces:
        out += pipeline.feed(piece)
    return out + pipeline.flush()


def test_text_held_back_by_repair_comes_out_before_a_thinking_segment() -> None:
    # "Rea" may start a Read(...) call: repair holds it until the thinking ends the run.
    out = pipeline_run(["Checking:\nRea", "<think>x</think>", "d it"])
    assert out == [("text", "Checking:"), ("text", "\nRea"), ("thinking", "x"), ("text", "d it")]


def test_structured_reasoning_comes_out_after_the_text_held_before_it() -> None:
    pipeline = OutputPipeline(PIPELINE_FILTERS, READ)
    assert pipeline.feed("Checking:\nRea") == [("text", "Checking:")]
    assert pipeline.reasoning("why") == [("text", "\nRea"), ("thinking", "why")]


def test_text_held_as_undecided_comes_out_before_structured_reasoning() -> None:
    filters = msgspec.structs.replace(PIPELINE_FILTERS, assume_think_open=True)
    pipeline = OutputPipeline(filters, READ)
    assert pipeline.feed("An answer") == []
    assert pipeline.reasoning("why") == [("text", "An answer"), ("thinking", "why")]
