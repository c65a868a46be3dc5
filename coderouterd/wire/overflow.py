"""A backend saying the prompt does not fit its context window (pure).

Long agent sessions outgrow a local model's window sooner or later. Each
backend says so in its own words, with an error status:

- Anthropic: `prompt is too long: 208310 tokens > 200000 maximum`, or
  `input length and max_tokens exceed context limit: ...`;
- OpenAI, vLLM, OpenRouter, NIM: `This model's maximum context length is
  32768 tokens. However, you requested 40000 tokens (38000 in the messages,
  2000 in the completion)`, code `context_length_exceeded`;
- llama.cpp: `request (4476 tokens) exceeds the available context size (4096
  tokens)`, type `exceed_context_size_error` with `n_prompt_tokens` and
  `n_ctx` (older servers: `the request exceeds the available context size`);
- Mistral: `Prompt contains 40000 tokens ... too large for model with 32768
  maximum context length`; Gemini: `The input token count (1200000) exceeds
  the maximum number of tokens allowed (1048576)`.

Such a backend is healthy: the request is what does not fit. The engine
tries the next provider (one with a larger window may take it) without
counting a failure, and when none can, answers as Anthropic does, since
that is what clients act on: Claude Code reads `prompt is too long: N tokens
> M maximum` to compact the conversation. OpenAI clients get the code
`context_length_exceeded`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import msgspec

from coderouterd.wire.errors import anthropic_error, error_message_of, openai_error

_encode = msgspec.json.Encoder().encode

_SAYS_TOO_LONG = re.compile(
    rb"prompt is too long|context[ _]length|context size|context window|context limit"
    rb"|exceed_context_size|input is too long|is too long and exceeds"
    rb"|maximum number of tokens allowed",
    re.IGNORECASE,
)
# Anthropic's own words, which its clients already act on.
_ANTHROPIC_WORDS = re.compile(r"prompt is too long|exceed context limit", re.IGNORECASE)

# (prompt tokens, window) as each backend gives them; the first that matches wins.
_COUNTS: tuple[tuple[re.Pattern[str], int, int], ...] = (
    (re.compile(r"prompt is too long:\s*(\d+) tokens? > (\d+)", re.I), 1, 2),
    (
        re.compile(
            r"maximum context length is (\d+) tokens.*?\((\d+) in the messages", re.I | re.S
        ),
        2,
        1,
    ),
    (
        re.compile(
            r"maximum context length is (\d+) tokens.*?(?:requested|resulted in|has)"
            r"(?: about)? (\d+)(?: input)? tokens",
            re.I | re.S,
        ),
        2,
        1,
    ),
    (
        re.compile(r"request \((\d+) tokens\) exceeds the available context size \((\d+)", re.I),
        1,
        2,
    ),
    (re.compile(r"contains (\d+) tokens.*?with (\d+) maximum context length", re.I | re.S), 1, 2),
    (re.compile(r"input token count \((\d+)\) exceeds .*?allowed \((\d+)\)", re.I | re.S), 1, 2),
    (
        re.compile(r"input prompt \((\d+) tokens\) is too long and exceeds limit of (\d+)", re.I),
        1,
        2,
    ),
    (re.compile(r'"n_prompt_tokens"\s*:\s*(\d+).*?"n_ctx"\s*:\s*(\d+)', re.S), 1, 2),
)


@dataclass(frozen=True, slots=True)
class Overflow:
    """What a backend said when the prompt did not fit, with the counts it gave."""

    message: str
    prompt_tokens: int | None = None
    window: int | None = None


def overflow_in(body: bytes) -> Overflow | None:
    """The overflow an upstream error body (JSON of either dialect, or text) reports, if any."""
    if _SAYS_TOO_LONG.search(body) is None:
        return None
    text = body.decode("utf-8", "replace")
    message = error_message_of(body) or text[:500]
    for pattern, tokens, window in _COUNTS:
        # The message first; llama.cpp's counts are fields beside it.
        found = pattern.search(message) or pattern.search(text)
        if found:
            return Overflow(message, int(found.group(tokens)), int(found.group(window)))
    return Overflow(message)


def overflow_reply(dialect: str, overflow: Overflow, provider: str) -> bytes:
    """The 400 a client gets when no provider could take its prompt, in its dialect."""
    if dialect == "openai":
        message = f"{provider}: {overflow.message}"
        body = openai_error(400, message, param="messages", code="context_length_exceeded")
        return _encode(body)
    if _ANTHROPIC_WORDS.search(overflow.message):
        message = overflow.message
    elif overflow.prompt_tokens is not None and overflow.window is not None:
        message = (
            f"prompt is too long: {overflow.prompt_tokens} tokens > {overflow.window} maximum "
            f"({provider}: {overflow.message})"
        )
    else:
        message = f"prompt is too long ({provider}: {overflow.message})"
    return _encode(anthropic_error(400, message, error_type="invalid_request_error"))
