"""Tool loops written the legacy way (an assistant's `function_call`, a
`role: "function"` result), through the body memo and without it: a result
answers the latest unanswered call of its name, as FunctionCalls pairs them
for Claude."""

from __future__ import annotations

from typing import Any

import pytest

from coderouterd.ingress.tool_loop import ToolLoop, detect
from tests.unit.test_tool_loop import LOOKS, READ, openai_history, read

CALL = {"name": "A", "arguments": '{"path": "a.py"}'}


def call(function: dict[str, str] = CALL) -> dict[str, Any]:
    return {"role": "assistant", "content": None, "function_call": function}


def result(content: str = "x = 1", name: str = "A") -> dict[str, Any]:
    return {"role": "function", "name": name, "content": content}


def legacy_history(*steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A system prompt and the user's ask, then each step's messages."""
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "fix the bug"},
    ]
    for s in steps:
        messages += s
    return messages


def same(n: int) -> list[list[dict[str, Any]]]:
    """The same call `n` times, each answered by the same result."""
    return [[call(), result()] for _ in range(n)]


@pytest.mark.parametrize("how", ["memo", "whole"])
def test_a_legacy_function_call_loop_is_seen_as_a_tool_call_loop_is(how: str) -> None:
    assert detect(read(openai_history([READ] * 4), how), **LOOKS) == ToolLoop("A", 4)
    assert detect(read(legacy_history(*same(4)), how), **LOOKS) == ToolLoop("A", 4)


@pytest.mark.parametrize("how", ["memo", "whole"])
@pytest.mark.parametrize(
    ("steps", "found"),
    [
        # Arguments alike but for key order: the same call.
        (
            [*same(2), [call({"name": "A", "arguments": '{ "path" : "a.py" }'}), result()]],
            ToolLoop("A", 3),
        ),
        # The same call with another result is progress.
        ([*same(2), [call(), result("x = 2")]], None),
        ([[call(), result("x = 0")], *same(2)], None),
        # Another call breaks the run.
        ([*same(2), [call({"name": "A", "arguments": '{"path": "b.py"}'}), result()]], None),
        # The newest call unanswered: a result of another name answers another call.
        ([*same(3), [call(), result(name="B")]], None),
        ([*same(3), [call()]], None),
        # The user stepped in beside the result.
        ([*same(3), [call(), result(), {"role": "user", "content": "stop"}]], None),
        # The first result of the name answers the call; a second one, an
        # older call (none is left here).
        ([*same(2), [call(), result(), result("x = 2")]], ToolLoop("A", 3)),
        ([*same(2), [call(), result("x = 2"), result()]], None),
    ],
)
def test_a_legacy_result_answers_the_latest_unanswered_call_of_its_name(
    steps: list[list[dict[str, Any]]], found: ToolLoop | None, how: str
) -> None:
    assert detect(read(legacy_history(*steps), how), **LOOKS) == found


@pytest.mark.parametrize("how", ["memo", "whole"])
def test_legacy_and_tool_calls_forms_make_one_run(how: str) -> None:
    """A client that moved from `functions` to `tools` mid-conversation: the
    same call with the same result, in either form, is the same loop."""
    messages = legacy_history(*same(2), openai_history([READ])[2:])
    assert detect(read(messages, how), **LOOKS) == ToolLoop("A", 3)
