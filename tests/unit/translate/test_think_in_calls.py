"""A think tag inside a tool call printed as text is the call's data.

A model asked to write code that handles reasoning tags puts `<think>` and
`</think>` into the call's JSON string. The think filter must leave those to
the tool-call repair, which lifts the call whole, while reasoning outside
any call still streams as thinking, however the text is chunked.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from coderouterd.translate.filters import ThinkFilter, ThinkSegment
from coderouterd.translate.repair import ToolCall
from coderouterd.translate.response_o2a import OutputPipeline, Piece
from coderouterd.translate.types import OutputFilters, ThinkMode, ToolNames

SOURCE = (
    "def strip_reasoning(text):\n"
    "    # models wrap their reasoning in <think>...</think>\n"
    "    return text.split('</think>')[-1]\n"
)
ARGS = {"file_path": "/w/strip.py", "content": SOURCE}
CALL = json.dumps({"name": "Write", "arguments": ARGS})
NAMES = ToolNames(frozenset({"Write", "Read"}))
# The forms of a call printed as text that the repair lifts.
FORMS = {
    "tag": f"<tool_call>{CALL}</tool_call>",
    "tag on its own lines": f"<tool_call>\n{CALL}\n</tool_call>\n",
    "bare object": f"{CALL}\n",
    "json fence": f"```json\n{CALL}\n```\n",
}


def filters(think: ThinkMode = "thinking", *, repair: bool = True) -> OutputFilters:
    return OutputFilters(
        think=think, strip_tool_markup=True, repair_tool_calls=repair, strip_stop_markers=True
    )


def run(text: str, cut: int, f: OutputFilters | None = None, names: ToolNames = NAMES) -> list[Any]:
    """`text` fed in pieces of `cut` characters, then flushed; neighbouring
    pieces of one kind joined, calls as (name, arguments)."""
    pipeline = OutputPipeline(f or filters(), names)
    pieces: list[Piece] = []
    for i in range(0, len(text), cut):
        pieces += pipeline.feed(text[i : i + cut])
    pieces += pipeline.flush()
    return joined(pieces)


def joined(pieces: list[Piece]) -> list[Any]:
    out: list[Any] = []
    for piece in pieces:
        if isinstance(piece, ToolCall):
            out.append((piece.name, piece.arguments))
        elif out and isinstance(out[-1], tuple) and out[-1][0] == piece[0]:
            out[-1] = (piece[0], out[-1][1] + piece[1])
        elif piece[1]:
            out.append(piece)
    return out


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("think", ["thinking", "strip"])
def test_a_call_whose_arguments_hold_think_tags_is_lifted_whole(
    form: str, think: ThinkMode
) -> None:
    text = "I will write it.\n" + FORMS[form]
    for cut in range(1, len(text) + 1):
        out = run(text, cut, filters(think))
        assert out == [("text", "I will write it."), ("Write", ARGS)], (form, cut)


@pytest.mark.parametrize("cut", [1, 2, 3, 5, 8, 13, 40, 1000])
def test_reasoning_around_the_call_is_still_thinking(cut: int) -> None:
    text = (
        "<think>The user wants a helper.</think>I will write it.\n"
        + FORMS["tag"]
        + "<think>Now wait for the tool.</think>Done."
    )
    assert run(text, cut) == [
        ("thinking", "The user wants a helper."),
        ("text", "I will write it."),
        ("Write", ARGS),
        ("thinking", "Now wait for the tool."),
        ("text", "Done."),
    ]
    # `{` opens a candidate that fails at once: the tag after it is markup again.
    assert run("{ not json\n<think>hm</think>ok\n" + FORMS["bare object"], cut) == [
        ("text", "{ not json\n"),
        ("thinking", "hm"),
        ("text", "ok"),
        ("Write", ARGS),
    ]


def test_a_call_after_reasoning_a_chat_template_opened_is_lifted_whole() -> None:
    # Qwen3 "Thinking-2507", DeepSeek-R1: the text starts inside the think block.
    opened = OutputFilters(think="thinking", assume_think_open=True, repair_tool_calls=True)
    text = "The user wants a helper.</think>\n\n" + FORMS["tag on its own lines"]
    for cut in (1, 2, 7, 1000):
        assert run(text, cut, opened) == [("thinking", "The user wants a helper."), ("Write", ARGS)]


def test_reasoning_before_the_call_streams_before_the_call_ends() -> None:
    pipeline = OutputPipeline(filters(), NAMES)
    early = pipeline.feed("<think>plan it</think>I will write it.\n<tool_call>" + CALL[:60])
    assert joined(early) == [("thinking", "plan it"), ("text", "I will write it.")]
    rest = pipeline.feed(CALL[60:] + "</tool_call>") + pipeline.flush()
    assert joined(rest) == [("Write", ARGS)]


def test_markup_stripping_alone_drops_the_span_of_a_tool_not_offered_whole() -> None:
    # Only strip_tool_markup: `Write` is no tool of the request, so its span goes.
    for cut in range(1, 60):
        text = "Here.\n" + FORMS["tag"] + "\nBye."
        out = run(text, cut, filters(repair=False), ToolNames(frozenset({"Read"})))
        assert out == [("text", "Here.\nBye.")], cut


# the think filter's gate


def test_the_gate_takes_the_text_before_each_tag_outside_a_think_block() -> None:
    seen: list[list[ThinkSegment]] = []

    def gate(segments: list[ThinkSegment]) -> bool:
        seen.append(segments)
        return False

    f = ThinkFilter("thinking", gate=gate)
    out = f.feed("a <th") + f.feed("ink>in <think> it</think> b </think> c <think>d") + f.flush()
    # Asked at each tag outside a think block (the stray closing one too),
    # never inside one; what it was handed is its own.
    assert seen == [[], [("thinking", "in <think> it"), ("text", "b ")], [("text", " c ")]]
    assert out == [("text", "a "), ("thinking", "d")]


def test_a_tag_the_gate_calls_data_stays_text() -> None:
    taken: list[ThinkSegment] = []

    def gate(segments: list[ThinkSegment]) -> bool:
        taken.extend(segments)
        return True

    f = ThinkFilter("strip", gate=gate)
    returned = f.feed('{"content": "<think>x</think>"}') + f.flush()
    # What the gate took came first, then what feed and flush returned.
    assert taken + returned == [
        ("text", '{"content": "'),
        ("text", "<think>x"),
        ("text", '</think>"}'),
    ]
