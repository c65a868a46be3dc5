"""Prompts a backend cut: it counted far fewer input tokens than it was sent.

A local server whose context window is smaller than the prompt (Ollama's
default `num_ctx`, a llama.cpp server started with a small `-c`) does not
refuse it: it drops the start, system prompt and tool definitions
included, and answers from what is left, which looks to the client like a
model that forgot its instructions. Its own usage gives it away: the input
tokens it reports (cache reads and writes included) fall far short of the
prompt's size. Only prompts of at least MIN_TOKENS (estimated at four bytes
a token, which over-counts JSON by a little) and usage the backend reported
itself are judged; each cut prompt is counted, and a warning is logged at
most once per REPEAT_S per provider.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from coderouterd.clock import Clock
from coderouterd.routing.records import RequestSummary
from coderouterd.telemetry import events

RATIO = 0.4
MIN_TOKENS = 4096
REPEAT_S = 600.0


def counted_input(summary: RequestSummary) -> int | None:
    """The input tokens the backend says it read, or None when it did not say."""
    u = summary.usage
    if u is None or summary.usage_estimated or u.input_tokens is None:
        return None
    return u.input_tokens + (u.cache_read_input_tokens or 0) + (u.cache_creation_input_tokens or 0)


def was_cut(prompt_estimate: int, counted: int | None, image_tokens: int = 0) -> bool:
    """Whether a backend that read `counted` tokens of a prompt estimated at
    `prompt_estimate` cut it (the request log applies the same test:
    state/overflows.py, recent_cuts). Judged on the prompt's text: the estimate
    without the `image_tokens` its inline images count for (backends count an
    image anywhere from tens to thousands of tokens)."""
    text = prompt_estimate - image_tokens
    if text < MIN_TOKENS or not counted:
        return False
    return counted < RATIO * text


class TruncationWatch:
    def __init__(self, log: Any, clock: Clock) -> None:
        self._log = log
        self._clock = clock
        self._logged: dict[str, float] = {}
        # Cut prompts per provider since the start.
        self.counts: Counter[str] = Counter()

    def take(self, summaries: Sequence[RequestSummary]) -> None:
        for s in summaries:
            counted = counted_input(s)
            if s.provider is None or not was_cut(s.prompt_estimate, counted, s.prompt_image_tokens):
                continue
            self.counts[s.provider] += 1
            now = self._clock.monotonic()
            if now - self._logged.get(s.provider, -math.inf) < REPEAT_S:
                continue
            self._logged[s.provider] = now
            self._log.warning(
                events.PROVIDER_PROMPT_TRUNCATED,
                provider=s.provider,
                request_id=s.request_id,
                sent_tokens_estimate=s.prompt_estimate,
                counted_tokens=counted,
                hint="the backend's context window is smaller than the prompt: raise it "
                "(Ollama: OLLAMA_CONTEXT_LENGTH or num_ctx; llama.cpp: -c) or declare it "
                "(capabilities: {max_context_tokens: N}); profiles pass it over for prompts "
                "as long for 10 minutes after each cut (longer if it keeps cutting them), "
                "unless their context_action is off",
            )
