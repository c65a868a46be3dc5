"""One rule for how long a printed call may be, whether the text streams or
comes whole; and the work of lifting a call that carries a large file grows
linearly with it, however finely it is chunked."""

from __future__ import annotations

import json

import pytest

from coderouterd.translate.repair import Segment, ToolCall, ToolCallRepair

NAMES = frozenset({"Read", "Write"})


def fed(text: str, chunk: int, repair: ToolCallRepair) -> list[Segment]:
    out: list[Segment] = []
    for i in range(0, len(text), chunk):
        out += repair.feed(text[i : i + chunk])
    return out + repair.flush()


def call_text(content: str) -> str:
    call = {"name": "Write", "arguments": {"file_path": "big.txt", "content": content}}
    return "Writing it.\n<tool_call>" + json.dumps(call) + "</tool_call>\nDone."


def test_a_candidate_past_the_limit_is_text_whether_it_streams_or_comes_whole() -> None:
    text = '{"name": "Read", "arguments": {"x": "' + "a" * 200 + '"}}\n'
    for chunk in (1, 10, len(text)):
        repair = ToolCallRepair(NAMES, max_candidate=100)
        out = fed(text, chunk, repair)
        assert "".join(s for s in out if isinstance(s, str)) == text, chunk
        assert repair.repairs == 0


@pytest.mark.parametrize(("size", "chunk"), [(1_000_000, 4096), (1_000_000, 1), (70_000, 1000)])
def test_a_call_carrying_a_large_file_is_lifted_in_linear_work(size: int, chunk: int) -> None:
    content = "x = 1  # <b> {'k': [1]}\n" * (size // 24)
    text = call_text(content)
    repair = ToolCallRepair(NAMES, strip_markup=True)
    out = fed(text, chunk, repair)
    calls = [s for s in out if isinstance(s, ToolCall)]
    assert [c.arguments["content"] for c in calls] == [content]
    # Each character is scanned once as it arrives and once in the span.
    assert repair.scanned <= 2 * len(text) + 100
