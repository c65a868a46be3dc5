"""What each finished request leaves in the database, built off the request path.

`RequestRecorder` is an engine observer: for every summary it computes the
cost, adds it to the month's budget (in memory, at once, so the next plan
sees it), and hands the request row, the budget increment and any budget
threshold crossed to the writer, without awaiting.

`ReplayRecorder` takes what the client sent and got back. Compressing an
80 KB body takes about a millisecond of CPU, so it happens in a worker
thread, fed by a bounded queue: the request path only appends to a deque.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import msgspec

from coderouterd.clock import Clock
from coderouterd.config.model import ProviderConfig
from coderouterd.routing.budget import BudgetBook
from coderouterd.routing.cost import cache_outcome, cost_of, month_of
from coderouterd.routing.records import BaseObserver, RequestSummary
from coderouterd.state.records import AttemptRow, AuditEvent, BudgetIncrement, ReplayRow, RequestRow
from coderouterd.state.replay import compress, redact_headers
from coderouterd.state.writer import Writer

BUDGET_THRESHOLD = "budget.threshold_crossed"

Pricing = Callable[[str], ProviderConfig | None]


class RequestRecorder(BaseObserver):
    def __init__(self, writer: Writer, budget: BudgetBook, clock: Clock, pricing: Pricing) -> None:
        self._writer = writer
        self._budget = budget
        self._clock = clock
        self._pricing = pricing

    def request_finished(self, summary: RequestSummary) -> None:
        now = self._clock.wall()
        provider = self._pricing(summary.provider) if summary.provider else None
        price = provider.cost if provider else None
        cost = cost_of(summary.usage, price) if summary.usage and price else None
        self._writer.submit(_request_row(summary, now, cost.cost_usd if cost else None,
                                         cost.savings_usd if cost else None))  # fmt: skip
        if cost is None or provider is None or price is None:
            return
        month = month_of(now)
        crossed = self._budget.add(provider.name, month, cost.cost_usd, price.monthly_budget_usd)
        usage = summary.usage
        self._writer.submit(
            BudgetIncrement(
                provider=provider.name,
                month=month,
                cost_usd=cost.cost_usd,
                input_tokens=(usage.input_tokens or 0) if usage else 0,
                output_tokens=(usage.output_tokens or 0) if usage else 0,
            )
        )
        for percent in crossed:
            fields = {
                "provider": provider.name,
                "month": month,
                "percent": percent,
                "spent_usd": round(self._budget.spent(provider.name, month), 6),
                "budget_usd": price.monthly_budget_usd,
            }
            self._writer.submit(AuditEvent(ts=now, event=BUDGET_THRESHOLD, fields=fields))


def _request_row(
    s: RequestSummary, now: float, cost: float | None, savings: float | None
) -> RequestRow:
    u = s.usage
    attempts = tuple(
        AttemptRow(
            seq=i,
            provider=a.provider,
            outcome=a.outcome,
            reason=a.reason,
            detail=a.detail,
            status=a.status,
            ttfb_ms=a.ttfb_ms,
            latency_ms=a.latency_ms,
            cost_usd=cost if a.provider == s.provider and a.outcome != "skipped" else None,
        )
        for i, a in enumerate(s.attempts)
    )
    return RequestRow(
        id=s.request_id,
        ts=now - s.total_ms / 1000,
        dialect=s.dialect,
        profile=s.profile,
        requested_model=s.requested_model,
        provider=s.provider,
        status=s.status,
        stream=s.stream,
        ttfb_ms=s.ttfb_ms,
        total_ms=s.total_ms,
        input_tokens=u.input_tokens if u else None,
        output_tokens=u.output_tokens if u else None,
        cache_creation_input_tokens=u.cache_creation_input_tokens if u else None,
        cache_read_input_tokens=u.cache_read_input_tokens if u else None,
        usage_estimated=s.usage_estimated,
        cost_usd=cost,
        savings_usd=savings,
        cache_outcome=cache_outcome(u, estimated=s.usage_estimated),
        repairs=s.repairs,
        error=s.error,
        client_disconnected=s.client_disconnected,
        attempts=attempts,
    )


@dataclass(frozen=True, slots=True)
class PendingReplay:
    """A replay record before compression."""

    request_id: str
    ts: float
    dialect: str
    profile: str
    provider: str | None
    stream: bool
    headers: Mapping[str, str]
    request_body: bytes
    response_body: bytes
    response_truncated: bool


class ReplayRecorder:
    def __init__(self, writer: Writer, *, max_record_bytes: int, max_queue: int = 256) -> None:
        self._writer = writer
        self.max_record_bytes = max_record_bytes
        self._max_queue = max_queue
        self._queue: collections.deque[PendingReplay] = collections.deque()
        self._wake = asyncio.Event()
        self.dropped = 0
        self.too_large = 0

    def submit(self, pending: PendingReplay) -> bool:
        if len(self._queue) >= self._max_queue:
            self.dropped += 1
            return False
        self._queue.append(pending)
        self._wake.set()
        return True

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.drain()

    async def drain(self) -> None:
        """Compress and hand to the writer everything queued now."""
        while self._queue:
            batch = list(self._queue)
            self._queue.clear()
            rows = await asyncio.to_thread(_compress_all, batch)
            for row in rows:
                if row.size > self.max_record_bytes:
                    self.too_large += 1
                elif not self._writer.submit(row):
                    self.dropped += 1


def _compress_all(batch: list[PendingReplay]) -> list[ReplayRow]:
    return [_compressed(p) for p in batch]


def _compressed(p: PendingReplay) -> ReplayRow:
    request = compress(p.request_body)
    response = compress(p.response_body)
    return ReplayRow(
        request_id=p.request_id,
        ts=p.ts,
        dialect=p.dialect,
        profile=p.profile,
        provider=p.provider,
        stream=p.stream,
        request_headers=msgspec.json.encode(redact_headers(p.headers)).decode(),
        request_body=request,
        response_body=response,
        response_truncated=p.response_truncated,
        size=len(request) + len(response),
    )
