"""While the start of the text is undecided (a template that opens
`<think>`), a think tag decides it only where, read as text, it falls
outside a tool call: inside one it is the call's data (a model that did not
think writes code that handles reasoning tags), however the text is
chunked. Past its limit the held start is reasoning."""

from __future__ import annotations

import json
from typing import Any

from coderouterd.translate.filters import ThinkFilter
from coderouterd.translate.repair import ToolCall, ToolCallRepair
from coderouterd.translate.response_o2a import OutputPipeline, Piece
from coderouterd.translate.types import OutputFilters, ToolNames

NAMES = frozenset({"Write"})
OPEN = OutputFilters(
    think="thinking", assume_think_open=True, strip_tool_markup=True, repair_tool_calls=True
)
ARGS = {"file_path": "strip.py", "content": "text.split('</think>')[-1]  # <think> too\n"}
CALL = json.dumps({"name": "Write", "arguments": ARGS})
FORMS = {
    "tag": f"<tool_call>{CALL}</tool_call>",
    "bare object": f"{CALL}\n",
    "json fence": f"```json\n{CALL}\n```\n",
}


def run(text: str, cut: int) -> list[Any]:
    pipeline = OutputPipeline(OPEN, ToolNames(NAMES))
    pieces: list[Piece] = []
    for i in range(0, len(text), cut):
        pieces += pipeline.feed(text[i : i + cut])
    pieces += pipeline.flush()
    out: list[Any] = []
    for piece in pieces:
        if isinstance(piece, ToolCall):
            out.append((piece.name, piece.arguments))
        elif out and out[-1][0] == piece[0]:
            out[-1] = (piece[0], out[-1][1] + piece[1])
        else:
            out.append(piece)
    return out


def test_only_a_think_tag_outside_a_printed_call_decides_the_start() -> None:
    for form, call in FORMS.items():
        for cut in range(1, 40):
            out = run("Writing it.\n" + call, cut)
            assert out == [("text", "Writing it."), ("Write", ARGS)], (form, cut)
    # Outside any call the closing tag ends the reasoning, which may name calls.
    reasoning = 'Use <tool_call> tags: <tool_call>{"name": "Write"}</tool_call>\n'
    for cut in range(1, 40):
        out = run(reasoning + "</think>\n" + FORMS["tag"], cut)
        assert out == [("thinking", reasoning), ("Write", ARGS)], cut
    # A call drafted in the reasoning and never closed ends at the tag too.
    draft = 'I will send <tool_call>{"name": "Write", "arguments": {}}\n'
    assert run(draft + "</think>Done.", 7) == [("thinking", draft), ("text", "Done.")]


def test_past_its_limit_an_undecided_start_is_reasoning_a_later_tag_closes() -> None:
    f = ThinkFilter(
        "thinking",
        assume_open_at_start=True,
        undecided_limit=20,
        probe=lambda: ToolCallRepair(NAMES, strip_markup=True),
    )
    out = f.feed("a" * 15) + f.feed("b" * 15) + f.feed("c</think>answer") + f.flush()
    assert out == [("thinking", "a" * 15 + "b" * 15), ("thinking", "c"), ("text", "answer")]
