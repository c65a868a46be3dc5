"""OpenAI request fields Claude refuses or has no field for, translated into
what it takes: sampling, a prefill with reasoning, tool schemas without a
type, `response_format` and inline files (tables)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from coderouterd.translate.o2a_response_format import ONE_OBJECT
from coderouterd.translate.request_o2a import openai_to_anthropic_request
from coderouterd.translate.types import Degradation

USER_HI = {"role": "user", "content": "hi"}
PDF_B64 = base64.b64encode(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n").decode()


def translate(body: dict[str, Any], **kw: Any) -> tuple[dict[str, Any], list[Degradation]]:
    return openai_to_anthropic_request(
        {"model": "gpt-4o", **body}, model="claude", max_output_tokens=None, **kw
    )


def fields(degradations: list[Degradation]) -> list[str]:
    return [d.field for d in degradations]


SAMPLING = [
    # (request, sampling sent, fields recorded)
    ({"temperature": 0.3, "top_p": 0.8}, {"temperature": 0.3}, ["top_p"]),
    ({"temperature": 1.7, "top_p": 0.8}, {"temperature": 1.0}, ["temperature", "top_p"]),
    ({"top_p": 0.8}, {"top_p": 0.8}, []),
    ({"temperature": 0.3}, {"temperature": 0.3}, []),
    # With thinking, temperature 1 and top_p of at least 0.95 only.
    ({"reasoning_effort": "low", "temperature": 1, "top_p": 0.95}, {"temperature": 1}, ["top_p"]),
    (
        {"reasoning_effort": "low", "temperature": 0.2, "top_p": 0.97},
        {"top_p": 0.97},
        ["temperature"],
    ),
]


@pytest.mark.parametrize(("extra", "sent", "recorded"), SAMPLING)
def test_temperature_and_top_p_are_never_both_sent(
    extra: dict[str, Any], sent: dict[str, Any], recorded: list[str]
) -> None:
    out, degradations = translate({"messages": [USER_HI], **extra})
    assert {k: out[k] for k in ("temperature", "top_p") if k in out} == sent
    assert fields(degradations) == recorded


CALL = {"id": "c1", "type": "function", "function": {"name": "ls", "arguments": "{}"}}
PREFILLS = [
    # (messages, signed_thinking)
    ([USER_HI, {"role": "assistant", "content": "Autumn wind"}], True),
    ([USER_HI, {"role": "assistant", "content": "Autumn wind"}], False),
    ([USER_HI, {"role": "assistant", "content": "I'll look.", "tool_calls": [CALL]}], True),
]


@pytest.mark.parametrize(("messages", "signed"), PREFILLS)
def test_a_prefill_goes_without_thinking(messages: list[Any], *, signed: bool) -> None:
    body = {"messages": messages, "reasoning_effort": "high", "temperature": 0.5}
    out, degradations = translate(body, signed_thinking=signed)
    assert "thinking" not in out
    # As if no reasoning had been asked for: no budget, the client's temperature.
    assert (out["max_tokens"], out["temperature"]) == (4096, 0.5)
    assert fields(degradations) == ["reasoning_effort"]


def test_a_conversation_ending_with_the_user_keeps_its_thinking() -> None:
    messages = [USER_HI, {"role": "assistant", "content": "hello"}, USER_HI]
    out, _ = translate({"messages": messages, "reasoning_effort": "low"}, signed_thinking=True)
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 2048}


SCHEMAS = [
    ({}, {"type": "object", "properties": {}}),
    ({"required": []}, {"type": "object", "properties": {}, "required": []}),
    (
        {"properties": {"a": {"type": "string"}}},
        {"type": "object", "properties": {"a": {"type": "string"}}},
    ),
    # A schema that says its type is the client's to get right.
    ({"type": "object"}, {"type": "object"}),
]


@pytest.mark.parametrize(("parameters", "input_schema"), SCHEMAS)
def test_a_tool_schema_without_a_type_is_an_object(
    parameters: dict[str, Any], input_schema: dict[str, Any]
) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": parameters}}]
    out, degradations = translate({"messages": [USER_HI], "tools": tools})
    assert out["tools"][0]["input_schema"] == input_schema
    assert degradations == []


SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
FORMATS = [
    # (response_format, what the system prompt ends with, or None for no system)
    ({"type": "text"}, None),
    ({"type": "json_object"}, ONE_OBJECT),
    (
        {"type": "json_schema", "json_schema": {"name": "N", "schema": SCHEMA, "strict": True}},
        f"{ONE_OBJECT}\n\nThe object must conform to this JSON Schema (N):\n{json.dumps(SCHEMA, separators=(',', ':'))}",
    ),
    (
        {"type": "json_schema", "json_schema": {"name": "N", "description": "a count"}},
        f"{ONE_OBJECT}\n\nWhat the object is for: a count",
    ),
    ({"type": "grammar", "grammar": "root ::= x"}, None),
]


@pytest.mark.parametrize(("response_format", "system"), FORMATS)
def test_response_format_is_asked_for_in_the_system_prompt(
    response_format: dict[str, Any], system: str | None
) -> None:
    out, degradations = translate({"messages": [USER_HI], "response_format": response_format})
    assert out.get("system") == system
    assert "response_format" not in out
    recorded = [] if response_format["type"] == "text" else ["response_format"]
    assert fields(degradations) == recorded


def test_the_format_instruction_follows_marked_system_blocks_as_a_block_of_its_own() -> None:
    marked = {"type": "text", "text": "rules", "cache_control": {"type": "ephemeral"}}
    body = {
        "messages": [{"role": "system", "content": [marked]}, USER_HI],
        "response_format": {"type": "json_object"},
    }
    out, _ = translate(body)
    assert out["system"] == [marked, {"type": "text", "text": ONE_OBJECT}]


def file_part(file_data: str) -> dict[str, Any]:
    return {"type": "file", "file": {"filename": "a.pdf", "file_data": file_data}}


DOCUMENT = {
    "type": "document",
    "source": {"type": "base64", "media_type": "application/pdf", "data": PDF_B64},
}
FILES = [
    # (file part, block sent or None)
    (file_part(f"data:application/pdf;base64,{PDF_B64}"), DOCUMENT),
    (file_part(f"data:application/octet-stream;base64,{PDF_B64}"), DOCUMENT),
    (file_part(PDF_B64), DOCUMENT),
    (file_part("data:text/plain;base64,aGVsbG8="), None),
    (file_part("data:application/pdf;base64,not base64!"), None),
    ({"type": "file", "file": {"file_id": "file-abc"}}, None),
]


@pytest.mark.parametrize(("part", "block"), FILES)
def test_an_inline_pdf_is_a_document_and_any_other_file_is_left_out(
    part: dict[str, Any], block: dict[str, Any] | None
) -> None:
    content = [{"type": "text", "text": "read it"}, part]
    out, degradations = translate({"messages": [{"role": "user", "content": content}]})
    expected = [{"type": "text", "text": "read it"}] + ([block] if block else [])
    assert out["messages"][0]["content"] == expected
    assert fields(degradations) == ([] if block else ["content.file"])


def test_a_tool_result_carries_its_pdf() -> None:
    messages = [
        USER_HI,
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {
            "role": "tool",
            "tool_call_id": "c1",
            "content": [file_part(f"data:application/pdf;base64,{PDF_B64}")],
        },
    ]
    out, _ = translate({"messages": messages})
    [result] = out["messages"][-1]["content"]
    assert result["content"] == [DOCUMENT]
