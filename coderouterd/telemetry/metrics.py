"""Counters for /metrics, kept from request summaries, and Prometheus's text format (pure).

`MetricsBook.take` gets the summaries in batches (telemetry/deferred.py);
nothing is read back from log lines. A reload hands over the batch before
it swaps the config, so an answer is priced by the config it finished
under, as the request log prices it. Labels come from the config (provider,
profile) or from small fixed sets (dialect, status, outcome, reason), so
the number of series stays bounded.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from coderouterd.config.model import CostConfig, ProviderConfig
from coderouterd.routing.cost import cache_outcome, cost_of
from coderouterd.routing.records import RequestSummary
from coderouterd.wire.usage import Usage

# Seconds: a cached answer from a hosted model to a local model loading.
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
_TOKEN_KINDS = {
    "input": "input_tokens",
    "output": "output_tokens",
    "cache_read": "cache_read_input_tokens",
    "cache_creation": "cache_creation_input_tokens",
}

Labels = Mapping[str, str]


@dataclass(slots=True)
class Histogram:
    # Observations at or below each of BUCKETS (not cumulative), and above the last.
    counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    total: float = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.total += seconds


@dataclass(slots=True)
class MetricsBook:
    # The provider's config when its summaries are counted: its prices, the
    # ones in force when they finished (see above).
    pricing: Callable[[str], ProviderConfig | None] = lambda name: None
    requests: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    attempts: Counter[tuple[str, str]] = field(default_factory=Counter)
    failures: Counter[tuple[str, str]] = field(default_factory=Counter)
    tokens: Counter[tuple[str, str]] = field(default_factory=Counter)
    repairs: Counter[str] = field(default_factory=Counter)
    ttfb: dict[str, Histogram] = field(default_factory=dict)
    latency: dict[str, Histogram] = field(default_factory=dict)
    cache: Counter[tuple[str, str]] = field(default_factory=Counter)
    cost_usd: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    savings_usd: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))

    def take(self, summaries: Sequence[RequestSummary]) -> None:
        # Once a second over every summary since: kept lean.
        prices: dict[str, CostConfig | None] = {}
        for s in summaries:
            self.requests[s.dialect, s.profile, str(s.status)] += 1
            for a in s.attempts:
                self.attempts[a.provider, a.outcome] += 1
                if a.outcome == "failed":
                    self.failures[a.provider, a.reason or "unknown"] += 1
            provider = s.provider
            if provider is None or not s.attempts:
                continue
            answered = s.attempts[-1]
            if answered.ttfb_ms is not None:
                _histogram(self.ttfb, provider).observe(answered.ttfb_ms / 1000)
            if answered.latency_ms is not None:
                _histogram(self.latency, provider).observe(answered.latency_ms / 1000)
            if s.repairs:
                self.repairs[provider] += s.repairs
            self.cache[provider, cache_outcome(s.usage, estimated=s.usage_estimated)] += 1
            if s.usage is not None:
                if provider not in prices:
                    config = self.pricing(provider)
                    prices[provider] = config.cost if config is not None else None
                self._count_tokens(provider, s.usage, prices[provider])

    def _count_tokens(self, provider: str, usage: Usage, price: CostConfig | None) -> None:
        for kind, attr in _TOKEN_KINDS.items():
            if n := getattr(usage, attr):
                self.tokens[provider, kind] += n
        if price is not None:
            # As the request log prices it (state/request_recorder.py): never below 0.
            cost = cost_of(usage, price)
            self.cost_usd[provider] += max(cost.cost_usd, 0.0)
            self.savings_usd[provider] += cost.savings_usd


def _histogram(by: dict[str, Histogram], key: str) -> Histogram:
    h = by.get(key)
    if h is None:
        h = by[key] = Histogram()
    return h


class Exposition:
    """Prometheus text format 0.0.4: one HELP and TYPE per family, then its samples."""

    CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

    def __init__(self, prefix: str = "coderouterd_") -> None:
        self._prefix = prefix
        self._lines: list[str] = []

    def counter(self, name: str, help_text: str, samples: Iterable[tuple[Labels, float]]) -> None:
        self._family(f"{name}_total", "counter", help_text, samples)

    def gauge(self, name: str, help_text: str, samples: Iterable[tuple[Labels, float]]) -> None:
        self._family(name, "gauge", help_text, samples)

    def histogram(self, name: str, help_text: str, label: str, by: Mapping[str, Histogram]) -> None:
        full = self._prefix + name
        self._head(full, "histogram", help_text)
        for value, h in sorted(by.items()):
            running = 0
            for bound, n in zip((*BUCKETS, math.inf), h.counts, strict=True):
                running += n
                le = "+Inf" if bound == math.inf else repr(bound)
                self._sample(f"{full}_bucket", {label: value, "le": le}, running)
            self._sample(f"{full}_sum", {label: value}, h.total)
            self._sample(f"{full}_count", {label: value}, running)

    def text(self) -> str:
        return "\n".join(self._lines) + "\n"

    def _family(
        self, name: str, kind: str, help_text: str, samples: Iterable[tuple[Labels, float]]
    ) -> None:
        full = self._prefix + name
        self._head(full, kind, help_text)
        for labels, value in samples:
            self._sample(full, labels, value)

    def _head(self, full: str, kind: str, help_text: str) -> None:
        self._lines.append(f"# HELP {full} {_escape_help(help_text)}")
        self._lines.append(f"# TYPE {full} {kind}")

    def _sample(self, full: str, labels: Labels, value: float) -> None:
        if labels:
            inner = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels.items())
            full = f"{full}{{{inner}}}"
        self._lines.append(f"{full} {_number(value)}")


def _number(value: float) -> str:
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return str(int(value))
    return repr(float(value))


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")
