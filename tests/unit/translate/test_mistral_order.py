"""Anthropic histories to Mistral-family backends, in the role order
mistral_common takes: tables of the reordering, and any history."""

from __future__ import annotations

import itertools
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coderouterd.errors import InvalidRequestError
from coderouterd.translate.capabilities import ModelCapabilities
from coderouterd.translate.memo_a2o import TranslatedHistory
from coderouterd.translate.mistral_order import (
    BRIDGE,
    mistral_order,
    needs_mistral_order,
    prefixed,
)
from coderouterd.translate.request_a2o import anthropic_to_openai_request
from tests.fakes.strict import openai_refusal

MISTRAL = ModelCapabilities(tool_id_format="mistral", vision=True)
# mistral_common's MistralRequestValidator._validate_message_order.
_AFTER = {
    "system": {"user", "assistant", "system"},
    "user": {"assistant", "system", "user"},
    "assistant": {"assistant", "user", "tool"},
    "tool": {"assistant", "tool"},
}
TOOL = {"role": "tool", "tool_call_id": "a", "content": "r"}
CALLS = {"role": "assistant", "content": None, "tool_calls": [{"id": "a"}]}
IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}


def mistral_refusal(messages: list[dict[str, Any]], *, serving: bool = True) -> str | None:
    """What mistral_common answers to these messages' order (and, `serving`,
    to the last one), if anything."""
    for before, m in itertools.pairwise(messages):
        if m["role"] not in _AFTER[before["role"]]:
            return f"Unexpected role '{m['role']}' after role '{before['role']}'"
    # A last system message passes: only an assistant one must be a prefix.
    last = messages[-1]
    if serving and last["role"] == "assistant" and not last.get("prefix"):
        return "Expected last role User or Tool (or Assistant with prefix True)"
    return None


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        (
            [TOOL, {"role": "user", "content": "note"}],
            [{**TOOL, "content": "r\n\n[user message]\nnote"}],
        ),
        (
            [TOOL, {"role": "system", "content": "40% left"}, {"role": "user", "content": "go"}],
            [{**TOOL, "content": "r\n\n[system message]\n40% left\n\n[user message]\ngo"}],
        ),
        (
            [TOOL, {"role": "user", "content": [{"type": "text", "text": "a"}, IMAGE]}],
            [
                TOOL,
                {"role": "assistant", "content": BRIDGE},
                {"role": "user", "content": [{"type": "text", "text": "a"}, IMAGE]},
            ],
        ),
        (
            [{"role": "assistant", "content": "hi"}, {"role": "system", "content": "s"}],
            [{"role": "assistant", "content": "hi"}, {"role": "user", "content": "[system message]\ns"}],
        ),
        # An empty message after the results adds nothing to them.
        ([TOOL, {"role": "user", "content": ""}], [TOOL]),
        # Orders Mistral takes are left as they are.
        (
            [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}, CALLS, TOOL],
            [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}, CALLS, TOOL],
        ),
    ],
)  # fmt: skip
def test_messages_are_put_in_an_order_mistral_takes(
    messages: list[dict[str, Any]], expected: list[dict[str, Any]]
) -> None:
    assert mistral_order(messages) == expected
    roles = [m["role"] for m in messages]
    assert needs_mistral_order(roles) == (expected != messages)


def test_only_a_last_assistant_message_of_text_is_marked_as_a_prefix() -> None:
    text = {"role": "assistant", "content": "{"}
    assert prefixed([text]) == [{**text, "prefix": True}]
    assert prefixed([text, TOOL]) == [text, TOOL]
    assert prefixed([CALLS]) == [CALLS]
    assert needs_mistral_order(["user", "assistant"])


def a2o(
    messages: list[dict[str, Any]],
    caps: ModelCapabilities = MISTRAL,
    history: TranslatedHistory | None = None,
) -> list[dict[str, Any]]:
    """The OpenAI messages, decoded and raw (through `history` as a
    conversation's turn) alike."""
    outs = []
    for sent in (messages, msgspec.Raw(msgspec.json.encode(messages))):
        raw = isinstance(sent, msgspec.Raw)
        out, _ = anthropic_to_openai_request(
            {"model": "claude", "max_tokens": 10, "messages": sent},
            model="devstral", caps=caps, max_output_tokens=None, stream=False,
            history=history if raw else None, conversation=1 if raw else None,
        )  # fmt: skip
        outs.append(msgspec.json.decode(msgspec.json.encode(out))["messages"])
    assert outs[0] == outs[1]
    return list(outs[0])


_IDS = st.sampled_from(["toolu_1", "toolu_2", "toolu_3"])
_BESIDE = st.one_of(
    st.builds(lambda t: {"type": "text", "text": t}, st.sampled_from(["<reminder>", "stop"])),
    st.just(
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA"}}
    ),
)
_RESULT = st.builds(
    lambda i, images: {"type": "tool_result", "tool_use_id": i,
                       "content": [{"type": "text", "text": f"R{i}"}, *images]},
    _IDS, st.lists(_BESIDE.filter(lambda b: b["type"] == "image"), max_size=1),
)  # fmt: skip
_MESSAGE = st.one_of(
    st.builds(lambda t: {"role": "user", "content": t}, st.sampled_from(["u1", "u2"])),
    st.builds(lambda t: {"role": "assistant", "content": t}, st.sampled_from(["x1", "{"])),
    st.builds(lambda t: {"role": "system", "content": t}, st.sampled_from(["s1", "s2"])),
    st.lists(_IDS, min_size=1, max_size=2, unique=True).map(
        lambda ids: {"role": "assistant",
                     "content": [{"type": "tool_use", "id": i, "name": "R", "input": {}} for i in ids]}
    ),
    st.tuples(st.lists(_RESULT, min_size=1, max_size=2), st.lists(_BESIDE, max_size=2)).map(
        lambda rb: {"role": "user", "content": [*rb[0], *rb[1]]}
    ),
)  # fmt: skip


@given(st.lists(_MESSAGE, min_size=1, max_size=8), st.lists(_MESSAGE, max_size=3))
@settings(max_examples=300)
def test_any_anthropic_history_reaches_mistral_in_an_order_it_takes(
    history: list[dict[str, Any]], more: list[dict[str, Any]]
) -> None:
    # Twice, as a conversation's turn and the one after it.
    memo = TranslatedHistory()
    for turn in (history, history + more):
        if all(m["role"] != "user" for m in turn):
            with pytest.raises(InvalidRequestError):
                a2o(turn, history=memo)
            continue
        messages = a2o(turn, history=memo)
        # Calls the history ends with are the client's to answer (tool_pairs).
        *_, last = [m for m in turn if m["role"] != "system"]
        if last["role"] == "user" or isinstance(last["content"], str):
            assert mistral_refusal(messages) is None, messages
            assert openai_refusal({"messages": messages}) is None
        else:
            assert mistral_refusal(messages, serving=False) is None, messages
        said = str(messages)
        for m in turn:
            for block in m["content"] if isinstance(m["content"], list) else [m]:
                for inner in (
                    block.get("content") if block.get("type") == "tool_result" else [block]
                ):
                    if isinstance(inner.get("text", inner.get("content")), str):
                        assert inner.get("text", inner.get("content")) in said
