"""An OpenAI history's tool ids as Anthropic takes them: unique, each result
naming the id its call got (tables)."""

from __future__ import annotations

from typing import Any

import pytest

from coderouterd.translate.o2a_tool_messages import anthropic_tool_id
from coderouterd.translate.request_o2a import openai_to_anthropic_request
from coderouterd.translate.tool_pairs import NO_RESULT

LONG = "c" * 64
KIMI = anthropic_tool_id("functions.Read:0")


def call(call_id: str, path: str) -> dict[str, Any]:
    function = {"name": "Read", "arguments": f'{{"path": "{path}"}}'}
    return {"id": call_id, "type": "function", "function": function}


def calls(*pairs: tuple[str, str]) -> dict[str, Any]:
    return {"role": "assistant", "content": None, "tool_calls": [call(*p) for p in pairs]}


def result(call_id: str, content: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def sent_ids(messages: list[Any]) -> list[tuple[str, str]]:
    """(id, path read) of each call, and (id, result) of each result, in order."""
    out, _ = openai_to_anthropic_request(
        {"messages": messages}, model="claude", max_output_tokens=None
    )
    pairs = []
    for m in out["messages"]:
        for b in m["content"]:
            if b["type"] == "tool_use":
                pairs.append((b["id"], b["input"]["path"]))
            elif b["type"] == "tool_result":
                pairs.append((b["tool_use_id"], b["content"]))
    return pairs


TABLE = [
    pytest.param(
        [
            user("a"),
            calls(("call_0", "a")),
            result("call_0", "A"),
            user("b"),
            calls(("call_0", "b")),
            result("call_0", "B"),
        ],
        [("call_0", "a"), ("call_0", "A"), ("call_0_2", "b"), ("call_0_2", "B")],
        id="an id of an earlier turn again: the repeat renamed, with its result",
    ),
    pytest.param(
        [
            user("a"),
            calls(("functions.Read:0", "a")),
            result("functions.Read:0", "A"),
            user("b"),
            calls(("functions.Read:0", "b")),
            result("functions.Read:0", "B"),
        ],
        [(KIMI, "a"), (KIMI, "A"), (f"{KIMI}_2", "b"), (f"{KIMI}_2", "B")],
        id="Kimi's ids: characters rewritten, then repeats renamed",
    ),
    pytest.param(
        [
            user("ab"),
            calls(("call_0", "a"), ("call_0", "b")),
            result("call_0", "A"),
            result("call_0", "B"),
        ],
        [("call_0", "a"), ("call_0_2", "b"), ("call_0", "A"), ("call_0_2", "B")],
        id="one answer repeating an id: results answer its calls in order",
    ),
    pytest.param(
        [
            user("a"),
            calls(("call_0", "a"), ("call_0_2", "x")),
            result("call_0", "A"),
            result("call_0_2", "X"),
            user("b"),
            calls(("call_0", "b")),
            result("call_0", "B"),
        ],
        [
            ("call_0", "a"),
            ("call_0_2", "x"),
            ("call_0", "A"),
            ("call_0_2", "X"),
            ("call_0_3", "b"),
            ("call_0_3", "B"),
        ],
        id="a renamed id never takes an id the client sent",
    ),
    pytest.param(
        [
            user("a"),
            calls((LONG, "a")),
            result(LONG, "A"),
            user("b"),
            calls((LONG, "b")),
            result(LONG, "B"),
        ],
        [(LONG, "a"), (LONG, "A"), (LONG[:62] + "_2", "b"), (LONG[:62] + "_2", "B")],
        id="a renamed id no longer than 64 characters",
    ),
    pytest.param(
        [
            user("a"),
            calls(("call_0", "a")),
            user("b"),
            calls(("call_0", "b")),
            result("call_0", "B"),
        ],
        [("call_0", "a"), ("call_0", NO_RESULT), ("call_0_2", "b"), ("call_0_2", "B")],
        id="a result answers the latest call of its id, not one left unanswered",
    ),
]


@pytest.mark.parametrize(("messages", "expected"), TABLE)
def test_tool_ids_reach_anthropic_unique_and_paired(
    messages: list[Any], expected: list[tuple[str, str]]
) -> None:
    assert sent_ids(messages) == expected
