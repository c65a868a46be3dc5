from __future__ import annotations

import json
import zlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict

from coderouterd.state.assemble import Assembled, ToolCallOut, assemble
from coderouterd.state.replay import (
    SAFE_HEADERS,
    ResponseCapture,
    compress,
    decompress,
    redact_headers,
)
from coderouterd.state.replay_diff import Change, diff, render_diff
from coderouterd.wire.sse import encode_data, encode_event
from tests.fakes.transcripts import (
    anthropic_error_body,
    anthropic_message,
    anthropic_stream_error,
    anthropic_text_stream,
    openai_completion,
    openai_text_stream,
)

Event = tuple[str, dict[str, Any]]


def anthropic_sse(events: list[Event]) -> bytes:
    return b"".join(encode_event(name, json.dumps(data).encode()) for name, data in events)


def openai_sse(chunks: list[dict[str, Any]], *, done: bool = True) -> bytes:
    body = b"".join(encode_data(json.dumps(chunk).encode()) for chunk in chunks)
    return body + (b"data: [DONE]\n\n" if done else b"")


def block_start(index: int, block: dict[str, Any]) -> Event:
    return (
        "content_block_start",
        {"type": "content_block_start", "index": index, "content_block": block},
    )


def delta(index: int, body: dict[str, Any]) -> Event:
    return ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": body})


def block_stop(index: int) -> Event:
    return ("content_block_stop", {"type": "content_block_stop", "index": index})


# What Claude sends for "think, say something, then call two tools".
CLAUDE_TOOL_STREAM: list[Event] = [
    (
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": "msg_01",
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": "claude-sonnet-4-5",
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {
                    "input_tokens": 472,
                    "output_tokens": 2,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 1024,
                    "service_tier": "standard",
                },
            },
        },
    ),
    ("ping", {"type": "ping"}),
    block_start(0, {"type": "thinking", "thinking": "", "signature": ""}),
    delta(0, {"type": "thinking_delta", "thinking": "The user wants the file"}),
    delta(0, {"type": "thinking_delta", "thinking": " listed and read."}),
    delta(0, {"type": "signature_delta", "signature": "EqQBCkYIBRgCKkA"}),
    block_stop(0),
    block_start(1, {"type": "text", "text": ""}),
    delta(1, {"type": "text_delta", "text": "I'll look at"}),
    delta(1, {"type": "text_delta", "text": " the directory.\nThen the file."}),
    block_stop(1),
    block_start(2, {"type": "tool_use", "id": "toolu_01", "name": "Bash", "input": {}}),
    delta(2, {"type": "input_json_delta", "partial_json": ""}),
    delta(2, {"type": "input_json_delta", "partial_json": '{"comm'}),
    delta(2, {"type": "input_json_delta", "partial_json": 'and": "ls -la'}),
    delta(2, {"type": "input_json_delta", "partial_json": ' /tmp"}'}),
    block_stop(2),
    block_start(3, {"type": "tool_use", "id": "toolu_02", "name": "Read", "input": {}}),
    delta(3, {"type": "input_json_delta", "partial_json": '{"file_path": "/src/a.py", '}),
    delta(3, {"type": "input_json_delta", "partial_json": '"limit": 40}'}),
    block_stop(3),
    (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"output_tokens": 89},
        },
    ),
    ("message_stop", {"type": "message_stop"}),
]

CLAUDE_EXPECTED = Assembled(
    text="I'll look at the directory.\nThen the file.",
    thinking="The user wants the file listed and read.",
    tool_calls=[
        ToolCallOut("Bash", {"command": "ls -la /tmp"}),
        ToolCallOut("Read", {"file_path": "/src/a.py", "limit": 40}),
    ],
    stop_reason="tool_use",
    usage={
        "input_tokens": 472,
        "output_tokens": 89,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 1024,
    },
    complete=True,
)


def chunk(delta_: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "deepseek-chat",
        "choices": [{"index": 0, "delta": delta_, "logprobs": None, "finish_reason": finish}],
        **extra,
    }


def tool_fragment(index: int | None, **fields: Any) -> dict[str, Any]:
    fragment: dict[str, Any] = {"function": {}}
    if index is not None:
        fragment["index"] = index
    for key in ("id", "type"):
        if key in fields:
            fragment[key] = fields.pop(key)
    fragment["function"] = fields
    return chunk({"tool_calls": [fragment]})


# A DeepSeek-style stream: reasoning, text, two tool calls in fragments.
OPENAI_TOOL_CHUNKS: list[dict[str, Any]] = [
    chunk({"role": "assistant", "content": None, "reasoning_content": ""}),
    chunk({"reasoning_content": "Need the listing"}),
    chunk({"reasoning_content": " first."}),
    chunk({"content": "Looking"}),
    chunk({"content": " now."}),
    tool_fragment(0, id="call_a", type="function", name="Bash", arguments=""),
    tool_fragment(0, arguments='{"command":'),
    tool_fragment(0, arguments=' "ls"}'),
    tool_fragment(1, id="call_b", type="function", name="Read", arguments='{"file_pa'),
    tool_fragment(1, arguments='th": "/src/a.py"}'),
    chunk({}, "tool_calls"),
    {
        **chunk({}),
        "choices": [],
        "usage": {
            "prompt_tokens": 900,
            "completion_tokens": 61,
            "total_tokens": 961,
            "prompt_tokens_details": {"cached_tokens": 640},
        },
    },
]

OPENAI_EXPECTED = Assembled(
    text="Looking now.",
    thinking="Need the listing first.",
    tool_calls=[
        ToolCallOut("Bash", {"command": "ls"}),
        ToolCallOut("Read", {"file_path": "/src/a.py"}),
    ],
    stop_reason="tool_use",
    usage={
        "input_tokens": 260,
        "cache_read_input_tokens": 640,
        "cache_creation_input_tokens": 0,
        "output_tokens": 61,
    },
    complete=True,
)


# --- redaction ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kept"),
    [
        ("anthropic-version", True),
        ("Anthropic-Beta", True),
        ("content-type", True),
        ("User-Agent", True),
        ("x-app", True),
        ("x-coderouter-mode", True),
        ("x-request-id", True),
        ("x-claude-code-session-id", True),
        ("x-api-key", False),
        ("X-Api-Key", False),
        ("authorization", False),
        ("Proxy-Authorization", False),
        ("cookie", False),
        ("set-cookie", False),
        ("x-auth-token", False),
        ("x-goog-api-key", False),
        ("openai-organization", False),
        ("x-secret", False),
        ("x-password", False),
        ("host", False),
        ("x-forwarded-for", False),
        ("x-stainless-os", False),
    ],
)
def test_only_safe_headers_survive_redaction(name: str, kept: bool) -> None:
    redacted = redact_headers({name: "value-123"})
    assert redacted == ({name.lower(): "value-123"} if kept else {})


def test_redaction_joins_repeated_headers() -> None:
    headers = CIMultiDict(
        [("anthropic-beta", "a-2025"), ("Anthropic-Beta", "b-2025"), ("x-api-key", "sk-1")]
    )
    assert redact_headers(headers) == {"anthropic-beta": "a-2025, b-2025"}


def test_redaction_refuses_secret_names_even_if_allow_listed() -> None:
    allowed = SAFE_HEADERS | {"x-session-token", "x-keyring", "x-oauth-scope"}
    headers = {"x-session-token": "t", "x-keyring": "k", "x-oauth-scope": "s", "x-app": "cli"}
    assert redact_headers(headers, allowed) == {"x-app": "cli"}


# --- compression and capture --------------------------------------------------


@given(st.binary(max_size=4096))
def test_compression_round_trips_any_bytes(data: bytes) -> None:
    assert decompress(compress(data)) == data


def test_small_blobs_are_stored_and_zlib_from_before_still_reads() -> None:
    assert compress(b'{"a":1}') == b'\x00{"a":1}'
    assert decompress(zlib.compress(b"written before small blobs were stored")) == (
        b"written before small blobs were stored"
    )
    assert decompress(compress(b"")) == b""


def test_compression_shrinks_repetitive_streams() -> None:
    body = anthropic_sse(CLAUDE_TOOL_STREAM) * 20
    assert len(compress(body)) < len(body) / 5


def test_capture_keeps_everything_under_the_limit() -> None:
    capture = ResponseCapture(10)
    capture.add(b"abcd")
    capture.add(b"efghij")
    assert capture.data == b"abcdefghij"
    assert not capture.truncated


def test_capture_stops_at_the_limit_and_counts_the_rest() -> None:
    capture = ResponseCapture(10)
    for piece in (b"abcd", b"efgh", b"ijkl", b"mnop"):
        capture.add(piece)
    assert capture.data == b"abcdefghij"
    assert capture.truncated
    assert capture.seen == 16


def test_a_zero_limit_capture_keeps_nothing() -> None:
    capture = ResponseCapture(0)
    capture.add(b"x")
    capture.add(b"")
    assert capture.data == b""
    assert capture.truncated


# --- assembling Anthropic -----------------------------------------------------


def test_anthropic_stream_with_thinking_text_and_split_tool_calls() -> None:
    assert assemble("anthropic", True, anthropic_sse(CLAUDE_TOOL_STREAM)) == CLAUDE_EXPECTED


def test_anthropic_stream_with_crlf_line_endings() -> None:
    body = anthropic_sse(CLAUDE_TOOL_STREAM).replace(b"\n", b"\r\n")
    assert assemble("anthropic", True, body) == CLAUDE_EXPECTED


def test_anthropic_plain_text_stream() -> None:
    body = anthropic_sse(anthropic_text_stream(["Hel", "lo"], input_tokens=12, output_tokens=3))
    result = assemble("anthropic", True, body)
    assert result.text == "Hello"
    assert result.stop_reason == "end_turn"
    assert result.usage["input_tokens"] == 12
    assert result.usage["output_tokens"] == 3
    assert result.complete
    assert result.error is None


def test_anthropic_stream_error_event() -> None:
    events = anthropic_text_stream(["partial "])[:4]
    events.append(anthropic_stream_error("overloaded_error", "Overloaded"))
    result = assemble("anthropic", True, anthropic_sse(events))
    assert result.text == "partial "
    assert result.error == "overloaded_error: Overloaded"
    assert not result.complete


def test_anthropic_message_body() -> None:
    message = anthropic_message("ignored")
    message["content"] = [
        {"type": "thinking", "thinking": "Plan.", "signature": "sig"},
        {"type": "text", "text": "Reading it."},
        {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"file_path": "/a"}},
    ]
    message["stop_reason"] = "tool_use"
    result = assemble("anthropic", False, json.dumps(message).encode())
    assert result == Assembled(
        text="Reading it.",
        thinking="Plan.",
        tool_calls=[ToolCallOut("Read", {"file_path": "/a"})],
        stop_reason="tool_use",
        usage={
            "input_tokens": 10,
            "output_tokens": 5,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
        complete=True,
    )


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_error_envelope(stream: bool) -> None:
    body = json.dumps(anthropic_error_body("rate_limit_error", "Slow down")).encode()
    result = assemble("anthropic", stream, body)
    assert result.error == "rate_limit_error: Slow down"
    assert result.text == ""


# --- assembling OpenAI --------------------------------------------------------


def test_openai_stream_with_reasoning_text_and_split_tool_calls() -> None:
    assert assemble("openai", True, openai_sse(OPENAI_TOOL_CHUNKS)) == OPENAI_EXPECTED


def test_openai_plain_text_stream() -> None:
    chunks = [data for _, data in openai_text_stream(["Hi", " there"], finish_reason="length")]
    result = assemble("openai", True, openai_sse(chunks))
    assert result.text == "Hi there"
    assert result.stop_reason == "max_tokens"
    assert result.usage == {"input_tokens": 10, "output_tokens": 5}
    assert result.complete


@pytest.mark.parametrize(
    ("finish", "stop"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("content_filter", "refusal"),
        ("eos_token", "eos_token"),
    ],
)
def test_openai_finish_reasons_map_to_stop_reasons(finish: str, stop: str) -> None:
    body = json.dumps(openai_completion("x", finish_reason=finish)).encode()
    assert assemble("openai", False, body).stop_reason == stop


def test_ollama_style_calls_that_reuse_index_zero() -> None:
    chunks = [
        tool_fragment(0, id="call_1", name="Read", arguments='{"file_path": "/a"}'),
        tool_fragment(0, id="call_2", name="Read", arguments='{"file_path": "/b"}'),
        chunk({}, "tool_calls"),
    ]
    result = assemble("openai", True, openai_sse(chunks))
    assert result.tool_calls == [
        ToolCallOut("Read", {"file_path": "/a"}),
        ToolCallOut("Read", {"file_path": "/b"}),
    ]


def test_gemini_style_calls_without_an_index() -> None:
    chunks = [
        tool_fragment(None, name="Glob", arguments='{"pattern":'),
        tool_fragment(None, arguments=' "*.py"}'),
        tool_fragment(None, name="Grep", arguments='{"pattern": "TODO"}'),
    ]
    result = assemble("openai", True, openai_sse(chunks, done=False))
    assert result.tool_calls == [
        ToolCallOut("Glob", {"pattern": "*.py"}),
        ToolCallOut("Grep", {"pattern": "TODO"}),
    ]
    assert not result.complete


def test_openai_completion_body_with_tool_calls() -> None:
    body = openai_completion("", finish_reason="tool_calls")
    message = body["choices"][0]["message"]
    message["content"] = None
    message["reasoning_content"] = "Think."
    message["tool_calls"] = [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "Bash", "arguments": '{"command": "pwd"}'},
        },
        {"id": "call_2", "type": "function", "function": {"name": "Edit", "arguments": "{bad"}},
    ]
    result = assemble("openai", False, json.dumps(body).encode())
    assert result.thinking == "Think."
    assert result.tool_calls == [
        ToolCallOut("Bash", {"command": "pwd"}),
        ToolCallOut("Edit", "{bad"),
    ]
    assert result.stop_reason == "tool_use"


def test_openai_stream_error_chunk() -> None:
    chunks = [chunk({"content": "par"}), {"error": {"message": "upstream died", "code": 502}}]
    result = assemble("openai", True, openai_sse(chunks, done=False))
    assert result.text == "par"
    assert result.error == "upstream died"


@pytest.mark.parametrize("stream", [False, True])
def test_openai_error_envelope(stream: bool) -> None:
    body = {"error": {"message": "Rate limited", "type": "rate_limit_exceeded", "code": None}}
    result = assemble("openai", stream, json.dumps(body).encode())
    assert result.error == "rate_limit_exceeded: Rate limited"


# --- truncated captures -------------------------------------------------------


@pytest.mark.parametrize(
    ("dialect", "body", "full"),
    [
        ("anthropic", anthropic_sse(CLAUDE_TOOL_STREAM), CLAUDE_EXPECTED),
        ("openai", openai_sse(OPENAI_TOOL_CHUNKS), OPENAI_EXPECTED),
    ],
)
def test_a_stream_cut_at_any_byte_assembles_a_prefix(
    dialect: Any, body: bytes, full: Assembled
) -> None:
    for cut in range(len(body)):
        result = assemble(dialect, True, body[:cut])
        assert full.text.startswith(result.text)
        assert full.thinking.startswith(result.thinking)
        assert len(result.tool_calls) <= len(full.tool_calls)
        assert result.error is None
        # Only the final frame's blank line may be missing for it to count.
        assert result.complete == (cut >= len(body) - 2)
    assert assemble(dialect, True, body) == full


def test_a_cut_tool_call_keeps_its_raw_arguments() -> None:
    body = anthropic_sse(CLAUDE_TOOL_STREAM[:15])
    result = assemble("anthropic", True, body)
    assert result.tool_calls == [ToolCallOut("Bash", '{"command": "ls -la')]
    assert result.stop_reason is None


def test_a_frame_cut_before_its_blank_line_still_counts() -> None:
    body = anthropic_sse(anthropic_text_stream(["abc"]))
    assert assemble("anthropic", True, body[:-2]).complete


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("dialect", ["anthropic", "openai"])
def test_garbage_assembles_to_nothing(dialect: Any, stream: bool) -> None:
    for body in (b"", b"{", b"[1]", b"data: nope\n\n", b'"text"', b"\xff\xfe"):
        result = assemble(dialect, stream, body)
        assert result.text == ""
        assert result.tool_calls == []


# --- diff ---------------------------------------------------------------------


def test_identical_responses_have_no_differences() -> None:
    changes = diff(CLAUDE_EXPECTED, CLAUDE_EXPECTED, recorded_ms=812.2, new_ms=811.9)
    assert changes == []
    assert render_diff(changes) == "no differences"


def test_diff_lists_every_changed_field_in_order() -> None:
    new = Assembled(
        text="I'll look at the folder.\nThen the file.",
        thinking=CLAUDE_EXPECTED.thinking,
        tool_calls=[ToolCallOut("Bash", {"command": "ls"})],
        stop_reason="end_turn",
        usage={"input_tokens": 472, "output_tokens": 40},
        error=None,
    )
    changes = diff(CLAUDE_EXPECTED, new, recorded_ms=1200.0, new_ms=640.4)
    assert [c.field for c in changes] == [
        "text",
        "tool_calls[0].input",
        "tool_calls[1].name",
        "tool_calls[1].input",
        "stop_reason",
        "usage.output_tokens",
        # The recorded answer read 1024 tokens from the prompt cache.
        "usage.cache_read_input_tokens",
        "latency_ms",
    ]
    assert changes[2] == Change("tool_calls[1].name", "Read", None)
    assert changes[-1] == Change("latency_ms", 1200, 640)


def test_latency_is_compared_only_when_both_were_measured() -> None:
    assert diff(CLAUDE_EXPECTED, CLAUDE_EXPECTED, recorded_ms=None, new_ms=90.0) == []


def test_a_new_error_is_a_difference() -> None:
    failed = Assembled(error="overloaded_error: Overloaded")
    fields = [c.field for c in diff(OPENAI_EXPECTED, failed, recorded_ms=None, new_ms=None)]
    assert "error" in fields
    assert "text" in fields


def test_render_shows_text_as_a_unified_diff_and_scalars_inline() -> None:
    new = Assembled(
        text="I'll look at the folder.\nThen the file.",
        thinking=CLAUDE_EXPECTED.thinking,
        tool_calls=[
            ToolCallOut("Bash", {"command": "ls -la /tmp"}),
            ToolCallOut("Read", {"file_path": "/src/b.py", "limit": 40}),
        ],
        stop_reason="max_tokens",
        usage=CLAUDE_EXPECTED.usage,
    )
    rendered = render_diff(diff(CLAUDE_EXPECTED, new, recorded_ms=100.0, new_ms=250.0))
    assert rendered == "\n".join(
        [
            "--- recorded text",
            "+++ replayed text",
            "@@ -1,2 +1,2 @@",
            "-I'll look at the directory.",
            "+I'll look at the folder.",
            " Then the file.",
            "--- recorded tool_calls[1].input",
            "+++ replayed tool_calls[1].input",
            "@@ -1,4 +1,4 @@",
            " {",
            '-  "file_path": "/src/a.py",',
            '+  "file_path": "/src/b.py",',
            '   "limit": 40',
            " }",
            "stop_reason: tool_use -> max_tokens",
            "latency_ms: 100 -> 250",
        ]
    )


def test_render_shows_a_missing_value_and_a_line_ending_change() -> None:
    changes = [Change("stop_reason", None, "end_turn"), Change("text", "a\n", "a")]
    assert render_diff(changes) == "stop_reason: (none) -> end_turn\ntext: 'a\\n' -> 'a'"


def test_an_openai_answers_cache_writes_are_not_its_input() -> None:
    """As the request row counts them (wire.usage.openai_counts), so that a
    replay's diff compares like with like."""
    usage = {
        "prompt_tokens": 100,
        "completion_tokens": 5,
        "prompt_tokens_details": {"cached_tokens": 20, "cache_write_tokens": 30},
    }
    body = {"choices": [{"index": 0, "message": {"content": "ok"}, "finish_reason": "stop"}]}
    assembled = assemble("openai", False, json.dumps({**body, "usage": usage}).encode())
    assert assembled.usage == {
        "input_tokens": 50,
        "output_tokens": 5,
        "cache_creation_input_tokens": 30,
        "cache_read_input_tokens": 20,
    }
