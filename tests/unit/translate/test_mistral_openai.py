"""An OpenAI client's messages for a Mistral-family backend: re-encoded only
when their ids or role order need it, and then in the form mistral_common
takes, for any history."""

from __future__ import annotations

import itertools
import re
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coderouterd.routing.call import Call
from coderouterd.translate.capabilities import ModelCapabilities
from coderouterd.translate.mistral_openai import for_mistral
from coderouterd.translate.passthrough import OpenAIPassthroughCodec
from coderouterd.translate.tools_a2o import tool_id

MISTRAL = ModelCapabilities(tool_id_format="mistral")
MISTRAL_ID = re.compile(r"[A-Za-z0-9]{9}")
# mistral_common's MistralRequestValidator._validate_message_order.
_AFTER = {
    "system": {"user", "assistant", "system"},
    "user": {"assistant", "system", "user"},
    "assistant": {"assistant", "user", "tool"},
    "tool": {"assistant", "tool"},
}


def calls(*ids: str) -> dict[str, Any]:
    function = {"name": "Read", "arguments": "{}"}
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": i, "type": "function", "function": function} for i in ids],
    }


def result(call_id: str, content: Any = "r") -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": content}


USER = {"role": "user", "content": "u"}


def reencoded(messages: list[Any]) -> list[dict[str, Any]] | None:
    raw = for_mistral(msgspec.Raw(msgspec.json.encode(messages)), MISTRAL)
    return None if raw is None else msgspec.json.decode(raw)


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "system", "content": "s"}, USER],
        [USER, calls("Ab3dE6gH9", "x1y2z3w4v"), result("Ab3dE6gH9"), result("x1y2z3w4v")],
        [
            USER,
            calls("Ab3dE6gH9"),
            result("Ab3dE6gH9"),
            {"role": "assistant", "content": "a"},
            USER,
        ],
    ],
    ids=["system-user", "own-ids", "loop"],
)
def test_a_history_mistral_takes_is_not_encoded_again(messages: list[Any]) -> None:
    assert reencoded(messages) is None


@pytest.mark.parametrize(
    "raw",
    [b"[1]", b'[{"role":5}]', b'[{"role":"user","tool_calls":"x"}]', b"[", b'[{"role":"\xff"}]'],
)
def test_a_history_that_cannot_be_read_goes_as_sent(raw: bytes) -> None:
    assert for_mistral(msgspec.Raw(raw), MISTRAL) is None


def test_a_call_and_its_result_get_the_same_id_as_the_translating_path_gives() -> None:
    out = reencoded([USER, calls("call_abc123def456", "Ab3dE6gH9"), result("call_abc123def456")])
    assert out is not None
    _, assistant, tool = out
    made = tool_id("call_abc123def456", MISTRAL)
    assert [c["id"] for c in assistant["tool_calls"]] == [made, "Ab3dE6gH9"]
    assert tool["tool_call_id"] == made
    assert assistant["tool_calls"][0]["function"] == {"name": "Read", "arguments": "{}"}


def test_a_tool_result_of_text_parts_takes_the_text_after_it_as_one_string() -> None:
    parts = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    out = reencoded([USER, calls("Ab3dE6gH9"), result("Ab3dE6gH9", parts), USER])
    assert out is not None
    assert out[-1] == result("Ab3dE6gH9", "a\nb\n\n[user message]\nu")
    # Where no text follows it, the parts stay as they came.
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}
    for after in ([], [{"role": "user", "content": [image]}]):
        out = reencoded([USER, calls("call_1"), result("call_1", parts), *after])
        assert out is not None
        assert out[2]["content"] == parts


def test_only_a_mistral_backend_gets_the_messages_changed() -> None:
    history = msgspec.json.encode([USER, {"role": "assistant", "content": "{"}])
    call = Call(
        request_id="r",
        dialect="openai",
        fields={"model": msgspec.Raw(b'"m"'), "messages": msgspec.Raw(history)},
        headers={},
        stream=False,
        requested_model="m",
        profile="p",
    )
    for caps, prefix in ((MISTRAL, True), (ModelCapabilities(), None)):
        codec = OpenAIPassthroughCodec("p", "model", max_output_tokens=None, caps=caps)
        body, degraded = codec.request(call)
        assert msgspec.json.decode(body)["messages"][-1].get("prefix") is prefix
        assert degraded == []


def mistral_refusal(messages: list[dict[str, Any]]) -> str | None:
    """What mistral_common answers to these messages' order and ids, if anything."""
    for before, m in itertools.pairwise(messages):
        if m["role"] not in _AFTER[before["role"]]:
            return f"Unexpected role '{m['role']}' after role '{before['role']}'"
    last = messages[-1]
    if last["role"] == "assistant" and not last.get("prefix") and not last.get("tool_calls"):
        return "Expected last role User or Tool (or Assistant with prefix True)"
    for m in messages:
        ids = [c["id"] for c in m.get("tool_calls") or []] + [m.get("tool_call_id") or "Ab3dE6gH9"]
        if not all(MISTRAL_ID.fullmatch(i) for i in ids):
            return f"Tool call id was one of {ids} but must be a-z, A-Z, 0-9, with a length of 9."
    return None


_ID = st.sampled_from(["call_abc123def456", "Ab3dE6gH9", "toolu_01", "x"])
_TEXT = st.sampled_from(["", "t", [{"type": "text", "text": "p"}]])
_SAID = st.builds(
    lambda r, c: {"role": r, "content": c}, st.sampled_from(["system", "user"]), _TEXT
)
# What a client's history is made of: text said, an answer, calls and their results.
_PART = st.one_of(
    st.builds(lambda m: [m], _SAID),
    st.builds(lambda c: [{"role": "assistant", "content": c}], st.sampled_from(["a", "{"])),
    st.builds(
        lambda ids, texts: [calls(*ids), *(result(i, t) for i, t in zip(ids, texts, strict=False))],
        st.lists(_ID, min_size=1, max_size=2),
        st.lists(_TEXT, min_size=2, max_size=2),
    ),
)
_HISTORY = st.builds(
    lambda first, parts: [first, *itertools.chain.from_iterable(parts)],
    _SAID,
    st.lists(_PART, max_size=5),
)


@given(_HISTORY)
@settings(max_examples=300)
def test_any_openai_history_reaches_mistral_in_a_form_it_takes(messages: list[Any]) -> None:
    out = reencoded(messages)
    assert mistral_refusal(messages if out is None else out) is None
    if out is not None:
        call_ids = {c["id"] for m in out for c in m.get("tool_calls") or []}
        sent_ids = {c["id"] for m in messages for c in m.get("tool_calls") or []}
        assert call_ids == {tool_id(i, MISTRAL) for i in sent_ids}
