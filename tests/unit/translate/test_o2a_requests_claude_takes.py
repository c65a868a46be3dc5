"""OpenAI requests that OpenAI takes, translated into Anthropic requests an
Anthropic backend takes too (tables)."""

from __future__ import annotations

import typing
from typing import Any

import pytest
from openai.types.shared.reasoning_effort import ReasoningEffort

from coderouterd.errors import InvalidRequestError
from coderouterd.translate.capabilities import THINKING_UNSUPPORTED
from coderouterd.translate.params_o2a import DEFAULT_MAX_TOKENS, THINKING_BUDGETS
from coderouterd.translate.request_o2a import openai_to_anthropic_request
from coderouterd.translate.types import Degradation

USER_HI = {"role": "user", "content": "hi"}


def translate(body: dict[str, Any], **kw: Any) -> tuple[dict[str, Any], list[Degradation]]:
    return openai_to_anthropic_request(
        {"model": "gpt-4o", **body}, model="claude", max_output_tokens=None, **kw
    )


@pytest.mark.parametrize(
    "effort",
    [v for arg in typing.get_args(ReasoningEffort) for v in typing.get_args(arg) if v != "none"],
)
def test_every_reasoning_effort_of_the_openai_sdk_has_a_budget(effort: str) -> None:
    out, degradations = translate({"messages": [USER_HI], "reasoning_effort": effort})
    assert out["thinking"] == {"type": "enabled", "budget_tokens": THINKING_BUDGETS[effort]}
    assert out["max_tokens"] == DEFAULT_MAX_TOKENS + THINKING_BUDGETS[effort]
    assert degradations == []


def test_the_efforts_above_high_get_the_largest_budget_within_every_thinking_claudes_limit() -> (
    None
):
    largest = max(THINKING_BUDGETS.values())
    assert THINKING_BUDGETS["xhigh"] == THINKING_BUDGETS["max"] == largest
    assert largest >= THINKING_BUDGETS["high"]
    assert DEFAULT_MAX_TOKENS + largest <= 32000  # Claude Opus 4's output limit


CANNOT_THINK = [
    # (request, fields sent besides model and messages)
    ({"reasoning_effort": "high"}, {"max_tokens": DEFAULT_MAX_TOKENS}),
    (
        {"reasoning_effort": "low", "temperature": 0.2},
        {"max_tokens": DEFAULT_MAX_TOKENS, "temperature": 0.2},
    ),
    ({"reasoning_effort": "xhigh", "max_tokens": 500}, {"max_tokens": 500}),
]


@pytest.mark.parametrize(("extra", "sent"), CANNOT_THINK)
def test_reasoning_asked_of_a_model_that_cannot_think_changes_nothing_else(
    extra: dict[str, Any], sent: dict[str, Any]
) -> None:
    out, degradations = translate({"messages": [USER_HI], **extra}, can_think=False)
    assert {k: v for k, v in out.items() if k not in ("model", "messages")} == sent
    assert degradations == [Degradation("reasoning_effort", THINKING_UNSUPPORTED)]


def test_an_unknown_effort_is_refused_even_for_a_model_that_cannot_think() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        translate({"messages": [USER_HI], "reasoning_effort": "extreme"}, can_think=False)
    assert caught.value.field == "reasoning_effort"


def conversation(arguments: str) -> list[Any]:
    call = {"id": "c1", "type": "function", "function": {"name": "Write", "arguments": arguments}}
    return [
        {"role": "user", "content": "write it"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "failed"},
    ]


@pytest.mark.parametrize(
    "arguments",
    ['{"file_path": "/x.py", "content": "def f(', "{not json", "[1, 2]", '"text"', "42", "null"],
)
def test_arguments_that_are_no_json_object_are_sent_raw(arguments: str) -> None:
    out, degradations = translate({"messages": conversation(arguments)})
    [call] = [b for b in out["messages"][1]["content"] if b["type"] == "tool_use"]
    assert call == {"type": "tool_use", "id": "c1", "name": "Write", "input": {"_raw": arguments}}
    assert [d.field for d in degradations] == ["tool_calls.arguments"]


@pytest.mark.parametrize(("arguments", "sent"), [('{"a": 1}', {"a": 1}), ("", {}), (" ", {})])
def test_arguments_that_are_a_json_object_or_empty_are_sent_as_the_input(
    arguments: str, sent: dict[str, Any]
) -> None:
    out, degradations = translate({"messages": conversation(arguments)})
    [call] = [b for b in out["messages"][1]["content"] if b["type"] == "tool_use"]
    assert call["input"] == sent
    assert degradations == []


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


PREFILLS = [
    # (last assistant content, its blocks sent)
    ("Here is the plan: ", [text("Here is the plan:")]),
    ("Done.\n\n\t", [text("Done.")]),
    ("no whitespace", [text("no whitespace")]),
    ([text("One. "), text("Two \n")], [text("One. "), text("Two")]),
    ([text("One. "), text("   ")], [text("One.")]),
]


@pytest.mark.parametrize(("content", "sent"), PREFILLS)
def test_a_final_assistant_turn_ends_at_its_last_visible_character(
    content: Any, sent: list[Any]
) -> None:
    messages = [
        USER_HI,
        {"role": "assistant", "content": "Earlier. "},
        {"role": "user", "content": "more"},
        {"role": "assistant", "content": content},
    ]
    out, degradations = translate({"messages": messages})
    assert out["messages"][1]["content"] == [text("Earlier. ")]
    assert out["messages"][-1] == {"role": "assistant", "content": sent}
    assert degradations == []


def test_a_final_assistant_tool_call_is_left_alone() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    messages = [USER_HI, {"role": "assistant", "content": "Calling. ", "tool_calls": [call]}]
    out, _ = translate({"messages": messages})
    [assistant] = [t for t in out["messages"] if t["role"] == "assistant"]
    assert assistant["content"][0] == text("Calling. ")
