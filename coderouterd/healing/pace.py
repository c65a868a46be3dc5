"""Pace: a backend that answers, but far slower than it usually does (pure).

A local server whose model no longer fits its GPU (another model loaded
beside it, a longer context) moves layers to the CPU and keeps answering at
a fraction of its speed; so does one sharing its GPU with another job.
Nothing fails, so neither self-healing nor drift sees it. Its decoding
speed shows it: the output tokens of a streamed answer over the time from
its first content to its end. Unlike the time to the first byte, which
grows with the prompt and falls with a prompt cache, a model's decoding
speed on one machine is steady, so each provider is compared with itself:

- its usual speed: the median of its last USUAL streamed answers;
- its recent speed: the median of its last RECENT.

A provider whose recent speed is below its usual speed divided by SLOWER
(once USUAL_MIN answers make a usual speed) is slow. Answers shorter than
MIN_TOKENS, or decoded in under MIN_DECODE_S, say little of a speed and are
not counted. A slow provider stays slow until answers at its usual speed
bring its recent median back; meanwhile profiles with `adaptive: true` try
it after the provider that follows it (pace_watch.py), for DEMOTE_S after
each slow answer (one itself below the usual speed divided by SLOWER), so
one request in DEMOTE_S finds out whether it is back.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from statistics import median

USUAL = 200
USUAL_MIN = 20
RECENT = 5
SLOWER = 1.5
MIN_TOKENS = 32
MIN_DECODE_S = 0.05
DEMOTE_S = 600.0


def decode_rate(
    output_tokens: int | None, ttfb_ms: float | None, latency_ms: float | None
) -> float | None:
    """Tokens a second from an answer's first content to its end; None when
    the answer is too short to say."""
    if output_tokens is None or ttfb_ms is None or latency_ms is None:
        return None
    seconds = (latency_ms - ttfb_ms) / 1000
    if output_tokens < MIN_TOKENS or seconds < MIN_DECODE_S:
        return None
    return output_tokens / seconds


@dataclass(frozen=True, slots=True)
class Pace:
    """A provider's speeds in tokens a second (None: not enough answers yet)."""

    usual: float | None
    recent: float | None
    answers: int

    @property
    def slow(self) -> bool:
        return self.recent is not None and self.slower(self.recent)

    def slower(self, rate: float) -> bool:
        """Whether `rate` is below the usual speed divided by SLOWER: a slow
        answer, or a slow median of them."""
        return self.usual is not None and rate * SLOWER < self.usual


class Speeds:
    """One provider's last USUAL decoding speeds, oldest first."""

    __slots__ = ("_rates",)

    def __init__(self, rates: Iterable[float] = ()) -> None:
        self._rates: deque[float] = deque(rates, maxlen=USUAL)

    def add(self, rate: float) -> None:
        self._rates.append(rate)

    def __len__(self) -> int:
        return len(self._rates)

    def pace(self) -> Pace:
        n = len(self._rates)
        usual = median(self._rates) if n >= USUAL_MIN else None
        recent = median(list(self._rates)[-RECENT:]) if n >= RECENT else None
        return Pace(usual, recent, n)
