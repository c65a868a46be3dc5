"""A backend saying the prompt does not fit its context window (pure).

Long agent sessions outgrow a local model's window sooner or later. Each
backend says so in its own words, with an error status or, streaming, as
the first event of a 200 (llama.cpp before late 2025, sglang):

- Anthropic: `prompt is too long: 208310 tokens > 200000 maximum`, or
  `input length and max_tokens exceed context limit: ...`;
- OpenAI, vLLM, OpenRouter, NIM: `This model's maximum context length is
  32768 tokens. However, you requested 40000 tokens (38000 in the messages,
  2000 in the completion)`, code `context_length_exceeded` (vLLM also
  `you requested 2000 output tokens and your prompt contains at least 38000
  input tokens`, or `'max_tokens' ... is too large: 2000`);
- llama.cpp: `request (4476 tokens) exceeds the available context size (4096
  tokens)`, type `exceed_context_size_error` with `n_prompt_tokens` and
  `n_ctx` (older servers: `the request exceeds the available context size`);
- sglang: `The input (40000 tokens) is longer than the model's context
  length (32768 tokens)`, or `... maximum context length of 32768 tokens.
  You requested a total of 34000 tokens: 32000 tokens from the input
  messages and 2000 tokens for the completion`;
- Mistral: `Prompt contains 40000 tokens ... too large for model with 32768
  maximum context length`; Gemini: `The input token count (1200000) exceeds
  the maximum number of tokens allowed (1048576)`.

Such a backend is healthy: the request is what does not fit. The engine
tries the next provider (one with a larger window may take it) without
counting a failure, and when none can, answers as Anthropic does, since
that is what clients act on: Claude Code reads `prompt is too long: N tokens
> M maximum` to compact the conversation. A prompt that fits the window
alone, refused because max_tokens does not fit beside it, is told in
Anthropic's words for that (input length and `max_tokens` exceed context
limit: N + K > M): a prompt too long would name a count below the maximum.
OpenAI clients get the code `context_length_exceeded`.
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

# The counts each backend gives, as named groups: `prompt`, `window`, and
# `completion` (the max_tokens asked) or `total` (prompt and completion)
# where it names them. The first that matches wins: a refusal naming the
# completion too comes before a wording it would also match, so the prompt
# is never taken to be the total.
_COUNTS: tuple[re.Pattern[str], ...] = (
    re.compile(r"prompt is too long:\s*(?P<prompt>\d+) tokens? > (?P<window>\d+)", re.I),
    re.compile(
        r"exceed context limit:\s*(?P<prompt>\d+) \+ (?P<completion>\d+) > (?P<window>\d+)", re.I
    ),
    # OpenAI, older vLLM (`(38000 in the messages, 2000 in the completion)`),
    # OpenRouter (`(10535 of text input, 131072 in the output)`).
    re.compile(
        r"maximum context length is (?P<window>\d+) tokens.*?requested (?:about )?(?P<total>\d+)"
        r" tokens \([^)]*?(?P<completion>\d+) (?:in|for) the (?:completion|output)\)",
        re.I | re.S,
    ),
    # vLLM: `you requested 32000 output tokens and your prompt contains at
    # least 1200 input tokens`, or `'max_tokens' ... is too large: 32000. ...
    # your request has 1200 input tokens`.
    re.compile(
        r"maximum context length is (?P<window>\d+) tokens.*?requested (?P<completion>\d+)"
        r" output tokens.*?contains (?:at least )?(?P<prompt>\d+) input tokens",
        re.I | re.S,
    ),
    re.compile(
        r"is too large: (?P<completion>\d+)\..*?maximum context length is (?P<window>\d+)"
        r" tokens.*?has (?P<prompt>\d+) input tokens",
        re.I | re.S,
    ),
    # sglang.
    re.compile(
        r"maximum context length of (?P<window>\d+) tokens.*?(?P<prompt>\d+) tokens from the"
        r" input messages and (?P<completion>\d+) tokens for the completion",
        re.I | re.S,
    ),
    re.compile(
        r"input \((?P<prompt>\d+) tokens\) is longer than the model's context length"
        r" \((?P<window>\d+) tokens\)",
        re.I,
    ),
    re.compile(
        r"maximum context length is (?P<window>\d+) tokens.*?\((?P<prompt>\d+) in the messages",
        re.I | re.S,
    ),
    re.compile(
        r"maximum context length is (?P<window>\d+) tokens.*?(?:requested|resulted in|has)"
        r"(?: about)? (?P<prompt>\d+)(?: input)? tokens",
        re.I | re.S,
    ),
    re.compile(
        r"request \((?P<prompt>\d+) tokens\) exceeds the available context size"
        r" \((?P<window>\d+)",
        re.I,
    ),
    re.compile(
        r"contains (?P<prompt>\d+) tokens.*?with (?P<window>\d+) maximum context length",
        re.I | re.S,
    ),
    re.compile(
        r"input token count \((?P<prompt>\d+)\) exceeds .*?allowed \((?P<window>\d+)\)",
        re.I | re.S,
    ),
    re.compile(
        r"input prompt \((?P<prompt>\d+) tokens\) is too long and exceeds limit of"
        r" (?P<window>\d+)",
        re.I,
    ),
    re.compile(r'"n_prompt_tokens"\s*:\s*(?P<prompt>\d+).*?"n_ctx"\s*:\s*(?P<window>\d+)', re.S),
)


@dataclass(frozen=True, slots=True)
class Overflow:
    """What a backend said when the prompt did not fit, with the counts it gave."""

    message: str
    prompt_tokens: int | None = None
    window: int | None = None
    # The max_tokens asked, when the backend named it.
    completion_tokens: int | None = None

    @property
    def prompt_fits(self) -> bool:
        """The prompt alone fits the window: prompt plus max_tokens is what does not."""
        return (
            self.prompt_tokens is not None
            and self.window is not None
            and self.prompt_tokens < self.window
        )


def overflow_in(body: bytes) -> Overflow | None:
    """The overflow an upstream error body (JSON of either dialect, or text) reports, if any."""
    if _SAYS_TOO_LONG.search(body) is None:
        return None
    text = body.decode("utf-8", "replace")
    message = error_message_of(body) or text[:500]
    for pattern in _COUNTS:
        # The message first; llama.cpp's counts are fields beside it.
        found = pattern.search(message) or pattern.search(text)
        if found:
            return _counted(message, found.groupdict())
    return Overflow(message)


def _counted(message: str, groups: dict[str, str | None]) -> Overflow:
    n = {k: int(v) for k, v in groups.items() if v is not None}
    completion = n.get("completion")
    prompt = n.get("prompt")
    if prompt is None and "total" in n and completion is not None and n["total"] > completion:
        prompt = n["total"] - completion
    return Overflow(message, prompt, n.get("window"), completion)


def overflow_reply(dialect: str, overflow: Overflow, provider: str, *, request_id: str) -> bytes:
    """The 400 a client gets when no provider could take its prompt, in its
    dialect; an Anthropic one carries the request's id, as our errors do."""
    if dialect == "openai":
        message = f"{provider}: {overflow.message}"
        body = openai_error(400, message, param="messages", code="context_length_exceeded")
        return _encode(body)
    message = _anthropic_words(overflow, provider)
    body = anthropic_error(400, message, error_type="invalid_request_error", request_id=request_id)
    return _encode(body)


def _anthropic_words(overflow: Overflow, provider: str) -> str:
    """Anthropic's words for the overflow. Claude Code reads the counts of a
    prompt too long to decide how much to compact; a prompt that fits the
    window, refused for the max_tokens beside it, gets the words Anthropic
    uses for that, so that no client compacts a conversation that fits."""
    said = f"({provider}: {overflow.message})"
    p, w, k = overflow.prompt_tokens, overflow.window, overflow.completion_tokens
    if _ANTHROPIC_WORDS.search(overflow.message):
        return overflow.message
    if overflow.prompt_fits and k is not None:
        return (
            f"input length and `max_tokens` exceed context limit: {p} + {k} > {w}, "
            f"decrease input length or `max_tokens` and try again {said}"
        )
    if overflow.prompt_fits:
        return (
            f"input length and `max_tokens` exceed context limit: {p} tokens of input, {w} "
            f"maximum, decrease input length or `max_tokens` and try again {said}"
        )
    if p is not None and w is not None:
        return f"prompt is too long: {p} tokens > {w} maximum {said}"
    return f"prompt is too long {said}"
