"""Context windows learned from the backends' own overflow errors (pure, but for the clock).

A conversation only grows: once a backend has said its prompt does not fit,
every later turn would be refused too, each after a round trip (and, for a
local server, after tokenizing the whole prompt). A `context_action: skip`
profile skips a provider whose window is known to be smaller than the
prompt; this module makes the window known from the error itself.

What is learned is a limit on the daemon's own prompt estimate (four bytes
a token), so it compares with the next request's estimate directly: when
the backend gave its counts (`40960 tokens > 32768`), the estimate at which
that prompt would have just fit, `estimate * window / tokens`, which
calibrates the estimate to the backend's tokenizer; when it did not, just
below the estimate that did not fit.

A limit is forgotten `FORGET_S` after it was learned (a backend restarted
with a larger window gets its chance again; the first prompt too long for
it then teaches the limit again). The request log keeps each refusal with
the counts it named, so a daemon restarted within that time reads back
what it had learned (`load`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from coderouterd.clock import Clock
from coderouterd.routing.records import RequestSummary
from coderouterd.state.reads import Overflow

FORGET_S = 600.0


@dataclass(frozen=True, slots=True)
class Learned:
    # Prompt estimates above this do not fit.
    limit: int
    # The window the backend named, if it did.
    window: int | None
    at: float


def limit_of(estimate: int, tokens: int | None, window: int | None) -> int:
    """The largest prompt estimate that fits, from one that did not."""
    if tokens and window:
        return max(1, estimate * window // tokens)
    return max(1, estimate - 1)


class LearnedWindows:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._learned: dict[str, Learned] = {}

    def load(self, overflows: Iterable[Overflow]) -> None:
        """What the request log kept of each provider's latest refusal
        (reads.recent_overflows), placed on the monotonic clock by its age."""
        wall, now = self._clock.wall(), self._clock.monotonic()
        for o in overflows:
            at = now - max(0.0, wall - o.ts)
            if now - at < FORGET_S:
                limit = limit_of(o.prompt_estimate, o.prompt_tokens, o.context_window)
                self._learned[o.provider] = Learned(limit, o.context_window, at)

    def take(self, summaries: Sequence[RequestSummary]) -> None:
        """Learn from every attempt whose prompt did not fit (a Deferred consumer)."""
        now = self._clock.monotonic()
        for s in summaries:
            for a in s.attempts:
                if a.outcome == "too_long" and s.prompt_estimate:
                    limit = limit_of(s.prompt_estimate, a.prompt_tokens, a.context_window)
                    self._learned[a.provider] = Learned(limit, a.context_window, now)

    def limits(self, configured: Mapping[str, int]) -> Mapping[str, int]:
        """The configured windows, each lowered to a limit learned in the last
        FORGET_S; `configured` itself when nothing is learned (the usual case)."""
        if not self._learned:
            return configured
        now = self._clock.monotonic()
        self._learned = {p: w for p, w in self._learned.items() if now - w.at < FORGET_S}
        merged = dict(configured)
        for provider, learned in self._learned.items():
            merged[provider] = min(learned.limit, merged.get(provider, learned.limit))
        return merged

    def learned(self, provider: str) -> tuple[Learned, float] | None:
        """What was learned of `provider` and how long ago, while it holds."""
        learned = self._learned.get(provider)
        if learned is None:
            return None
        age = self._clock.monotonic() - learned.at
        return (learned, age) if age < FORGET_S else None
