"""A run of tool calls counts only the calls after the user's last words,
beside their results or after an answer in text: what the agent does as told
is not a loop."""

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


def text_turn(*after: dict[str, Any]) -> list[dict[str, Any]]:
    """Three reads with an answer in text after the second result, then `after`."""
    messages = history([READ] * 3)
    answer = {"role": "assistant", "content": [{"type": "text", "text": "a.py sets x."}]}
    return [*messages[:5], answer, *after, *messages[5:]]


@pytest.mark.parametrize("how", ["memo", "whole"])
def test_an_answer_in_text_and_the_users_new_request_start_a_new_run(how: str) -> None:
    # Read, read, an answer, the user's new task, read: one call since the user spoke.
    asked = text_turn({"role": "user", "content": "now add a docstring to a.py"})
    assert detect(read(asked, how), **LOOKS) is None
    as_blocks = text_turn({"role": "user", "content": [{"type": "text", "text": ASKED}]})
    assert detect(read(as_blocks, how), **LOOKS) is None
    # A text turn the user did not answer (only Claude Code's note after it,
    # or nothing) is the agent thinking aloud: the run goes on through it.
    noted = text_turn({"role": "user", "content": REMINDER})
    assert detect(read(noted, how), **LOOKS) == ToolLoop("A", 3)
    assert detect(read(text_turn(), how), **LOOKS) == ToolLoop("A", 3)


@pytest.mark.parametrize("how", ["memo", "whole"])
def test_an_openai_users_request_after_an_answer_in_text_starts_a_new_run(how: str) -> None:
    def with_answer(*after: dict[str, Any]) -> list[dict[str, Any]]:
        messages = openai_history([READ] * 3)
        # After the second call's `role: tool` message, before the third call.
        answer = {"role": "assistant", "content": "a.py sets x."}
        return [*messages[:6], answer, *after, *messages[6:]]

    assert detect(read(with_answer({"role": "user", "content": ASKED}), how), **LOOKS) is None
    reminded = with_answer({"role": "user", "content": REMINDER})
    assert detect(read(reminded, how), **LOOKS) == ToolLoop("A", 3)
    assert detect(read(with_answer(), how), **LOOKS) == ToolLoop("A", 3)
