"""Histories whose tool calls and results do not pair up, sent to a strict
backend of the other dialect: OpenAI clients' to Anthropic, Anthropic
clients' to OpenAI."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coderouterd.errors import InvalidRequestError
from coderouterd.translate.capabilities import ModelCapabilities
from coderouterd.translate.memo_a2o import TranslatedHistory
from coderouterd.translate.request_a2o import anthropic_to_openai_request
from coderouterd.translate.request_o2a import openai_to_anthropic_request
from coderouterd.translate.tool_pairs import NO_RESULT, ORPHAN_FIELD, UNANSWERED_FIELD
from tests.fakes.strict import openai_refusal, tool_pairing_refusal


def translate(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    out, degraded = openai_to_anthropic_request(
        {"model": "gpt", "messages": messages}, model="claude", max_output_tokens=None
    )
    return out["messages"], [d.field for d in degraded]


def calls(*ids: str) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": i, "type": "function", "function": {"name": "Read", "arguments": "{}"}}
            for i in ids
        ],
    }


def result(call_id: str, content: str = "file text") -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def use(call_id: str) -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": "Read", "input": {}}


def answer(call_id: str, content: str = "file text") -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": call_id, "content": content}


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def test_a_history_trimmed_from_the_front_sends_the_orphaned_result_as_text() -> None:
    # A client that keeps its last N messages cut the call off, not its result.
    messages, degraded = translate(
        [result("call_9", "42 lines"), {"role": "user", "content": "go on"}]
    )
    assert messages == [
        {
            "role": "user",
            "content": [
                text(
                    "[result of tool call call_9, whose call is not in this conversation]\n42 lines"
                ),
                text("go on"),
            ],
        }
    ]
    assert degraded == [ORPHAN_FIELD]
    assert tool_pairing_refusal(messages) is None


def test_a_call_without_a_result_is_answered_with_an_error_first() -> None:
    messages, degraded = translate(
        [{"role": "user", "content": "read both"}, calls("a", "b"), result("b", "B")]
    )
    assert messages[1] == {"role": "assistant", "content": [use("a"), use("b")]}
    assert messages[2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "a", "is_error": True, "content": NO_RESULT},
            answer("b", "B"),
        ],
    }
    assert degraded == [UNANSWERED_FIELD]
    assert tool_pairing_refusal(messages) is None


def test_a_result_answering_an_earlier_turn_or_a_call_twice_is_sent_as_text() -> None:
    messages, degraded = translate(
        [
            {"role": "user", "content": "read"},
            calls("a"),
            result("a", "first"),
            result("a", "again"),
            {"role": "assistant", "content": "done"},
            result("a", "late"),
        ]
    )
    assert messages[2]["content"] == [
        answer("a", "first"),
        text("[result of tool call a, whose call is not in this conversation]\nagain"),
    ]
    assert messages[4]["content"] == [
        text("[result of tool call a, whose call is not in this conversation]\nlate")
    ]
    assert degraded == [ORPHAN_FIELD]
    assert tool_pairing_refusal(messages) is None


def test_a_final_assistant_turn_with_calls_is_left_as_the_client_sent_it() -> None:
    # Nothing follows it to answer the calls: it is the client's prefill.
    messages, degraded = translate([{"role": "user", "content": "read"}, calls("a")])
    assert messages[-1] == {"role": "assistant", "content": [use("a")]}
    assert degraded == []


def test_paired_calls_and_results_are_not_touched() -> None:
    messages, degraded = translate(
        [{"role": "user", "content": "read"}, calls("a", "b"), result("a"), result("b")]
    )
    assert messages[2]["content"] == [answer("a"), answer("b")]
    assert degraded == []


_IDS = st.sampled_from(["a", "b", "c"])
_MESSAGE = st.one_of(
    st.builds(lambda t: {"role": "user", "content": t}, st.sampled_from(["u1", "u2"])),
    st.builds(lambda t: {"role": "assistant", "content": t}, st.sampled_from(["x1", "x2"])),
    st.lists(_IDS, min_size=1, max_size=3, unique=True).map(lambda ids: calls(*ids)),
    st.builds(result, _IDS, st.sampled_from(["r1", "r2", "r3"])),
)


@given(st.lists(_MESSAGE, min_size=1, max_size=10))
@settings(max_examples=300)
def test_any_history_reaches_anthropic_paired_and_keeps_every_result(
    history: list[dict[str, Any]],
) -> None:
    messages, _ = translate(history)
    assert tool_pairing_refusal(messages) is None
    # Every result the client sent is still there, as a result or as text.
    sent = " ".join(
        str(b.get("content")) if b["type"] == "tool_result" else b.get("text", "")
        for m in messages
        for b in m["content"]
    )
    for message in history:
        if message["role"] == "tool":
            assert message["content"] in sent


# Anthropic clients' histories to OpenAI backends.


def a2o(
    messages: list[dict[str, Any]],
    history: TranslatedHistory | None = None,
    conversation: object = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """The OpenAI messages and dropped fields, decoded and raw (through
    `history` when given) alike."""
    outs = []
    for sent in (messages, msgspec.Raw(msgspec.json.encode(messages))):
        raw = isinstance(sent, msgspec.Raw)
        out, degraded = anthropic_to_openai_request(
            {"model": "claude", "max_tokens": 10, "messages": sent},
            model="qwen", caps=ModelCapabilities(), max_output_tokens=None, stream=False,
            history=history if raw else None, conversation=conversation if raw else None,
        )  # fmt: skip
        outs.append(
            (msgspec.json.decode(msgspec.json.encode(out))["messages"], [d.field for d in degraded])
        )
    assert outs[0] == outs[1]
    return outs[0]


def asks(*ids: str) -> dict[str, Any]:
    return {"role": "assistant", "content": [use(i) for i in ids]}


def answers(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": list(blocks)}


def orphan(call_id: str, content: str) -> str:
    return f"[result of tool call {call_id}, whose call is not in this conversation]\n{content}"


def test_a_result_whose_call_was_trimmed_reaches_openai_as_text_in_its_user_message() -> None:
    messages, degraded = a2o([answers(answer("toolu_9", "42 lines"), text("go on"))])
    assert messages == [{"role": "user", "content": orphan("toolu_9", "42 lines") + "\n\ngo on"}]
    assert degraded == [ORPHAN_FIELD]


def test_a_call_without_a_result_reaches_openai_answered_with_an_error_after_the_results() -> None:
    messages, degraded = a2o(
        [{"role": "user", "content": "read both"}, asks("a", "b"), answers(answer("b", "B"))]
    )
    assert [(m["role"], m.get("tool_call_id"), m["content"]) for m in messages[2:]] == [
        ("tool", "b", "B"),
        ("tool", "a", "Error: " + NO_RESULT),
    ]
    assert degraded == [UNANSWERED_FIELD]
    assert openai_refusal({"messages": messages}) is None


def test_results_answering_an_earlier_turn_or_twice_reach_openai_as_text_after_the_run() -> None:
    messages, degraded = a2o(
        [
            {"role": "user", "content": "read"},
            asks("a", "b"),
            answers(answer("a", "first"), answer("a", "again"), answer("b", "B")),
            {"role": "assistant", "content": "done"},
            answers(answer("a", "late")),
        ]
    )
    assert messages[2:] == [
        {"role": "tool", "tool_call_id": "a", "content": "first"},
        {"role": "tool", "tool_call_id": "b", "content": "B"},
        {"role": "user", "content": orphan("a", "again")},
        {"role": "assistant", "content": "done"},
        {"role": "user", "content": orphan("a", "late")},
    ]
    assert degraded == [ORPHAN_FIELD]


def test_a_system_message_between_calls_and_results_reaches_openai_after_the_results() -> None:
    # Claude Code sends system messages mid-conversation, even inside a tool loop.
    note = {"role": "system", "content": "the user changed a file"}
    history = [{"role": "user", "content": "read"}, asks("a", "b"), note]
    history += [answers(answer("a", "A")), note, answers(answer("b", "B"))]
    messages, degraded = a2o(history)
    assert [(m["role"], m.get("tool_call_id")) for m in messages[2:]] == [
        ("tool", "a"),
        ("tool", "b"),
        ("system", None),
        ("system", None),
    ]
    assert degraded == []
    assert openai_refusal({"messages": messages}) is None


def test_an_anthropic_history_ending_in_calls_or_paired_reaches_openai_as_sent() -> None:
    ending, degraded = a2o([{"role": "user", "content": "read"}, asks("a")])
    assert ending[-1]["tool_calls"][0]["id"] == "a"
    assert degraded == []
    paired, degraded = a2o(
        [{"role": "user", "content": "read"}, asks("a", "b"), answers(answer("b"), answer("a"))]
    )
    assert [m.get("tool_call_id") for m in paired] == [None, None, "b", "a"]
    assert degraded == []


def test_a_conversation_taken_from_its_last_turn_is_mended_on_every_turn() -> None:
    # Turns after the first take the messages they share with the last one
    # as translated: an orphan early in the history must be mended each time,
    # and one that first appears among a turn's new messages too.
    history = TranslatedHistory()
    turn = [
        answers(answer("gone", "old result"), text("go on")),
        {"role": "assistant", "content": "ok"},
    ]
    for more in (
        [{"role": "user", "content": "next"}],
        [{"role": "assistant", "content": "more"}, answers(answer("late", "L"))],
        [{"role": "assistant", "content": "again"}, {"role": "user", "content": "fine"}],
    ):
        turn = turn + more
        messages, degraded = a2o(turn, history, conversation=1)
        assert openai_refusal({"messages": messages}) is None
        assert messages[0]["content"].startswith(orphan("gone", "old result"))
        assert degraded == [ORPHAN_FIELD]
    assert {"role": "user", "content": orphan("late", "L")} in messages


_BLOCK = st.one_of(
    st.builds(answer, _IDS, st.sampled_from(["r1", "r2", "r3"])), st.builds(text, st.just("t"))
)
_ANTHROPIC = st.one_of(
    st.builds(lambda t: {"role": "user", "content": t}, st.sampled_from(["u1", "u2"])),
    st.builds(lambda t: {"role": "assistant", "content": t}, st.sampled_from(["x1", "x2"])),
    st.lists(_IDS, min_size=1, max_size=3, unique=True).map(lambda ids: asks(*ids)),
    st.lists(_BLOCK, min_size=1, max_size=3).map(lambda blocks: answers(*blocks)),
)


@given(st.lists(_ANTHROPIC, min_size=1, max_size=10), st.lists(_ANTHROPIC, max_size=4))
@settings(max_examples=300)
def test_any_anthropic_history_reaches_openai_paired_and_keeps_every_result(
    history: list[dict[str, Any]], more: list[dict[str, Any]]
) -> None:
    # Twice, as a conversation's turn and the one after it.
    memo = TranslatedHistory()
    for turn in (history, history + more):
        if all(m["role"] == "assistant" for m in turn):
            # Nothing for the backend to answer: refused (request_a2o).
            with pytest.raises(InvalidRequestError):
                a2o(turn, memo, conversation=1)
            continue
        messages, _ = a2o(turn, memo, conversation=1)
        assert openai_refusal({"messages": messages}) is None
        sent = " ".join(str(m.get("content")) for m in messages)
        for message in turn:
            for block in message["content"] if isinstance(message["content"], list) else []:
                if block["type"] == "tool_result":
                    assert block["content"] in sent
