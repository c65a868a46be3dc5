"""Builders for well-formed provider responses, to script a FakeUpstream with.

Each builder produces what the real provider sends, field for field, so a
test that wants a broken transcript starts from a correct one and breaks
exactly one thing.
"""

from __future__ import annotations

from typing import Any

from tests.fakes.upstream import Reply

Event = tuple[str, dict[str, Any]]

FAKE_MODEL = "fake-model"
# Fixed timestamp: transcripts stay byte-for-byte reproducible.
_CREATED = 1_700_000_000


def anthropic_usage(input_tokens: int, output_tokens: int) -> dict[str, int]:
    # The cache fields are always present: clients break when they are missing.
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def anthropic_text_stream(
    text_chunks: list[str],
    *,
    model: str = FAKE_MODEL,
    input_tokens: int = 10,
    output_tokens: int = 5,
    stop_reason: str = "end_turn",
    message_id: str = "msg_fake_0001",
    ping: bool = False,
) -> list[Event]:
    """A complete Messages stream with one text block, one delta per chunk."""
    events: list[Event] = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": message_id,
                    "type": "message",
                    "role": "assistant",
                    "content": [],
                    "model": model,
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": anthropic_usage(input_tokens, 1),
                },
            },
        )
    ]
    if ping:
        events.append(("ping", {"type": "ping"}))
    events.append(
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        )
    )
    events.extend(
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": chunk},
            },
        )
        for chunk in text_chunks
    )
    events.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def anthropic_message(
    text: str,
    *,
    model: str = FAKE_MODEL,
    input_tokens: int = 10,
    output_tokens: int = 5,
    stop_reason: str = "end_turn",
    message_id: str = "msg_fake_0001",
) -> dict[str, Any]:
    """A complete non-streaming Messages response body."""
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "content": [{"type": "text", "text": text}],
        "model": model,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": anthropic_usage(input_tokens, output_tokens),
    }


def anthropic_error_body(error_type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}}


def anthropic_error(status: int, error_type: str, message: str) -> Reply:
    """An error answer, e.g. (529, "overloaded_error"), (429, "rate_limit_error")."""
    return Reply(status=status, json=anthropic_error_body(error_type, message))


def anthropic_stream_error(error_type: str, message: str) -> Event:
    """The in-stream `error` event a provider sends after the headers went out."""
    return ("error", anthropic_error_body(error_type, message))


def _openai_chunk(
    completion_id: str, model: str, delta: dict[str, Any], finish_reason: str | None
) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": _CREATED,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }


def openai_usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def openai_text_stream(
    text_chunks: list[str],
    *,
    model: str = FAKE_MODEL,
    prompt_tokens: int = 10,
    completion_tokens: int = 5,
    finish_reason: str = "stop",
    include_usage: bool = True,
    completion_id: str = "chatcmpl-fake-0001",
) -> list[Event]:
    """Chat Completions chunks; the server adds the `data: [DONE]` terminator.

    Event names are empty: OpenAI frames have no `event:` line.
    """
    chunks = [_openai_chunk(completion_id, model, {"role": "assistant", "content": ""}, None)]
    chunks.extend(
        _openai_chunk(completion_id, model, {"content": text}, None) for text in text_chunks
    )
    chunks.append(_openai_chunk(completion_id, model, {}, finish_reason))
    if include_usage:
        # What `stream_options.include_usage` adds: usage with no choices.
        usage_chunk = _openai_chunk(completion_id, model, {}, None)
        usage_chunk["choices"] = []
        usage_chunk["usage"] = openai_usage(prompt_tokens, completion_tokens)
        chunks.append(usage_chunk)
    return [("", chunk) for chunk in chunks]


def openai_completion(
    text: str,
    *,
    model: str = FAKE_MODEL,
    prompt_tokens: int = 10,
    completion_tokens: int = 5,
    finish_reason: str = "stop",
    completion_id: str = "chatcmpl-fake-0001",
) -> dict[str, Any]:
    """A complete non-streaming Chat Completions response body."""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": _CREATED,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": openai_usage(prompt_tokens, completion_tokens),
    }


def openai_error(
    status: int, message: str, *, error_type: str = "server_error", code: str | None = None
) -> Reply:
    """An OpenAI error envelope, e.g. (429, ..., error_type="rate_limit_exceeded")."""
    body = {"error": {"message": message, "type": error_type, "param": None, "code": code}}
    return Reply(status=status, json=body, dialect="openai")
