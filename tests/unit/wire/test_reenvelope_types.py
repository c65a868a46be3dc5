"""A backend's error body put in the Anthropic envelope: typed with one of
Anthropic's types, the status's where Anthropic has one for it, and with
the backend's message whichever shape its body has."""

from __future__ import annotations

import json

import pytest

from coderouterd.wire.errors import error_message_of, reenvelope
from coderouterd.wire.overflow import overflow_in


def openai(kind: str | None, message: str = "said") -> bytes:
    return json.dumps({"error": {"message": message, "type": kind, "code": None}}).encode()


def vllm(message: str, kind: str = "BadRequestError", code: int = 400) -> bytes:
    return json.dumps(
        {"object": "error", "message": message, "type": kind, "param": None, "code": code}
    ).encode()


def anthropic_error_of(status: int, body: bytes) -> dict[str, str]:
    envelope = json.loads(reenvelope("anthropic", status, body))
    assert envelope["type"] == "error"
    error: dict[str, str] = envelope["error"]
    return error


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        # OpenAI's own types, none of them Anthropic's.
        (403, openai("insufficient_quota"), "permission_error"),
        (429, openai("insufficient_quota"), "rate_limit_error"),
        (500, openai("server_error"), "api_error"),
        # One of Anthropic's names, of another status than Anthropic's.
        (401, openai("invalid_request_error"), "authentication_error"),
        (404, openai("invalid_request_error"), "not_found_error"),
        (400, openai("rate_limit_error"), "invalid_request_error"),
        (402, openai(None), "billing_error"),
        (504, openai("server_error"), "timeout_error"),
        # A status Anthropic lists no type for: an Anthropic type of the
        # same side's fault is kept, any other is the status's.
        (422, openai("not_found_error"), "not_found_error"),
        (422, openai("UnprocessableEntityError"), "invalid_request_error"),
        (502, openai("overloaded_error"), "overloaded_error"),
        (502, openai("invalid_request_error"), "api_error"),
        (409, openai("api_error"), "invalid_request_error"),
        # vLLM's error, top level.
        (400, vllm("bad"), "invalid_request_error"),
        (500, vllm("boom", "InternalServerError", 500), "api_error"),
    ],
)
def test_a_backends_error_gets_an_anthropic_type(status: int, body: bytes, expected: str) -> None:
    assert anthropic_error_of(status, body)["type"] == expected


def test_a_vllm_error_keeps_its_message() -> None:
    said = "'temperature' must be between 0 and 2"
    assert anthropic_error_of(400, vllm(said)) == {
        "type": "invalid_request_error",
        "message": said,
    }
    assert json.loads(reenvelope("openai", 400, vllm(said)))["error"]["message"] == said


def test_a_top_level_field_of_another_type_does_not_hide_the_error_object() -> None:
    body = json.dumps({"error": {"message": "said", "type": "x"}, "message": 7}).encode()
    assert error_message_of(body) == "said"


def test_a_vllm_overflow_is_told_in_its_own_words() -> None:
    said = (
        "This model's maximum context length is 4096 tokens. However, you requested "
        "5000 tokens (4000 in the messages, 1000 in the completion). Please reduce "
        "the length of the messages or completion."
    )
    overflow = overflow_in(vllm(said))
    assert overflow is not None
    assert overflow.message == said


def test_an_error_body_nested_past_the_decoders_depth_is_read_as_text() -> None:
    # A provider's 4xx too deeply nested to decode is its own words, not our 500.
    deep = b'{"error": ' * 2000 + b"1" + b"}" * 2000
    error = json.loads(reenvelope("anthropic", 400, deep))["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith('{"error": {"error"')
