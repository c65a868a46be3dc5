"""What GET /metrics answers: the request counters, then `ctl status` as gauges.

Counters come from the MetricsBook (every request's summary, handed over
in batches); everything that is a state rather than a count is read from
the same `ctl status` reply an operator sees, so the two never disagree.
Whether a provider fails is read from the board itself: the status state
shows an exclusion in its place, and an exclusion does not end a failure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from coderouterd.ctl.model import ProviderStatus
from coderouterd.healing.decisions import UNHEALTHY
from coderouterd.status import status_of
from coderouterd.telemetry.logging import dropped_lines
from coderouterd.telemetry.metrics import Exposition

if TYPE_CHECKING:
    from coderouterd.daemon import Daemon

_SEVERITY = {"none": 0, "mild": 1, "severe": 2}


def render_metrics(daemon: Daemon) -> str:
    daemon.deferred.flush()
    book = daemon.metrics
    out = Exposition()
    out.counter(
        "requests",
        "Requests finished, by client dialect, profile and status (499: the client left).",
        (({"dialect": d, "profile": p, "status": s}, n) for (d, p, s), n in book.requests.items()),
    )
    out.counter(
        "attempts",
        "Attempts at a provider, by outcome "
        "(ok, failed, returned, refused, too_long, interrupted, skipped).",
        (({"provider": p, "outcome": o}, n) for (p, o), n in book.attempts.items()),
    )
    out.counter(
        "attempt_failures",
        "Failed attempts, by reason (connect_error, timeout_first_byte, http_503, ...).",
        (({"provider": p, "reason": r}, n) for (p, r), n in book.failures.items()),
    )
    out.counter(
        "tokens",
        "Tokens of answered requests, by kind (input, output, cache_read, cache_creation).",
        (({"provider": p, "kind": k}, n) for (p, k), n in book.tokens.items()),
    )
    out.counter(
        "cache_outcomes",
        "Answered requests by prompt-cache outcome (hit, creation, none, unknown).",
        (({"provider": p, "outcome": o}, n) for (p, o), n in book.cache.items()),
    )
    out.counter(
        "cost_usd",
        "Cost of answered requests at the provider's prices (providers with a cost block).",
        (({"provider": p}, v) for p, v in book.cost_usd.items()),
    )
    out.counter(
        "cache_savings_usd",
        "What cache reads and writes saved against the full input price.",
        (({"provider": p}, v) for p, v in book.savings_usd.items()),
    )
    out.counter(
        "tool_call_repairs",
        "Tool calls lifted out of a model's text into real tool calls.",
        (({"provider": p}, n) for p, n in book.repairs.items()),
    )
    out.counter(
        "prompts_truncated",
        "Prompts a backend read far less of than it was sent (its context window is smaller).",
        (({"provider": p}, n) for p, n in daemon.truncation.counts.items()),
    )
    out.counter(
        "log_lines_dropped",
        "Log lines not written: the log's reader went away (EPIPE, EIO) or its disk is full.",
        [({}, dropped_lines())],
    )
    out.histogram(
        "time_to_first_byte_seconds",
        "The answering attempt's time to its first byte.",
        "provider",
        book.ttfb,
    )
    out.histogram(
        "attempt_duration_seconds",
        "The answering attempt's time from its start to its end.",
        "provider",
        book.latency,
    )
    _gauges(daemon, out)
    return out.text()


def _gauges(daemon: Daemon, out: Exposition) -> None:
    status = status_of(daemon)
    out.gauge("uptime_seconds", "Seconds since the daemon started.", [({}, status.uptime_s)])
    out.gauge("in_flight_requests", "Requests being served now.", [({}, len(status.in_flight))])
    providers = status.providers
    out.gauge(
        "provider_failing",
        "1 while a provider's last attempts failed (ctl status: failing), or it is"
        " excluded as unhealthy and not yet back.",
        (({"provider": p.name}, int(_failing(daemon, p))) for p in providers),
    )
    out.gauge(
        "provider_excluded",
        "1 while a provider is out of rotation (unhealthy, memory_pressure or manual).",
        (
            ({"provider": p.name, "reason": p.healing.reason or ""}, int(p.healing.excluded))
            for p in providers
        ),
    )
    out.gauge(
        "provider_drift",
        "A watched provider's drift: 0 none, 1 mild, 2 severe.",
        (({"provider": p.name}, _SEVERITY[p.drift.severity]) for p in providers if p.drift),
    )
    out.gauge(
        "provider_slow",
        "1 while a provider an adaptive profile lists decodes far slower than usual.",
        (({"provider": p.name}, int(p.pace.slow)) for p in providers if p.pace),
    )
    out.gauge(
        "provider_decode_tokens_per_second",
        "A watched provider's recent decoding speed (median of its last streamed answers).",
        (
            ({"provider": p.name}, p.pace.recent_tokens_per_s)
            for p in providers
            if p.pace and p.pace.recent_tokens_per_s is not None
        ),
    )
    out.gauge(
        "provider_slots_in_use",
        "Requests a provider with a max_concurrent is answering now.",
        (({"provider": p.name}, p.slots.in_use) for p in providers if p.slots),
    )
    out.gauge(
        "provider_slots_waiting",
        "Requests waiting for a slot of a provider with a max_concurrent.",
        (({"provider": p.name}, p.slots.waiting) for p in providers if p.slots),
    )
    out.gauge(
        "provider_context_limit_tokens",
        "The prompt estimate a provider's backend showed it cannot take (its overflow "
        "error, or a prompt it cut), while that is held.",
        (
            ({"provider": p.name}, w.prompt_limit)
            for p in providers
            if (w := p.context_window) is not None
        ),
    )
    out.gauge(
        "spend_usd",
        "Spend this UTC month, per provider with a cost block.",
        (({"provider": b.provider, "month": b.month}, b.spent_usd) for b in status.budgets),
    )
    out.gauge(
        "budget_usd",
        "Monthly budget, per provider that has one.",
        (
            ({"provider": b.provider}, b.budget_usd)
            for b in status.budgets
            if b.budget_usd is not None
        ),
    )
    if status.auto_router is not None:
        auto = status.auto_router
        placed = {(p.rule, p.profile): p.requests for p in auto.placed}
        # The rules in force at 0 until they place a request, so each series exists.
        for r in auto.rules:
            placed.setdefault((r.id, r.profile), 0)
        placed.setdefault(("", auto.default_rule_profile), 0)
        rows = [({"rule": rule, "profile": profile}, n) for (rule, profile), n in placed.items()]
        out.counter("auto_router_requests", "Requests the auto router placed, by rule.", rows)
    if status.state is not None:
        st = status.state
        out.gauge(
            "state_queue_depth", "Records waiting for the database writer.", [({}, st.queue_depth)]
        )
        out.counter(
            "state_rows_written", "Rows committed to the database.", [({}, st.committed_rows)]
        )
        out.counter(
            "state_rows_lost",
            "Records not stored: dropped on a full queue, or lost with a failed batch.",
            [({"why": "queue_full"}, st.dropped), ({"why": "write_failed"}, st.failed_rows)],
        )
    if status.memory is not None and status.memory.rss_bytes is not None:
        out.gauge(
            "resident_memory_bytes",
            "Resident memory of the daemon.",
            [({}, status.memory.rss_bytes)],
        )


def _failing(daemon: Daemon, p: ProviderStatus) -> bool:
    # The board's own state: the status state reads "excluded (...)" while
    # a provider is out of rotation, and being out (a memory-pressure
    # cooldown, `ctl exclude`) fixes nothing. An exclusion as unhealthy
    # counts too, so an alert on failing does not resolve the moment
    # self-healing judges the backend broken.
    failing = daemon.board.get(p.name).state == "failing"
    return failing or (p.healing.excluded and p.healing.reason == UNHEALTHY)
