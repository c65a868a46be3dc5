"""OpenAI histories whose tool calls and results do not pair up, sent to Anthropic."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from coderouterd.translate.request_o2a import openai_to_anthropic_request
from coderouterd.translate.tool_pairs import NO_RESULT, ORPHAN_FIELD, UNANSWERED_FIELD
from tests.fakes.strict import tool_pairing_refusal


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
