"""Context-window overflows as each backend reports them, and the 400 a client gets."""

from __future__ import annotations

import json
import re

import pytest

from coderouterd.wire.overflow import Overflow, overflow_in, overflow_reply

# How Claude Code reads the numbers out of an Anthropic "prompt is too long"
# error to decide how much to compact (its own pattern, from its bundle).
CLAUDE_CODE = re.compile(r"prompt is too long[^0-9]*(\d+)\s*tokens?\s*>\s*(\d+)", re.IGNORECASE)

LLAMA_CPP = {
    "error": {
        "code": 400,
        "message": "request (40960 tokens) exceeds the available context size (32768 tokens), "
        "try increasing it",
        "type": "exceed_context_size_error",
        "n_prompt_tokens": 40960,
        "n_ctx": 32768,
    }
}
VLLM = (
    "This model's maximum context length is 32768 tokens. However, you requested 40000 tokens "
    "(38000 in the messages, 2000 in the completion). Please reduce the length of the messages "
    "or completion."
)


def openai_body(message: str, code: str | None = None) -> bytes:
    error = {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    return json.dumps({"error": error}).encode()


def anthropic_body(message: str) -> bytes:
    error = {"type": "invalid_request_error", "message": message}
    return json.dumps({"type": "error", "error": error}).encode()


@pytest.mark.parametrize(
    ("body", "tokens", "window"),
    [
        pytest.param(
            anthropic_body("prompt is too long: 208310 tokens > 200000 maximum"),
            208310,
            200000,
            id="anthropic",
        ),
        pytest.param(json.dumps(LLAMA_CPP).encode(), 40960, 32768, id="llama.cpp"),
        pytest.param(
            json.dumps(
                {
                    "error": {
                        "code": 400,
                        "message": "the request exceeds the available context size, "
                        "try increasing it",
                        "type": "exceed_context_size_error",
                        "n_prompt_tokens": 5000,
                        "n_ctx": 4096,
                    }
                }
            ).encode(),
            5000,
            4096,
            id="llama.cpp, counts only beside the message",
        ),
        pytest.param(
            openai_body("the request exceeds the available context size, try increasing it"),
            None,
            None,
            id="older llama.cpp, no counts",
        ),
        pytest.param(openai_body(VLLM), 38000, 32768, id="vLLM: the messages' share"),
        pytest.param(
            openai_body(
                "This model's maximum context length is 128000 tokens. However, your messages "
                "resulted in 130512 tokens. Please reduce the length of the messages.",
                "context_length_exceeded",
            ),
            130512,
            128000,
            id="OpenAI",
        ),
        pytest.param(
            openai_body(
                "This endpoint's maximum context length is 131072 tokens. However, you requested "
                "about 150000 tokens (148000 of text input, 2000 in the output). Please reduce "
                "the length of either one."
            ),
            148000,
            131072,
            id="OpenRouter: the input's share",
        ),
        pytest.param(
            openai_body(
                "Prompt contains 40000 tokens and 0 draft tokens, too large for model with "
                "32768 maximum context length"
            ),
            40000,
            32768,
            id="Mistral",
        ),
        pytest.param(
            openai_body(
                "The input token count (1200000) exceeds the maximum number of tokens allowed "
                "(1048576)."
            ),
            1200000,
            1048576,
            id="Gemini",
        ),
        pytest.param(b"context size exceeded", None, None, id="plain text"),
    ],
)
def test_each_backends_overflow_is_read_with_the_counts_it_gives(
    body: bytes, tokens: int | None, window: int | None
) -> None:
    found = overflow_in(body)
    assert found is not None
    assert (found.prompt_tokens, found.window) == (tokens, window)
    assert found.message


@pytest.mark.parametrize(
    "body",
    [
        anthropic_body(
            "max_tokens: 100000 > 64000, which is the maximum allowed number of output tokens"
        ),
        openai_body("The model `qwen3:32b` does not exist", "model_not_found"),
        openai_body("Invalid 'messages[3].content': expected a string"),
        anthropic_body("messages.1: `tool_use` ids were found without `tool_result` blocks"),
        b"",
    ],
)
def test_other_errors_are_no_overflow(body: bytes) -> None:
    assert overflow_in(body) is None


def test_an_anthropic_client_reads_the_counts_where_claude_code_looks() -> None:
    found = overflow_in(json.dumps(LLAMA_CPP).encode())
    assert found is not None
    error = json.loads(overflow_reply("anthropic", found, "local", request_id="req_1"))["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith("prompt is too long: 40960 tokens > 32768 maximum (local: ")
    match = CLAUDE_CODE.search(error["message"])
    assert match is not None and match.groups() == ("40960", "32768")


def test_anthropics_own_words_reach_an_anthropic_client_unchanged() -> None:
    said = "input length and `max_tokens` exceed context limit: 190000 + 32000 > 200000"
    reply = json.loads(overflow_reply("anthropic", Overflow(said), "claude", request_id="req_1"))
    assert reply == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": said},
        "request_id": "req_1",
    }


def test_without_counts_an_anthropic_client_still_reads_prompt_is_too_long() -> None:
    said = "the request exceeds the available context size, try increasing it"
    message = json.loads(overflow_reply("anthropic", Overflow(said), "local", request_id="req_1"))[
        "error"
    ]["message"]
    assert message == f"prompt is too long (local: {said})"
    assert CLAUDE_CODE.search(message) is None


def test_an_openai_client_gets_the_code_it_checks() -> None:
    reply = json.loads(
        overflow_reply("openai", Overflow(VLLM, 38000, 32768), "vllm", request_id="req_1")
    )
    assert reply == {
        "error": {
            "message": f"vllm: {VLLM}",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        }
    }


# Refusals of a prompt that fits, but not with the max_tokens asked beside it:
# (prompt tokens, completion tokens, window) in each backend's words.
MAX_TOKENS_TOO_LARGE = [
    pytest.param(
        anthropic_body(
            "input length and `max_tokens` exceed context limit: 1200 + 32000 > 32768, "
            "decrease input length or `max_tokens` and try again"
        ),
        id="anthropic",
    ),
    pytest.param(
        openai_body(
            "This model's maximum context length is 32768 tokens. However, you requested 33200 "
            "tokens (1200 in the messages, 32000 in the completion). Please reduce the length "
            "of the messages or completion.",
            "context_length_exceeded",
        ),
        id="OpenAI",
    ),
    pytest.param(
        openai_body(
            "'max_tokens' or 'max_completion_tokens' is too large: 32000. This model's maximum "
            "context length is 32768 tokens and your request has 1200 input tokens "
            "(32000 > 32768 - 1200)."
        ),
        id="vLLM, is too large",
    ),
    pytest.param(
        openai_body(
            "This model's maximum context length is 32768 tokens. However, you requested 32000 "
            "output tokens and your prompt contains at least 1200 input tokens, for a total of "
            "at least 33200 tokens. Please reduce the length of the input prompt or the number "
            "of requested output tokens. (parameter=input_tokens, value=1200)"
        ),
        id="vLLM, output tokens",
    ),
    pytest.param(
        openai_body(
            "This endpoint's maximum context length is 32768 tokens. However, you requested "
            "about 33200 tokens (1200 of text input, 32000 in the output). Please reduce the "
            'length of either one, or use the "middle-out" transform to compress your prompt '
            "automatically."
        ),
        id="OpenRouter",
    ),
    pytest.param(
        openai_body(
            "Requested token count exceeds the model's maximum context length of 32768 tokens. "
            "You requested a total of 33200 tokens: 1200 tokens from the input messages and "
            "32000 tokens for the completion. Please reduce the number of tokens in the input "
            "messages or the completion to fit within the limit."
        ),
        id="sglang",
    ),
]


@pytest.mark.parametrize("body", MAX_TOKENS_TOO_LARGE)
def test_a_max_tokens_too_large_is_read_as_the_prompt_and_the_completion_each(
    body: bytes,
) -> None:
    found = overflow_in(body)
    assert found is not None
    assert (found.prompt_tokens, found.completion_tokens, found.window) == (1200, 32000, 32768)
    assert found.prompt_fits


@pytest.mark.parametrize("body", MAX_TOKENS_TOO_LARGE)
def test_a_max_tokens_too_large_is_told_in_anthropics_words_for_it_not_as_a_prompt_too_long(
    body: bytes,
) -> None:
    found = overflow_in(body)
    assert found is not None
    message = json.loads(overflow_reply("anthropic", found, "vllm", request_id="req_1"))["error"][
        "message"
    ]
    assert message.startswith(
        "input length and `max_tokens` exceed context limit: 1200 + 32000 > 32768, "
        "decrease input length or `max_tokens` and try again"
    )
    # Claude Code would compact a conversation that fits.
    assert CLAUDE_CODE.search(message) is None


def test_a_prompt_that_fits_without_the_max_tokens_named_is_still_no_prompt_too_long() -> None:
    said = "context length 32768 exceeded by the completion; prompt 1200 tokens"
    reply = overflow_reply("anthropic", Overflow(said, 1200, 32768), "local", request_id="req_1")
    message = json.loads(reply)["error"]["message"]
    assert message == (
        "input length and `max_tokens` exceed context limit: 1200 tokens of input, 32768 "
        "maximum, decrease input length or `max_tokens` and try again (local: " + said + ")"
    )


@pytest.mark.parametrize(
    ("message", "tokens", "window"),
    [
        pytest.param(
            "The input (40960 tokens) is longer than the model's context length (32768 tokens).",
            40960,
            32768,
            id="sglang",
        ),
        pytest.param(
            "This model's maximum context length is 32768 tokens. However, you requested 2000 "
            "output tokens and your prompt contains at least 40961 input tokens, for a total of "
            "at least 42961 tokens.",
            40961,
            32768,
            id="vLLM, output tokens",
        ),
    ],
)
def test_a_prompt_longer_than_the_window_is_still_told_as_too_long(
    message: str, tokens: int, window: int
) -> None:
    found = overflow_in(openai_body(message))
    assert found is not None and not found.prompt_fits
    assert (found.prompt_tokens, found.window) == (tokens, window)
    said = json.loads(overflow_reply("anthropic", found, "local", request_id="req_1"))["error"][
        "message"
    ]
    match = CLAUDE_CODE.search(said)
    assert match is not None and match.groups() == (str(tokens), str(window))
