"""What an Anthropic request loses before an Anthropic upstream: unsigned thinking, cache_control."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from coderouterd.translate.anthropic_request import (
    fold_system_messages,
    loop_lost_thinking,
    may_hold_unsigned_thinking,
    strip_cache_control,
    without_effort,
    without_thinking,
    without_unsigned_thinking,
)


@pytest.mark.parametrize(
    ("raw", "found"),
    [
        (b'[{"type":"thinking","thinking":"t","signature":""}]', True),
        (b'[{"type": "thinking", "signature": ""}]', True),
        (b'[{"type": "thinking",\n  "signature" :\n    ""\n}]', True),
        (b'[{"type":"thinking","thinking":"t","signature":"EqQBCkgIARAB"}]', False),
        (b'[{"type": "thinking", "thinking": "t", "signature": "EqQB"}]', False),
        (b'[{"type":"thinking","signature":"x"},{"signature":""}]', True),
        # No signature key at all, or a null one.
        (b'[{"type":"thinking","thinking":"t"}]', True),
        (b'[{"type": "thinking", "thinking": "t", "signature": null}]', True),
        (
            b'[{"type":"thinking","thinking":"a","signature":"s1"},'
            b'{"type":"thinking","thinking":"b"}]',
            True,
        ),
        # A tool input's own "signature" key does not stand for the missing one.
        (
            b'[{"type":"thinking","thinking":"a"},'
            b'{"type":"tool_use","id":"t","name":"sign","input":{"signature":"abc"}}]',
            True,
        ),
        (b'[{"type":"tool_use","id":"t","name":"n","input":{"thinking":1,"signature":"a"}}]', True),
        # Text with escaped quotes and backslashes, then its signature.
        (b'[{"type":"thinking","thinking":"say \\"hi\\" \\\\","signature":"s"}]', False),
        (b'[{"type":"thinking","thinking":"say \\"hi\\" \\\\"}]', True),
        # Another key order is not read: a decode decides.
        (b'[{"type":"thinking","signature":"s","thinking":"t"}]', True),
        # Inside a string the quotes are escaped: not a key.
        (b'[{"type":"text","text":"{\\"signature\\":\\"\\"}"}]', False),
        (b'[{"type":"text","text":"no thinking here"}]', False),
        (b'[{"type":"redacted_thinking","data":"abc"}]', False),
        (b"[]", False),
    ],
)
def test_the_byte_scan_finds_every_history_that_may_hold_unsigned_thinking(
    raw: bytes, found: bool
) -> None:
    assert may_hold_unsigned_thinking(raw) is found


def cleaned(messages: list[Any]) -> list[Any] | None:
    out = without_unsigned_thinking(msgspec.Raw(json.dumps(messages).encode()))
    return None if out is None else json.loads(bytes(out))


SIGNED = {"type": "thinking", "thinking": "real", "signature": "sig"}


@pytest.mark.parametrize(
    "unsigned",
    [
        {"type": "thinking", "thinking": "local", "signature": ""},
        {"type": "thinking", "thinking": "local", "signature": None},
        {"type": "thinking", "thinking": "local"},
    ],
)
def test_unsigned_thinking_is_removed_whatever_shape_its_missing_signature_takes(
    unsigned: dict[str, Any],
) -> None:
    history = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [unsigned, SIGNED, {"type": "text", "text": "a"}]},
    ]
    assert cleaned(history) == [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [SIGNED, {"type": "text", "text": "a"}]},
    ]


def test_an_assistant_message_left_empty_is_removed_rather_than_sent_with_no_content() -> None:
    only_thinking = {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm"}]}
    history = [
        {"role": "user", "content": "q"},
        only_thinking,
        {"role": "user", "content": "again"},
    ]
    # Anthropic joins the two user turns; an empty content would be a 400.
    assert cleaned(history) == [
        {"role": "user", "content": "q"},
        {"role": "user", "content": "again"},
    ]


def test_signed_and_redacted_thinking_survive_the_rewrite_exactly() -> None:
    # Values, not bytes, are what Anthropic checks: escapes and non-ASCII included.
    signed = {"type": "thinking", "thinking": 'caf\u00e9 "q" \\ \n', "signature": "Eq+/=="}
    redacted = {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafP+=="}
    unsigned = {"type": "thinking", "thinking": "local", "signature": ""}
    history = [
        {"role": "user", "content": "q"},
        {
            "role": "assistant",
            "content": [signed, redacted, unsigned, {"type": "text", "text": "a"}],
        },
    ]
    assert cleaned(history) == [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [signed, redacted, {"type": "text", "text": "a"}]},
    ]


def test_a_history_whose_thinking_is_all_signed_stays_bytes() -> None:
    history = [{"role": "assistant", "content": [SIGNED, {"type": "text", "text": "a"}]}]
    assert cleaned(history) is None
    # A false alarm of the scan (a tool input with a "thinking" key) decodes but changes nothing.
    tool = {"type": "tool_use", "id": "t", "name": "f", "input": {"thinking": "x"}}
    assert cleaned([{"role": "assistant", "content": [SIGNED, tool]}]) is None


UNSIGNED = {"type": "thinking", "thinking": "local", "signature": ""}
CALL = {"type": "tool_use", "id": "t1", "name": "f", "input": {}}
RESULT = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1"}]}
ASK = {"role": "user", "content": "q"}


@pytest.mark.parametrize(
    ("history", "lost"),
    [
        # The loop in progress: its assistant message would start with the call.
        ([ASK, {"role": "assistant", "content": [UNSIGNED, CALL]}, RESULT], True),
        # Claude Code appends a reminder to its tool results: still the loop.
        (
            [
                ASK,
                {"role": "assistant", "content": [UNSIGNED, CALL]},
                {"role": "user", "content": [*RESULT["content"], {"type": "text", "text": "r"}]},
            ],
            True,
        ),
        # Only the message being answered counts: an earlier step of the loop
        # may lose its thinking, the last (from Anthropic) has it.
        (
            [
                ASK,
                {"role": "assistant", "content": [UNSIGNED, CALL]},
                RESULT,
                {"role": "assistant", "content": [SIGNED, CALL]},
                RESULT,
            ],
            False,
        ),
        (
            [
                ASK,
                {"role": "assistant", "content": [SIGNED, CALL]},
                RESULT,
                {"role": "assistant", "content": [UNSIGNED, CALL]},
                RESULT,
            ],
            True,
        ),
        # Signed thinking follows the unsigned block, or comes first.
        ([ASK, {"role": "assistant", "content": [UNSIGNED, SIGNED, CALL]}, RESULT], False),
        ([ASK, {"role": "assistant", "content": [SIGNED, UNSIGNED, CALL]}, RESULT], False),
        # A finished turn: the user spoke since, or nothing answers a tool.
        ([ASK, {"role": "assistant", "content": [UNSIGNED, CALL]}, RESULT, ASK], False),
        ([ASK, {"role": "assistant", "content": [UNSIGNED, {"type": "text", "text": "a"}]}], False),
        ([RESULT], False),
        ([], False),
    ],
)
def test_a_tool_loop_loses_its_thinking_only_where_the_message_answered_started_with_it(
    history: list[Any], lost: bool
) -> None:
    assert loop_lost_thinking(msgspec.Raw(json.dumps(history).encode())) is lost


def test_thinking_goes_off_with_the_edits_that_need_it() -> None:
    clear = {"type": "clear_thinking_20251015", "keep": "all"}
    tools = {"type": "clear_tool_uses_20250919"}
    fields = raw_fields(
        {"thinking": {"type": "adaptive"}, "context_management": {"edits": [clear, tools]}}
    )
    assert [d.field for d in without_thinking(fields)] == ["thinking", "context_management.edits"]
    assert {k: json.loads(bytes(v)) for k, v in fields.items()} == {
        "context_management": {"edits": [tools]}
    }
    # Nothing left of context_management: it goes whole.
    fields = raw_fields({"thinking": {"type": "enabled"}, "context_management": {"edits": [clear]}})
    without_thinking(fields)
    assert fields == {}
    # Off already: nothing to do.
    fields = raw_fields(
        {"thinking": {"type": "disabled"}, "context_management": {"edits": [clear]}}
    )
    assert without_thinking(fields) == [] and set(fields) == {"thinking", "context_management"}


def raw_fields(body: dict[str, Any]) -> dict[str, msgspec.Raw]:
    return {k: msgspec.Raw(json.dumps(v).encode()) for k, v in body.items()}


def test_strip_cache_control_removes_every_marker_and_nothing_else() -> None:
    marker = {"type": "ephemeral"}
    schema = {"type": "object", "properties": {"cache_control": {"type": "string"}}}
    body = {
        "cache_control": marker,
        "system": [{"type": "text", "text": "s", "cache_control": marker}],
        "tools": [{"name": "f", "input_schema": schema, "cache_control": marker}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t",
                        "content": [{"type": "text", "text": "r", "cache_control": marker}],
                        "cache_control": marker,
                    },
                    {"type": "text", "text": "u", "cache_control": marker},
                ],
            },
            {"role": "assistant", "content": "plain"},
        ],
    }
    fields = raw_fields(body)
    assert strip_cache_control(fields) is True
    out = {k: json.loads(bytes(v)) for k, v in fields.items()}
    assert "cache_control" not in out
    assert out["system"] == [{"type": "text", "text": "s"}]
    # A tool parameter named cache_control is part of the schema, not a marker.
    assert out["tools"] == [{"name": "f", "input_schema": schema}]
    assert out["messages"][0]["content"] == [
        {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "r"}]},
        {"type": "text", "text": "u"},
    ]


def test_strip_cache_control_leaves_a_body_without_markers_as_bytes() -> None:
    fields = raw_fields({"system": "s", "messages": [{"role": "user", "content": "u"}]})
    before = dict(fields)
    assert strip_cache_control(fields) is False
    assert all(fields[k] is before[k] for k in before)


def test_system_messages_inside_messages_are_folded_into_the_top_level_system() -> None:
    cached = {"type": "text", "text": "rules", "cache_control": {"type": "ephemeral"}}
    body = {
        "system": "You are a coder.",
        "messages": [
            {"role": "user", "content": "q"},
            {"role": "system", "content": "Plan mode is on."},
            {"role": "assistant", "content": "a"},
            {"role": "system", "content": [cached]},
            {"role": "user", "content": "more"},
        ],
    }
    fields = raw_fields(body)
    assert fold_system_messages(fields) is True
    assert json.loads(bytes(fields["system"])) == [
        {"type": "text", "text": "You are a coder."},
        {"type": "text", "text": "Plan mode is on."},
        cached,
    ]
    assert [m["role"] for m in json.loads(bytes(fields["messages"]))] == [
        "user",
        "assistant",
        "user",
    ]


def test_a_history_without_system_messages_is_not_touched() -> None:
    # "system" as text is not a role.
    fields = raw_fields({"messages": [{"role": "user", "content": 'the "system" prompt'}]})
    before = dict(fields)
    assert fold_system_messages(fields) is False
    assert fields == before


@pytest.mark.parametrize(
    ("output_config", "left"),
    [
        ({"effort": "high"}, None),
        ({"effort": "low", "format": {"type": "json_schema"}}, {"format": {"type": "json_schema"}}),
    ],
)
def test_effort_is_removed_and_output_config_with_it_once_empty(
    output_config: dict[str, Any], left: dict[str, Any] | None
) -> None:
    fields = raw_fields({"thinking": {"type": "disabled"}, "output_config": output_config})
    assert without_effort(fields) is True
    assert json.loads(bytes(fields["thinking"])) == {"type": "disabled"}
    if left is None:
        assert "output_config" not in fields
    else:
        assert json.loads(bytes(fields["output_config"])) == left


@pytest.mark.parametrize("body", [{}, {"output_config": {"format": {"type": "json_schema"}}}])
def test_a_request_without_an_effort_is_not_touched(body: dict[str, Any]) -> None:
    fields = raw_fields(body)
    before = dict(fields)
    assert without_effort(fields) is False
    assert fields == before
