"""A think tag in the answer's code (a fenced block, an inline code span) is
the code's text, not reasoning, however the text is chunked; outside code,
and at the start of the answer, the tags still mark reasoning."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coderouterd.translate.filters import ThinkFilter
from coderouterd.translate.repair import ToolCall
from coderouterd.translate.response_o2a import OutputPipeline, Piece
from coderouterd.translate.types import OutputFilters, ThinkMode, ToolNames

CODE = 'clean = re.sub(r"<think>.*?</think>", "", reply, flags=re.S)'
FENCED = f"Strip the reasoning like this:\n\n```python\n{CODE}\n```\n\nThat is all."
INLINE = "Wrap it in `<think>` and `</think>`, or split on ``</think>``."
NAMES = ToolNames(frozenset({"Read"}))


def run(
    text: str,
    cut: int,
    *,
    think: ThinkMode = "thinking",
    assume_open: bool = False,
    repair: bool = True,
) -> list[Any]:
    """The pipeline's pieces for `text` fed `cut` characters at a time, then
    flushed; neighbours of one kind joined, calls as (name, arguments)."""
    filters = OutputFilters(
        think=think,
        assume_think_open=assume_open,
        strip_tool_markup=repair,
        repair_tool_calls=repair,
    )
    pipeline = OutputPipeline(filters, NAMES)
    pieces: list[Piece] = []
    for i in range(0, len(text), cut):
        pieces += pipeline.feed(text[i : i + cut])
    pieces += pipeline.flush()
    out: list[Any] = []
    for piece in pieces:
        if isinstance(piece, ToolCall):
            out.append((piece.name, piece.arguments))
        elif out and isinstance(out[-1], tuple) and out[-1][0] == piece[0]:
            out[-1] = (piece[0], out[-1][1] + piece[1])
        elif piece[1]:
            out.append(piece)
    return out


@pytest.mark.parametrize("text", [FENCED, INLINE], ids=["fenced", "inline"])
@pytest.mark.parametrize("think", ["thinking", "strip"])
@pytest.mark.parametrize("repair", [True, False])
def test_think_tags_in_code_are_text_at_every_split(
    text: str, think: ThinkMode, repair: bool
) -> None:
    for cut in range(1, len(text) + 1):
        assert run(text, cut, think=think, repair=repair) == [("text", text)], cut


@pytest.mark.parametrize("text", [FENCED, INLINE], ids=["fenced", "inline"])
def test_reasoning_before_the_code_is_still_thinking(text: str) -> None:
    for cut in (1, 2, 3, 7, 9, 1000):
        out = run("<think>They ask for a regex.</think>\n\n" + text, cut)
        assert out == [("thinking", "They ask for a regex."), ("text", text)], cut


def test_a_template_opened_block_closed_before_the_code_is_thinking() -> None:
    for cut in (1, 3, 9, 1000):
        out = run("They ask for a regex.\n</think>\n\n" + FENCED, cut, assume_open=True)
        assert out == [("thinking", "They ask for a regex.\n"), ("text", FENCED)], cut


# A template-opened reasoner (QwQ, an R1 distill) names the tags in its
# reasoning, in backticks, before the `</think>` that ends it.
NAMING = "They want the `<think>` blocks gone, up to ``</think>``: a regex.\n"


@pytest.mark.parametrize("repair", [True, False])
def test_reasoning_naming_the_tags_in_code_is_thinking_at_every_split(repair: bool) -> None:
    text = NAMING + "</think>\n\n" + INLINE
    for cut in range(1, len(text) + 1):
        out = run(text, cut, assume_open=True, repair=repair)
        assert out == [("thinking", NAMING), ("text", INLINE)], cut


@pytest.mark.parametrize("text", [FENCED, INLINE], ids=["fenced", "inline"])
def test_an_answer_that_did_not_think_keeps_its_code_at_every_split(text: str) -> None:
    # The template opened a block the model never used: its `<think>` in
    # code decides nothing, nor does a `</think>` in code after it; the end
    # of the run makes the held start text.
    for cut in range(1, len(text) + 1):
        assert run(text, cut, assume_open=True) == [("text", text)], cut


def test_a_think_tag_out_of_code_still_decides_the_start_is_text() -> None:
    text = "Name `<think>` here.\n<think>a</think>b"
    for cut in (1, 4, 1000):
        out = run(text, cut, assume_open=True)
        assert out == [("text", "Name `<think>` here.\n"), ("thinking", "a"), ("text", "b")]


def test_tags_after_the_code_closes_are_markup_again() -> None:
    after_fence = "```\nx = '<think>'\n```\n<think>more</think>Done."
    after_span = "Use `<think>`.\n<think>more</think>Done."
    for text, prose in (
        (after_fence, "```\nx = '<think>'\n```\n"),
        (after_span, "Use `<think>`.\n"),
    ):
        for cut in (1, 2, 5, 1000):
            assert run(text, cut) == [("text", prose), ("thinking", "more"), ("text", "Done.")]


def test_an_unmatched_backtick_holds_only_its_line() -> None:
    text = "The ` key, then <think>x</think>\nand <think>y</think>z"
    assert run(text, 1000) == [
        ("text", "The ` key, then <think>x</think>\nand "),
        ("thinking", "y"),
        ("text", "z"),
    ]


def test_a_fence_is_closed_only_by_a_run_as_long_at_the_start_of_a_line() -> None:
    text = "````md\n```\n<think>a</think>\nx ````\n````\n<think>b</think>c"
    assert run(text, 1000) == [
        ("text", "````md\n```\n<think>a</think>\nx ````\n````\n"),
        ("thinking", "b"),
        ("text", "c"),
    ]


def test_an_indented_fence_is_a_fence() -> None:
    text = "1. Run:\n\n   ```sh\n   sed 's/<think>//'\n   ```\n"
    assert run(text, 1) == run(text, 1000) == [("text", text)]


def test_a_stray_closing_tag_before_the_code_is_dropped_and_the_code_kept() -> None:
    text = "Done.</think>\n```py\nx = '<think>'\n```"
    for cut in (1, 4, 1000):
        assert run(text, cut) == [("text", "Done.\n```py\nx = '<think>'\n```")]


def test_each_run_starts_outside_code() -> None:
    f = ThinkFilter("thinking")
    # The first run ends inside an inline span its ``` opened.
    assert f.feed("Use `<think>`, not ```") + f.flush() == [("text", "Use `<think>`, not ```")]
    assert f.feed("<think>a</think>b") + f.flush() == [("thinking", "a"), ("text", "b")]


# Any mix of these: the free ones may be markup or text, the code ones are text.
FREE = ["a", " ", "\n", "<", "`", "<think>", "</think>"]
IN_CODE = ["a", " ", "\n", " `<think>`", " ``</think>``", "\n```py\n<think>.*?</think>\n```\n"]


@given(
    st.lists(st.sampled_from(FREE + IN_CODE), max_size=12),
    st.lists(st.sampled_from(IN_CODE), max_size=12),
    st.data(),
)
def test_tags_in_code_are_text_and_chunking_changes_nothing(
    mixed: list[str], code: list[str], data: st.DataObject
) -> None:
    text = "".join(code)
    answer = [("text", text.lstrip())] if text.strip() else []
    assert filtered(chunks(text, data)) == answer
    text = "".join(mixed)
    for assume_open in (False, True):
        expected = filtered([text], assume_open=assume_open)
        assert filtered(chunks(text, data), assume_open=assume_open) == expected


def chunks(text: str, data: st.DataObject) -> list[str]:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=8)))
    return [text[a:b] for a, b in itertools.pairwise([0, *cuts, len(text)])]


def filtered(pieces: list[str], *, assume_open: bool = False) -> list[tuple[str, str]]:
    f = ThinkFilter("thinking", assume_open_at_start=assume_open)
    out: list[tuple[str, str]] = []
    for kind, t in [s for p in pieces for s in f.feed(p)] + f.flush():
        if out and out[-1][0] == kind:
            out[-1] = (kind, out[-1][1] + t)
        else:
            out.append((kind, t))
    return out


# Reasoning whose first tag is a `<think>` in code: whatever follows in code.
NAMED = [" `<think>`", "\n```py\n<think>.*?</think>\n```\n"]


@given(
    st.sampled_from(NAMED),
    st.lists(st.sampled_from([*IN_CODE, *NAMED]), max_size=10),
    st.data(),
)
def test_reasoning_naming_the_tags_in_code_ends_at_its_closing_tag(
    first: str, rest: list[str], data: st.DataObject
) -> None:
    reasoning = first + "".join(rest) + "\n"
    text = reasoning + "</think>\n\nDone."
    out = filtered(chunks(text, data), assume_open=True)
    assert out == [("thinking", reasoning.lstrip()), ("text", "Done.")]
