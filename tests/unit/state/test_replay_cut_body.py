"""A non-streamed response recorded cut at replay.max_record_kb: assembled up
to the cut, and compared so; a cut before any of the answer says so."""

from __future__ import annotations

import json

import pytest

from coderouterd.state.assemble import Assembled, Dialect, ToolCallOut, assemble
from coderouterd.state.replay_diff import Change, diff, nothing_compared, render_diff
from tests.fakes.transcripts import anthropic_message, openai_completion

LONG = "all work and no play " * 20


def _cut(body: object, before: str) -> bytes:
    """The body's JSON, cut just before the first `before` in it."""
    data = json.dumps(body).encode()
    return data[: data.index(before.encode())]


@pytest.mark.parametrize(
    ("dialect", "body"),
    [("anthropic", anthropic_message(LONG)), ("openai", openai_completion(LONG))],
)
def test_a_cut_body_is_assembled_up_to_the_cut(dialect: Dialect, body: object) -> None:
    got = assemble(dialect, False, _cut(body, "no play"))
    assert got == Assembled(text="all work and ", complete=False)


def test_a_cut_legacy_function_call_keeps_the_arguments_up_to_the_cut() -> None:
    completion = openai_completion("")
    completion["choices"][0]["message"] = {
        "role": "assistant",
        "content": None,
        "function_call": {"name": "read", "arguments": '{"path": "a.py"}'},
    }
    got = assemble("openai", False, _cut(completion, "a.py"))
    assert got.tool_calls == [ToolCallOut("read", '{"path": "')]
    assert not got.complete


def test_the_last_call_of_a_cut_recording_may_have_its_name_cut() -> None:
    recorded = Assembled(tool_calls=[ToolCallOut("rea", {})])
    same = Assembled(tool_calls=[ToolCallOut("read", {"path": "a.py"})])
    other = Assembled(tool_calls=[ToolCallOut("write", {"path": "a.py"})])
    times = {"recorded_ms": None, "new_ms": None}
    assert diff(recorded, same, partial=True, **times) == []
    assert diff(recorded, other, partial=True, **times) == [
        Change("tool_calls[0].name", "rea", "write")
    ]


def test_a_recording_cut_before_the_answer_says_nothing_was_compared() -> None:
    recorded = assemble("anthropic", False, _cut(anthropic_message(LONG), '"content"'))
    assert recorded == Assembled()
    new = assemble("anthropic", False, json.dumps(anthropic_message("other")).encode())
    changes = diff(recorded, new, recorded_ms=None, new_ms=None, partial=True)
    assert changes == []
    assert nothing_compared(recorded, partial=True)
    shown = render_diff(changes, partial=True, nothing=True)
    assert "nothing of it compared" in shown and "no differences" not in shown
    # A whole recording of an empty answer is compared in full.
    assert not nothing_compared(Assembled(complete=True), partial=False)
