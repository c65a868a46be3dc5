"""Error bodies: telling a backend that ran out of memory from any other error."""

from __future__ import annotations

import json

import pytest

from coderouterd.routing.verdict import Verdict, classify_status
from coderouterd.wire.errors import mentions_memory_pressure


def anthropic(message: str) -> bytes:
    return json.dumps(
        {"type": "error", "error": {"type": "api_error", "message": message}}
    ).encode()


def openai(message: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": "server_error"}}).encode()


@pytest.mark.parametrize(
    "body",
    [
        # Ollama
        openai("model requires more system memory (5.2 GiB) than is available (3.1 GiB)"),
        anthropic("llama runner process has terminated: cudaMalloc failed: out of memory"),
        # llama.cpp
        b"ggml_backend_cuda_buffer_type_alloc_buffer: failed to allocate CUDA0 buffer",
        openai("ggml_cuda_host_malloc: failed to pin memory"),
        # LM Studio
        openai("Failed to load model: insufficient memory"),
        anthropic("CUDA error: OOM when allocating tensor"),
        b"Not enough memory to load the model",
    ],
)
def test_out_of_memory_errors_are_recognised(body: bytes) -> None:
    assert mentions_memory_pressure(body)


@pytest.mark.parametrize(
    "body",
    [
        openai("model 'qwen3:32b' not found, try pulling it first"),
        openai("Failed to load model: file does not exist"),
        anthropic("prompt too long: no room left in the context window"),
        anthropic("zoom out of the transcript"),
        anthropic("Overloaded"),
        b"",
    ],
)
def test_other_errors_are_not_memory_pressure(body: bytes) -> None:
    assert not mentions_memory_pressure(body)


def test_a_backend_out_of_memory_is_a_reason_to_fall_back_whatever_its_status() -> None:
    assert classify_status(400, "invalid_request_error") is Verdict.RETURN
    assert classify_status(400, "invalid_request_error", memory_pressure=True) is Verdict.NEXT
    assert classify_status(500, None, memory_pressure=True) is Verdict.NEXT
