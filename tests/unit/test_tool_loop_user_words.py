"""A run of tool calls counts only the calls after the user's last words
beside their results: what the agent does as told is not a loop."""

from __future__ import annotations

from typing import Any

import pytest

from coderouterd.ingress.tool_loop import ToolLoop, detect
from tests.unit.test_tool_loop import LOOKS, READ, history, openai_history, read

ASKED = "I saved a.py in my editor, read it again"
REMINDER = "<system-reminder>The todo list is empty.</system-reminder>"


def said_beside(messages: list[dict[str, Any]], result_at: int, text: str) -> list[dict[str, Any]]:
    """The history with `text` beside the result of call `result_at` (Anthropic)."""
    messages[2 + 2 * result_at]["content"].append({"type": "text", "text": text})
    return messages


@pytest.mark.parametrize("how", ["memo", "whole"])
def test_the_calls_before_the_users_words_do_not_count(how: str) -> None:
    # Three reads, the user steps in beside the third result, the agent reads once more.
    stepped_in = said_beside(history([READ] * 4), 2, ASKED)
    assert detect(read(stepped_in, how), **LOOKS) is None
    # The calls after the words count: three more make a loop of three.
    again = said_beside(history([READ] * 6), 2, ASKED)
    assert detect(read(again, how), **LOOKS) == ToolLoop("A", 3)
    # Claude Code's own notes to the model are not the user stepping in.
    noted = said_beside(history([READ] * 4), 2, REMINDER)
    assert detect(read(noted, how), **LOOKS) == ToolLoop("A", 4)


@pytest.mark.parametrize("how", ["memo", "whole"])
def test_an_openai_users_message_between_the_results_cuts_the_run(how: str) -> None:
    messages = openai_history([READ] * 4)
    # After the third call's `role: tool` message, before the fourth call.
    messages.insert(8, {"role": "user", "content": ASKED})
    assert detect(read(messages, how), **LOOKS) is None
    reminded = openai_history([READ] * 4)
    reminded.insert(8, {"role": "user", "content": REMINDER})
    assert detect(read(reminded, how), **LOOKS) == ToolLoop("A", 4)
