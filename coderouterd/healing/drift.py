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

A provider in severe drift that a `demote` profile tries last gets no
traffic there to show it has recovered, so it is tried in its place again
RETRY_S after the last outcome that looked bad on its own (`looks_bad`):
one good answer then sets its old outcomes aside (drift_watch.py).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["none", "mild", "severe"]
Sensitivity = Literal["low", "normal", "high"]

_NORMAL_STOPS = frozenset({"end_turn", "tool_use", "max_tokens"})
# How long a provider in severe drift is tried last after its last bad
# outcome: one request in this time finds out whether it is back.
RETRY_S = 600.0
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
    # Each signal's value; empty before the window fills.
    signals: dict[str, float] = field(default_factory=dict)
    # The signals past their thresholds, severe ones first.
    reason: str = ""


NO_DRIFT = Verdict()


class Window:
    """A provider's last outcomes, with what the signals count kept up to
    date as outcomes come and go: judging runs after every outcome of every
    watched provider, and must not walk the window each time."""

    __slots__ = ("_items", "_lengths", "answers", "empty", "odd", "offered", "silent")

    def __init__(self, size: int, outcomes: Iterable[Outcome] = ()) -> None:
        self._items: deque[Outcome] = deque(maxlen=size)
        # Output tokens of the answers that report them, oldest first.
        self._lengths: deque[int] = deque()
        self.answers = self.empty = self.odd = self.offered = self.silent = 0
        for o in outcomes:
            self.add(o)

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Outcome]:
        return iter(self._items)

    @property
    def lengths(self) -> list[int]:
        return list(self._lengths)

    def add(self, o: Outcome) -> None:
        if len(self._items) == self._items.maxlen:
            self._count(self._items[0], -1)
        self._items.append(o)
        self._count(o, 1)

    def _count(self, o: Outcome, step: int) -> None:
        if o.error:
            return
        self.answers += step
        if o.output_tokens is not None:
            if step > 0:
                self._lengths.append(o.output_tokens)
            else:
                self._lengths.popleft()
            self.empty += step * (o.output_tokens == 0)
        if o.tools_offered:
            self.offered += step
            self.silent += step * (not o.tool_use)
        self.odd += step * (o.stop_reason not in _NORMAL_STOPS)


def looks_bad(o: Outcome) -> bool:
    """An outcome that is drift on its own: a failure, an empty answer, or
    an odd stop. (Length and tool use only tell over many answers.)"""
    return o.error or o.output_tokens == 0 or o.stop_reason not in _NORMAL_STOPS


def judge(window: Window | Sequence[Outcome], t: Thresholds) -> Verdict:
    """The verdict on one provider's last outcomes, oldest first."""
    if len(window) < t.min_window_fill:
        return NO_DRIFT
    w = window if isinstance(window, Window) else Window(len(window), window)
    signals: dict[str, float] = {}
    severe: list[str] = []
    mild: list[str] = []
    lengths = w.lengths
    if lengths:
        rate = signals["empty_response_rate"] = w.empty / len(lengths)
        if rate > t.empty_response_rate:
            severe.append(f"empty_response_rate={rate:.2f}")
    if len(lengths) >= _MIN_LENGTHS:
        mid = len(lengths) // 2
        earlier, recent = _median(lengths[:mid]), _median(lengths[mid:])
        if earlier > 0:
            ratio = signals["length_collapse_ratio"] = recent / earlier
            if ratio < t.length_collapse_ratio:
                severe.append(
                    f"length_collapse={ratio:.2f} (recent_median={recent:g}, earlier={earlier:g})"
                )
    if w.offered >= _MIN_OFFERED:
        rate = signals["tool_silence_rate"] = w.silent / w.offered
        if rate > t.tool_silence_rate:
            mild.append(f"tool_silence_rate={rate:.2f}")
    if w.answers:
        rate = signals["stop_anomaly_rate"] = w.odd / w.answers
        if rate > t.stop_anomaly_rate:
            mild.append(f"stop_anomaly_rate={rate:.2f}")
    rate = signals["error_rate"] = (len(w) - w.answers) / len(w)
    if rate > t.error_rate:
        mild.append(f"error_rate={rate:.2f}")
    severity: Severity = "severe" if severe or len(mild) >= 2 else "mild" if mild else "none"
    return Verdict(severity, signals, ", ".join(severe + mild))


def shown(signals: dict[str, float]) -> dict[str, float]:
    """Signals as logs and `ctl status` show them: 3 decimal places."""
    return {k: round(v, 3) for k, v in signals.items()}


def _median(values: list[int]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return float(ordered[mid])
    return (ordered[mid - 1] + ordered[mid]) / 2
