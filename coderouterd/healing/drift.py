"""Quality drift: a backend that still answers, but worse and worse (pure).

Self-healing sees a backend that fails; drift is one that succeeds while
its answers decay, as a local model does when its context overflows, its
KV cache is quantized too hard, or a server update breaks its chat
template: empty answers, answers that shrink, a model that stops calling
the tools it is offered, stop reasons no healthy model gives, errors
between the answers. Each provider's last `window` outcomes (answers and
failed attempts) are judged together:

- empty_response_rate (severe): the share of answers with 0 output tokens;
- length_collapse (severe, when below its threshold): the median output
  tokens of the newer half of the answers over the older half's;
- tool_silence_rate (mild): among answers to requests that offered tools
  (3 or more), the share that called none;
- stop_anomaly_rate (mild): the share of answers that stopped for another
  reason than end_turn, tool_use or max_tokens;
- error_rate (mild): the share of all outcomes that are failed attempts.

One severe signal, or two mild ones, make the verdict severe; one mild
signal, mild. Nothing is judged before the window holds `min_window_fill`
outcomes. Answers whose output tokens are unknown count for every signal
but the two about length.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["none", "mild", "severe"]
Sensitivity = Literal["low", "normal", "high"]

_NORMAL_STOPS = frozenset({"end_turn", "tool_use", "max_tokens"})
# Fewer answers than these say nothing of length or of tool use.
_MIN_LENGTHS = 4
_MIN_OFFERED = 3


@dataclass(frozen=True, slots=True)
class Thresholds:
    empty_response_rate: float
    stop_anomaly_rate: float
    error_rate: float
    tool_silence_rate: float
    length_collapse_ratio: float
    min_window_fill: int


PRESETS: dict[Sensitivity, Thresholds] = {
    "low": Thresholds(0.5, 0.6, 0.4, 0.8, 0.3, 10),
    "normal": Thresholds(0.3, 0.4, 0.25, 0.7, 0.5, 6),
    "high": Thresholds(0.2, 0.3, 0.15, 0.5, 0.7, 4),
}


@dataclass(frozen=True, slots=True)
class Outcome:
    """One answer of a provider, or one of its failed attempts (`error`)."""

    output_tokens: int | None = None
    stop_reason: str | None = None
    tool_use: bool = False
    tools_offered: bool = False
    error: bool = False


ERROR = Outcome(error=True)


@dataclass(frozen=True, slots=True)
class Verdict:
    severity: Severity = "none"
    # Each signal's value (rounded to 3 places); empty before the window fills.
    signals: dict[str, float] = field(default_factory=dict)
    # The signals past their thresholds, severe ones first.
    reason: str = ""


NO_DRIFT = Verdict()


def judge(window: Sequence[Outcome], t: Thresholds) -> Verdict:
    """The verdict on one provider's last outcomes, oldest first."""
    if len(window) < t.min_window_fill:
        return NO_DRIFT
    answers = [o for o in window if not o.error]
    signals: dict[str, float] = {}
    severe: list[str] = []
    mild: list[str] = []
    lengths = [o.output_tokens for o in answers if o.output_tokens is not None]
    if lengths:
        empty = sum(1 for n in lengths if n == 0) / len(lengths)
        signals["empty_response_rate"] = round(empty, 3)
        if empty > t.empty_response_rate:
            severe.append(f"empty_response_rate={empty:.2f}")
    if len(lengths) >= _MIN_LENGTHS:
        mid = len(lengths) // 2
        earlier, recent = statistics.median(lengths[:mid]), statistics.median(lengths[mid:])
        if earlier > 0:
            ratio = recent / earlier
            signals["length_collapse_ratio"] = round(ratio, 3)
            if ratio < t.length_collapse_ratio:
                severe.append(
                    f"length_collapse={ratio:.2f} (recent_median={recent:g}, earlier={earlier:g})"
                )
    offered = [o for o in answers if o.tools_offered]
    if len(offered) >= _MIN_OFFERED:
        silence = sum(1 for o in offered if not o.tool_use) / len(offered)
        signals["tool_silence_rate"] = round(silence, 3)
        if silence > t.tool_silence_rate:
            mild.append(f"tool_silence_rate={silence:.2f}")
    if answers:
        odd = sum(1 for o in answers if o.stop_reason not in _NORMAL_STOPS) / len(answers)
        signals["stop_anomaly_rate"] = round(odd, 3)
        if odd > t.stop_anomaly_rate:
            mild.append(f"stop_anomaly_rate={odd:.2f}")
    errors = (len(window) - len(answers)) / len(window)
    signals["error_rate"] = round(errors, 3)
    if errors > t.error_rate:
        mild.append(f"error_rate={errors:.2f}")
    severity: Severity = "severe" if severe or len(mild) >= 2 else "mild" if mild else "none"
    return Verdict(severity, signals, ", ".join(severe + mild))
