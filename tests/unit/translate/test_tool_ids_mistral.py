"""Tool call ids towards a Mistral-family backend: 9 letters or digits.

mistral_common (vLLM's mistral tokenizer mode, Mistral's API) and Mistral's
chat templates refuse any other id with a 400. An Anthropic client's history
holds the `toolu_<request id>_<n>` ids the daemon gave its calls, so under
the capability `tool_id_format: mistral` every id is mapped, from a hash of
it, the same way for a call and its result, in every turn.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
import pytest

from coderouterd.config.model import CapabilityFields
from coderouterd.translate.capabilities import ModelCapabilities, load_registry, parse_rules
from coderouterd.translate.memo_a2o import TranslatedHistory
from coderouterd.translate.request_a2o import anthropic_to_openai_request
from coderouterd.translate.tools_a2o import tool_id
from tests.unit.translate.test_request_a2o import translate

MISTRAL = ModelCapabilities(tool_id_format="mistral")
MISTRAL_ID = re.compile(r"[a-zA-Z0-9]{9}")
IDS = [
    "toolu_req_3e1b51ce2af1000000000001_1",
    "toolu_req_3e1b51ce2af1000000000001_2",
    "toolu_01A09q90qw90lq917835lq9",
    "call_0",
    "functions.Bash:0",
    "x",
    "ид-вызова",
]


def use(call_id: str, path: str = "/a") -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": "Read", "input": {"file_path": path}}


def result(call_id: str, text: str = "ok") -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": call_id, "content": text}


def loop(*ids: str) -> list[dict[str, Any]]:
    """A tool loop as Claude Code sends it: each call answered in the next user turn."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": "read them"}]
    for i in ids:
        messages.append({"role": "assistant", "content": [use(i)]})
        messages.append({"role": "user", "content": [result(i)]})
    return messages


def sent_ids(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """("call" | "result", id) of every call and tool message, in order."""
    out: list[tuple[str, str]] = []
    for m in messages:
        out += [("call", c["id"]) for c in m.get("tool_calls") or []]
        if m["role"] == "tool":
            out.append(("result", m["tool_call_id"]))
    return out


def test_every_id_becomes_nine_letters_or_digits_the_same_each_time() -> None:
    mapped = [tool_id(i, MISTRAL) for i in IDS]
    assert all(MISTRAL_ID.fullmatch(m) for m in mapped), mapped
    assert mapped == [tool_id(i, MISTRAL) for i in IDS]
    assert len(set(mapped)) == len(IDS)


def test_an_id_the_backend_takes_is_kept_and_other_backends_get_ids_as_they_came() -> None:
    assert tool_id("Ab3dE6gH9", MISTRAL) == "Ab3dE6gH9"
    assert [tool_id(i, ModelCapabilities()) for i in IDS] == IDS


def test_a_call_and_its_result_get_the_same_id() -> None:
    ids = IDS[:3]
    # `translate` checks the decoded, raw, memoised and per-conversation ways agree.
    out, _ = translate({"messages": loop(*ids)}, caps=MISTRAL)
    sent = sent_ids(out["messages"])
    assert [kind for kind, _ in sent] == ["call", "result"] * 3
    assert all(MISTRAL_ID.fullmatch(i) for _, i in sent), sent
    assert [i for _, i in sent[::2]] == [i for _, i in sent[1::2]]
    # Nothing was mended as unpaired: each result still answers its own call.
    assert [m["content"] for m in out["messages"] if m["role"] == "tool"] == ["ok"] * 3


def test_parallel_calls_and_their_results_pair_up() -> None:
    messages = [
        {"role": "user", "content": "read both"},
        {"role": "assistant", "content": [use(IDS[0], "/a"), use(IDS[1], "/b")]},
        {"role": "user", "content": [result(IDS[1], "b"), result(IDS[0], "a")]},
    ]
    out, _ = translate({"messages": messages}, caps=MISTRAL)
    calls = {c["function"]["arguments"]: c["id"] for c in out["messages"][1]["tool_calls"]}
    answers = {m["content"]: m["tool_call_id"] for m in out["messages"][2:]}
    assert answers == {"a": calls['{"file_path":"/a"}'], "b": calls['{"file_path":"/b"}']}


def test_each_turn_of_a_conversation_sends_the_ids_of_the_turns_before_alike() -> None:
    history = TranslatedHistory()
    turns = [loop(*IDS[:n]) for n in (1, 2, 3)]
    sent = []
    for messages in turns:
        body = {
            "model": "m",
            "max_tokens": 5,
            "messages": msgspec.Raw(msgspec.json.encode(messages)),
        }
        out, _ = anthropic_to_openai_request(
            body, model="devstral", caps=MISTRAL, max_output_tokens=None, stream=False,
            history=history, conversation="c1",
        )  # fmt: skip
        sent.append(sent_ids(msgspec.json.decode(msgspec.json.encode(out["messages"]))))
    # Each turn starts with what the one before it sent, id for id.
    assert sent[1][: len(sent[0])] == sent[0]
    assert sent[2][: len(sent[1])] == sent[1]
    assert all(MISTRAL_ID.fullmatch(i) for _, i in sent[2])


# where the capability comes from


@pytest.mark.parametrize(
    "model",
    [
        "mistralai/Devstral-Small-2507",
        "devstral:24b",
        "mistralai/Mistral-Small-3.2-24B-Instruct-2506",
        "mistral-large-latest",
        "codestral-latest",
        "magistral-medium-latest",
        "ministral-8b-latest",
        "open-mixtral-8x22b",
        "pixtral-12b-2409",
        "hf.co/unsloth/Devstral-Small-2507-GGUF:Q4_K_M",
    ],
)
def test_the_bundled_rules_give_mistral_family_models_mistral_ids(model: str) -> None:
    assert load_registry(None).lookup("openai_compat", model).tool_id_format == "mistral"


@pytest.mark.parametrize(
    ("kind", "model"),
    [("openai_compat", "qwen3:32b"), ("openai_compat", "gpt-oss:20b"), ("anthropic", "devstral")],
)
def test_other_models_get_ids_as_they_came(kind: str, model: str) -> None:
    assert load_registry(None).lookup(kind, model).tool_id_format is None


def test_a_provider_or_a_user_rule_sets_it_either_way() -> None:
    registry = load_registry(None)
    own_on = CapabilityFields(tool_id_format="mistral")
    own_off = CapabilityFields(tool_id_format=None)
    assert registry.lookup("openai_compat", "my-finetune", own_on).tool_id_format == "mistral"
    assert registry.lookup("openai_compat", "devstral", own_off).tool_id_format is None
    rules = parse_rules(
        '- kind: openai_compat\n  model: "my-*"\n  tool_id_format: mistral\n', file="caps.yaml"
    )
    assert rules[0].sets == {"tool_id_format": "mistral"}
    assert msgspec.convert({"tool_id_format": "mistral"}, CapabilityFields) == own_on
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"tool_id_format": "openai"}, CapabilityFields)
