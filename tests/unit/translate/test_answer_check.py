"""What a 2xx body must be to be an answer: tables for the checks, and the
glance the passthroughs take first, which never takes for plain what the
whole check refuses."""

from __future__ import annotations

import json
from typing import Any

import pytest

from coderouterd.errors import UpstreamMemoryError, UpstreamProtocolError
from coderouterd.translate.answer_check import (
    check_completion,
    check_message,
    glance_at_completion,
    glance_at_message,
)
from coderouterd.wire.usage import Usage

USAGE = {
    "input_tokens": 9,
    "output_tokens": 1,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 0,
}
TEXT = [{"type": "text", "text": "hi"}]

MESSAGES: list[tuple[Any, type[Exception] | None]] = [
    ({"type": "message", "content": TEXT, "usage": USAGE}, None),
    ({"type": "message", "content": []}, None),
    # A compatible server that leaves the type out.
    ({"content": TEXT}, None),
    (
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        UpstreamProtocolError,
    ),
    (
        {"type": "error", "error": {"type": "api_error", "message": "out of memory"}},
        UpstreamMemoryError,
    ),
    ({"type": "error", "usage": USAGE}, UpstreamProtocolError),
    ({"error": {"message": "failed to allocate"}}, UpstreamMemoryError),
    ({"type": "message", "content": TEXT, "error": "late"}, UpstreamProtocolError),
    ({"type": "message", "content": None}, UpstreamProtocolError),
    ({"type": "message", "content": "hi"}, UpstreamProtocolError),
    ({"type": "message"}, UpstreamProtocolError),
    ({"type": "completion", "content": TEXT}, UpstreamProtocolError),
    ({"type": 5, "content": TEXT}, UpstreamProtocolError),
    ({"usage": USAGE}, UpstreamProtocolError),
    ([TEXT], UpstreamProtocolError),
]

CHOICE = {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
COMPLETIONS: list[tuple[Any, type[Exception] | None]] = [
    ({"choices": [CHOICE], "usage": {"prompt_tokens": 9, "completion_tokens": 1}}, None),
    ({"choices": [CHOICE, {"index": 1, "message": None}]}, None),
    ({"choices": [{"index": 1, "message": None}, CHOICE]}, None),
    ({"choices": [CHOICE, 5]}, None),
    ({"error": {"code": 502}, "usage": {"prompt_tokens": 9}}, UpstreamProtocolError),
    ({"error": "CUDA out of memory", "choices": [CHOICE]}, UpstreamMemoryError),
    ({"choices": [], "usage": {"prompt_tokens": 9}}, UpstreamProtocolError),
    ({"choices": [{"index": 0, "message": None}]}, UpstreamProtocolError),
    ({"choices": [{"index": 0, "delta": {"content": "hi"}}]}, UpstreamProtocolError),
    ({"choices": {"0": CHOICE}}, UpstreamProtocolError),
    ({"usage": {"prompt_tokens": 9}}, UpstreamProtocolError),
    ("ok", UpstreamProtocolError),
]


@pytest.mark.parametrize(("body", "refused"), MESSAGES)
def test_a_message_is_an_answer_and_anything_else_is_not(
    body: Any, refused: type[Exception] | None
) -> None:
    raw = json.dumps(body).encode()
    if refused is None:
        check_message("p", body, raw)
    else:
        with pytest.raises(refused):
            check_message("p", body, raw)
        assert not glance_at_message(raw).plain


@pytest.mark.parametrize(("body", "refused"), COMPLETIONS)
def test_a_completion_is_an_answer_and_anything_else_is_not(
    body: Any, refused: type[Exception] | None
) -> None:
    raw = json.dumps(body).encode()
    if refused is None:
        check_completion("p", body, raw)
    else:
        with pytest.raises(refused):
            check_completion("p", body, raw)
        assert not glance_at_completion(raw).plain


def test_the_glance_reads_the_usage_of_a_plain_answer() -> None:
    message = json.dumps({"type": "message", "content": TEXT, "usage": USAGE}).encode()
    assert glance_at_message(message) == (Usage(**USAGE), True)
    completion = {"choices": [CHOICE], "usage": {"prompt_tokens": 9, "completion_tokens": 1}}
    usage, plain = glance_at_completion(json.dumps(completion).encode())
    assert plain and usage is not None
    assert (usage.input_tokens, usage.output_tokens) == (9, 1)


@pytest.mark.parametrize(
    ("body", "bad_counts"),
    [
        (b"not json", b"not json"),
        (b"", b""),
        (b"[1", b"[1"),
        (b'{"usage": {"input_tokens": "many"}}', b'{"usage": {"prompt_tokens": "many"}}'),
    ],
)
def test_what_the_glance_cannot_read_is_left_to_the_whole_check(
    body: bytes, bad_counts: bytes
) -> None:
    assert glance_at_message(body) == (None, False)
    assert glance_at_completion(bad_counts) == (None, False)
