"""What `ctl status` answers, read from the running daemon (no side effects)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import msgspec

from coderouterd import __version__
from coderouterd.ctl.model import (
    AutoPlacement,
    AutoRouterStatus,
    AutoRuleStatus,
    BudgetStatus,
    DriftStatus,
    HealingStatus,
    MemoryStatus,
    MemoStatus,
    PaceStatus,
    ProviderStatus,
    SlotStatus,
    StateStatus,
    StatusReply,
    WindowStatus,
)
from coderouterd.healing.drift import shown
from coderouterd.routing.cost import month_of
from coderouterd.runtime import Runtime
from coderouterd.scrub import masked_url
from coderouterd.telemetry.memory import peak_rss_bytes, rss_bytes

if TYPE_CHECKING:
    from coderouterd.daemon import Daemon


def status_of(daemon: Daemon) -> StatusReply:
    """What `ctl status` answers."""
    # Drift verdicts are judged from the summaries queued so far.
    daemon.deferred.flush()
    runtime = daemon.holder.current
    return StatusReply(
        version=__version__,
        pid=os.getpid(),
        uptime_s=round(daemon.clock.monotonic() - daemon.started_mono, 3),
        listen=daemon.listen,
        config_path=runtime.loaded.path,
        config_digest=runtime.loaded.digest,
        default_profile=runtime.config.default_shown,
        providers=tuple(_provider(daemon, runtime, p.name) for p in runtime.config.providers),
        in_flight=daemon.inflight.snapshot(),
        budgets=_budgets(daemon, runtime),
        state=_state(daemon),
        memory=_memory(daemon),
        auto_router=_auto_router(daemon, runtime),
    )


def _auto_router(daemon: Daemon, runtime: Runtime) -> AutoRouterStatus | None:
    router = runtime.auto_router
    if router is None:
        return None
    counts = daemon.auto_matches
    default = router.config.default_rule_profile
    return AutoRouterStatus(
        disabled=router.config.disabled,
        rules=tuple(
            AutoRuleStatus(id=r.id, profile=r.profile, matched=counts[(r.id, r.profile)])
            for r in router.rules
        ),
        default_rule_profile=default,
        unmatched=counts[("", default)],
        placed=tuple(
            AutoPlacement(rule=rule, profile=profile, requests=n)
            for (rule, profile), n in sorted(counts.items())
        ),
    )


def _memory(daemon: Daemon) -> MemoryStatus:
    sizes = {"request bodies": daemon.bodies.size()}
    if daemon.state is not None:
        sizes.update(daemon.state.replays.memo_sizes())
    now = rss_bytes()
    return MemoryStatus(
        rss_bytes=now,
        # The kernel updates the peak lazily: it may trail the current size.
        peak_rss_bytes=max(peak_rss_bytes(), now or 0),
        memos=tuple(
            MemoStatus(name=name, conversations=n, bytes=size) for name, (n, size) in sizes.items()
        ),
    )


def _budgets(daemon: Daemon, runtime: Runtime) -> tuple[BudgetStatus, ...]:
    month = month_of(daemon.clock.wall())
    out = []
    for p in runtime.config.providers:
        if p.cost is None:
            continue
        spent = daemon.budget.spent(p.name, month)
        cap = p.cost.monthly_budget_usd
        out.append(
            BudgetStatus(
                provider=p.name,
                month=month,
                spent_usd=round(spent, 6),
                budget_usd=cap,
                percent=_percent(spent, cap),
                blocked=daemon.budget.exhausted(p, month),
            )
        )
    return tuple(out)


def _percent(spent: float, cap: float | None) -> float | None:
    """The share of the budget spent; a budget of 0 is spent from the start."""
    if cap is None:
        return None
    return round(100 * spent / cap, 1) if cap else 100.0


def _state(daemon: Daemon) -> StateStatus | None:
    if daemon.state is None:
        return None
    return StateStatus(**msgspec.structs.asdict(daemon.state.stats()))


def _provider(daemon: Daemon, runtime: Runtime, name: str) -> ProviderStatus:
    p = runtime.config.provider(name)
    assert p is not None
    st = daemon.board.get(name)
    unavailable = runtime.unavailable_for("anthropic").get(name)
    healing = _healing(daemon, name)
    if unavailable:
        state = f"unavailable ({unavailable})"
    elif healing.excluded:
        state = f"excluded ({healing.reason})"
    else:
        state = st.state
    return ProviderStatus(
        name=name,
        kind=p.kind,
        model=p.model,
        # A password in the URL is a credential: status goes into tickets.
        base_url=masked_url(p.base_url),
        paid=p.paid,
        state=state,
        last_outcome=st.last_outcome,
        last_status=st.last_status,
        last_change_wall=st.last_change_wall,
        last_attempt_wall=st.last_attempt_wall,
        consecutive_failures=st.consecutive_failures,
        tool_call_repairs=st.repairs,
        auth_rejected=st.auth_rejected,
        healing=healing,
        drift=_drift(daemon, name),
        prompts_truncated=daemon.truncation.counts[name],
        pace=_pace(daemon, name),
        context_window=_window(daemon, name),
        slots=_slots(daemon, name),
    )


def _slots(daemon: Daemon, name: str) -> SlotStatus | None:
    gate = daemon.slots.gate(name)
    if gate is None:
        return None
    return SlotStatus(limit=gate.limit, in_use=gate.in_use, waiting=gate.waiting)


def _window(daemon: Daemon, name: str) -> WindowStatus | None:
    learned = daemon.windows.learned(name)
    if learned is None:
        return None
    told, age = learned
    return WindowStatus(
        window=told.window,
        prompt_limit=told.limit,
        learned_s_ago=round(age, 1),
        forgotten_in_s=round(told.hold_s - age, 1),
        cut=told.cut,
    )


def _pace(daemon: Daemon, name: str) -> PaceStatus | None:
    judged = daemon.pace.pace(name)
    if judged is None:
        return None
    pace, left = judged
    return PaceStatus(
        usual_tokens_per_s=None if pace.usual is None else round(pace.usual, 1),
        recent_tokens_per_s=None if pace.recent is None else round(pace.recent, 1),
        answers=pace.answers,
        slow=pace.slow,
        demoted_for_s=None if left is None else round(left, 1),
    )


def _drift(daemon: Daemon, name: str) -> DriftStatus | None:
    judged = daemon.drift.verdict(name)
    if judged is None:
        return None
    verdict, outcomes = judged
    return DriftStatus(
        severity=verdict.severity,
        outcomes=outcomes,
        reason=verdict.reason,
        signals=shown(verdict.signals),
        demoted_for_s=None if (left := daemon.drift.demoted_for(name)) is None else round(left, 1),
    )


def _healing(daemon: Daemon, name: str) -> HealingStatus:
    book = daemon.healing.book
    h = book.health(name)
    ex = h.excluded
    due = None if ex is None or ex.next_probe is None else ex.next_probe
    return HealingStatus(
        threshold=book.threshold(name),
        excluded=ex is not None,
        reason=None if ex is None else ex.reason,
        since_wall=None if ex is None else ex.since_wall,
        next_probe_in_s=None if due is None else round(max(0.0, due - daemon.clock.monotonic()), 3),
        probes_failed=0 if ex is None else ex.probes_failed,
        until_wall=None if ex is None else ex.until_wall,
        ends_in_s=None
        if ex is None or ex.until_mono is None
        else round(max(0.0, ex.until_mono - daemon.clock.monotonic()), 3),
        last_probe_wall=h.last_probe_wall,
        last_probe_ok=h.last_probe_ok,
        last_probe_latency_ms=h.last_probe_latency_ms,
        restarts=h.restarts,
        restart_running=h.restarting,
    )
