"""The request log: what each finished request leaves in the database.

`RequestRecorder` is an engine observer: for every summary it computes the
cost, adds it to the budget of the month the request arrived in (in memory,
at once, so the next plan sees it), and hands the request row together with
its budget increment (one record), and any budget threshold crossed, to the
writer, without awaiting.
`pricing` names the provider's config: the current one, or the last one of a
provider a reload took out while the request ran (daemon.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from coderouterd.clock import Clock
from coderouterd.config.model import Config, ProviderConfig
from coderouterd.routing.budget import BudgetBook, budget_of, passed
from coderouterd.routing.cost import cache_outcome, cost_of, month_of
from coderouterd.routing.records import BaseObserver, RequestSummary
from coderouterd.state.records import (
    AttemptRow,
    AuditEvent,
    BudgetIncrement,
    FinishedRequest,
    RequestRow,
)
from coderouterd.state.writer import Writer

BUDGET_THRESHOLD = "budget.threshold_crossed"

Pricing = Callable[[str], ProviderConfig | None]


class RequestRecorder(BaseObserver):
    def __init__(
        self,
        writer: Writer,
        budget: BudgetBook,
        clock: Clock,
        pricing: Pricing,
        *,
        on_unwritten: Callable[[str], None] | None = None,
    ) -> None:
        self._writer = writer
        self._budget = budget
        self._clock = clock
        self._pricing = pricing
        # Told the id of each request whose row the writer refused.
        self._on_unwritten = on_unwritten or _ignore

    def request_finished(self, summary: RequestSummary) -> None:
        now = self._clock.wall()
        provider = self._pricing(summary.provider) if summary.provider else None
        price = provider.cost if provider else None
        cost = cost_of(summary.usage, price) if summary.usage and price else None
        # Counts no backend can mean (more cached tokens than prompt tokens,
        # negative ones) price below 0: that would lower the month's spend.
        cost_usd = max(cost.cost_usd, 0.0) if cost else None
        row = _request_row(summary, now, cost_usd, cost.savings_usd if cost else None)
        if cost_usd is None or provider is None or price is None:
            self._submit(FinishedRequest(row=row))
            return
        # The month the row is filed under (`usage`, `requests --since`), whose
        # budget let the request in: one answered after midnight on the last
        # day is still that month's spend.
        month = month_of(row.ts)
        # The book counts the spend even if the writer drops the record: it is
        # what keeps the budget from being overrun. The drop itself is counted
        # by the writer; only a restart then forgets the spend.
        crossed = self._budget.add(provider.name, month, cost_usd, price.monthly_budget_usd)
        usage = summary.usage
        spend = BudgetIncrement(
            provider=provider.name,
            month=month,
            cost_usd=cost_usd,
            input_tokens=(usage.input_tokens or 0) if usage else 0,
            output_tokens=(usage.output_tokens or 0) if usage else 0,
        )
        self._submit(FinishedRequest(row=row, spend=spend))
        for event in threshold_events(self._budget, provider, month, crossed, now):
            self._writer.submit(event)

    def _submit(self, finished: FinishedRequest) -> None:
        if not self._writer.submit(finished):
            self._on_unwritten(finished.row.id)


def threshold_events(
    book: BudgetBook, provider: ProviderConfig, month: str, crossed: list[int], now: float
) -> list[AuditEvent]:
    """The `budget.threshold_crossed` audit events of the thresholds (percent
    of the provider's budget) its month's spend has just crossed, but for
    those of that budget the book holds as audited for that month already.
    Every threshold event goes through here, so that the book knows it audited."""
    budget = budget_of(provider)
    if budget is None:
        return []
    return [
        AuditEvent(
            ts=now,
            event=BUDGET_THRESHOLD,
            fields={
                "provider": provider.name,
                "month": month,
                "percent": percent,
                "spent_usd": round(book.spent(provider.name, month), 6),
                "budget_usd": budget,
            },
        )
        for percent in book.audit(provider.name, month, budget, crossed)
    ]


def rebudget_events(
    book: BudgetBook, before: Mapping[str, ProviderConfig], new: Config, now: float
) -> list[AuditEvent]:
    """The threshold events of a reload: those this month's spend passes under
    the `new` config's budgets and did not under the ones `before` it (each
    provider's config then or, for one an earlier reload took out, its last
    one: put back with the budget it had, it has crossed nothing), unless
    the month has audited them under that budget already (a budget raised,
    then put back)."""
    month = month_of(now)
    events: list[AuditEvent] = []
    for p in new.providers:
        last = before.get(p.name)
        was = budget_of(last) if last is not None else None
        crossed = book.rebudgeted(p.name, month, was, budget_of(p))
        events += threshold_events(book, p, month, crossed, now)
    return events


def start_events(book: BudgetBook, config: Config, month: str, now: float) -> list[AuditEvent]:
    """The threshold events of a start: those the month's spend, as loaded,
    passes under the config's budgets and the month's audit log, which the
    book was loaded with, does not hold yet. A budget lowered under the spend
    while the daemon was stopped is audited as at a reload; under an
    unchanged one, each threshold passed was audited as it was crossed."""
    events: list[AuditEvent] = []
    for p in config.providers:
        events += threshold_events(
            book, p, month, passed(book.spent(p.name, month), budget_of(p)), now
        )
    return events


def arrived(now: float, total_ms: float) -> float:
    """When a request arrived (wall clock), from the time it finished (`now`)
    and how long it took: what its row, and its replay record, are filed under."""
    return now - total_ms / 1000


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
            context_window=a.context_window,
            prompt_tokens=a.prompt_tokens,
            queued_ms=a.queued_ms,
            model=a.model,
            prompt_estimate=a.prompt_estimate,
        )
        for i, a in enumerate(s.attempts)
    )
    return RequestRow(
        id=s.request_id,
        ts=arrived(now, s.total_ms),
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
        stop_reason=s.stop_reason,
        tool_use=s.tool_use,
        tools_offered=s.tools_offered,
        prompt_estimate=s.prompt_estimate or None,
        prompt_images=s.prompt_images or None,
        prompt_image_tokens=s.prompt_image_tokens or None,
        attempts=attempts,
    )


def _ignore(request_id: str) -> None:
    pass
