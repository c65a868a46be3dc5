"""JSON nested deeper than the decoder follows, in a model's output, is no
usable value: never an exception out of the translation."""

from __future__ import annotations

import json

from coderouterd.translate.call_indexes import whole_object
from coderouterd.translate.repair import ToolCallRepair
from coderouterd.translate.repair_literals import INVALID, decode, parse_keyword_arguments
from coderouterd.translate.response_o2a import arguments_json, parse_arguments

DEEP = "[" * 5000 + "]" * 5000
ARGS = '{"data": ' + DEEP + "}"


def test_arguments_nested_too_deep_are_raw() -> None:
    assert decode(ARGS) is INVALID
    assert parse_arguments(ARGS) == {"_raw": ARGS}
    assert json.loads(arguments_json(ARGS)) == {"_raw": ARGS}
    assert whole_object([ARGS[:10], ARGS[10:]], len(ARGS)) is False
    assert parse_keyword_arguments("data=" + DEEP) is None


def test_a_printed_call_nested_too_deep_is_left_as_text() -> None:
    for text in (
        '<tool_call>{"name": "Write", "arguments": ' + ARGS + "}</tool_call>",
        '{"name": "Write", "arguments": ' + ARGS + "}\n",
        "Write(data=" + DEEP + ")\n",
    ):
        repair = ToolCallRepair(frozenset({"Write"}))
        out = repair.feed(text) + repair.flush()
        assert "".join(str(s) for s in out) == text
        assert repair.repairs == 0
