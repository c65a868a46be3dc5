"""Terminal renderings of control replies: values in, text out."""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from coderouterd.ctl.model import (
    AutoRouterStatus,
    BudgetStatus,
    HealingStatus,
    InFlight,
    MemoryStatus,
    ProviderActionReply,
    ProviderStatus,
    ReloadReply,
    StateStatus,
    StatusReply,
)
from coderouterd.healing.decisions import UNHEALTHY

_MISSING = "-"

_PROVIDER_HEADER = (
    "NAME",
    "KIND",
    "MODEL",
    "STATE",
    "LAST OUTCOME",
    "STATUS",
    "FAILS",
    "REPAIRS",
    "PAID",
)
_BUDGET_HEADER = ("PROVIDER", "MONTH", "SPENT USD", "BUDGET USD", "USED", "BLOCKED")
_IN_FLIGHT_HEADER = ("REQUEST", "DIALECT", "PROFILE", "PROVIDER", "STREAM", "AGE")


def format_duration(seconds: float) -> str:
    """Two most significant units, fixed width for the second: "2h 03m", "5m 07s", "3.4s"."""
    seconds = max(seconds, 0.0)
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def render_status(reply: StatusReply) -> str:
    lines = [
        f"coderouterd {reply.version}  pid {reply.pid}  up {format_duration(reply.uptime_s)}",
        f"listen           {reply.listen}",
        f"config           {reply.config_path or '(none)'}",
        f"config digest    {reply.config_digest}",
        f"default profile  {reply.default_profile}",
        "",
        f"providers ({len(reply.providers)})",
        *_indent(_providers_table(reply.providers)),
        "",
        f"in flight ({len(reply.in_flight)})",
        *_indent(_in_flight_table(reply.in_flight)),
    ]
    if reply.budgets:
        lines += ["", "spend this month", *_indent(_budget_table(reply.budgets))]
    if reply.auto_router is not None:
        lines += ["", "auto router", *_indent(_auto_lines(reply.auto_router))]
    lines += ["", "database", *_indent(_state_lines(reply.state))]
    if reply.memory is not None:
        lines += ["", "memory", *_indent(_memory_lines(reply.memory))]
    return "\n".join(lines)


def _auto_lines(auto: AutoRouterStatus) -> list[str]:
    rows = [(f"rule {r.id}", f"-> {r.profile}  {r.matched} matched") for r in auto.rules]
    rows.append(("no rule matched", f"-> {auto.default_rule_profile}  {auto.unmatched}"))
    width = max(len(name) for name, _ in rows)
    head = ["disabled: every request goes to the default rule profile"] if auto.disabled else []
    return head + [f"{name.ljust(width)}  {value}" for name, value in rows]


def _memory_lines(memory: MemoryStatus) -> list[str]:
    now = _MISSING if memory.rss_bytes is None else format_bytes(memory.rss_bytes)
    rows = [("resident", f"{now} (peak {format_bytes(memory.peak_rss_bytes)})")]
    rows += [
        (
            m.name,
            f"{m.conversations} conversation{'' if m.conversations == 1 else 's'}, "
            f"{format_bytes(m.bytes)}",
        )
        for m in memory.memos
    ]
    width = max(len(name) for name, _ in rows)
    return [f"{name.ljust(width)}  {value}" for name, value in rows]


def render_reload(reply: ReloadReply) -> str:
    if reply.ok:
        lines = [f"reloaded: config digest {reply.config_digest}"]
        if reply.restart_required:
            lines.append("these settings take effect only after a restart:")
            lines.extend(f"  - {setting}" for setting in reply.restart_required)
        return "\n".join(lines)
    lines = [
        f"reload rejected; still running config digest {reply.config_digest}",
        f"{len(reply.problems)} problem(s):" if reply.problems else "no problems were reported",
    ]
    lines.extend(f"  - {problem}" for problem in reply.problems)
    return "\n".join(lines)


def render_provider_action(reply: ProviderActionReply) -> str:
    return f"{reply.provider}: {reply.message}"


def _providers_table(providers: Sequence[ProviderStatus]) -> list[str]:
    if not providers:
        return ["none"]
    rows = [
        (
            p.name,
            p.kind,
            p.model,
            _state(p),
            _or_missing(p.last_outcome),
            _or_missing(p.last_status),
            str(p.consecutive_failures),
            str(p.tool_call_repairs),
            "yes" if p.paid else "no",
        )
        for p in providers
    ]
    return render_table(_PROVIDER_HEADER, rows)


def _state(p: ProviderStatus) -> str:
    state = f"{p.state}, key rejected" if p.auth_rejected else p.state
    state += _exclusion(p.healing)
    if (slots := p.slots) is not None and (slots.in_use or slots.waiting):
        state += f", {slots.in_use}/{slots.limit} slots busy"
        if slots.waiting:
            state += f", {slots.waiting} waiting"
    if p.prompts_truncated:
        state += f", {p.prompts_truncated} prompt(s) cut by its context window"
    state += _answers(p)
    if (w := p.context_window) is not None:
        named = f"window {w.window} tokens" if w.window is not None else "its window"
        told = (
            f"cut a prompt to {w.prompt_limit} tokens" if w.cut else f"prompt too long for {named}"
        )
        state += (
            f", {told} {format_duration(w.learned_s_ago)} ago "
            f"(over ~{w.prompt_limit} tokens skipped for {format_duration(w.forgotten_in_s)} "
            "unless context_action: off)"
        )
    return state


def _exclusion(h: HealingStatus) -> str:
    if not h.excluded:
        return ""
    shown = ""
    if h.ends_in_s is not None:
        shown += f", for {format_duration(h.ends_in_s)}"
    if h.restart_running:
        shown += ", restarting"
    elif h.next_probe_in_s is not None:
        shown += f", probe in {format_duration(h.next_probe_in_s)}"
    elif h.reason == UNHEALTHY:
        # Probed until restored: with no restart running and no probe to
        # come, one is out.
        shown += ", probing"
    if h.probes_failed:
        shown += f", {h.probes_failed} probe(s) failed"
    return shown


def _answers(p: ProviderStatus) -> str:
    """What its answers tell: drift and pace."""
    shown = ""
    if p.drift is not None and p.drift.severity != "none":
        shown += f", drifting ({p.drift.severity}: {p.drift.reason})"
        if p.drift.demoted_for_s is not None:
            shown += f", tried last for {format_duration(p.drift.demoted_for_s)}"
    if p.pace is not None and p.pace.slow:
        shown += (
            f", slow ({p.pace.recent_tokens_per_s:g} tokens/s, usually "
            f"{p.pace.usual_tokens_per_s:g})"
        )
        if p.pace.demoted_for_s is not None:
            shown += f", tried later for {format_duration(p.pace.demoted_for_s)}"
    return shown


def _budget_table(budgets: Sequence[BudgetStatus]) -> list[str]:
    rows = [
        (
            b.provider,
            b.month,
            f"{b.spent_usd:.4f}",
            _MISSING if b.budget_usd is None else f"{b.budget_usd:.2f}",
            _MISSING if b.percent is None else f"{b.percent:.1f}%",
            "yes" if b.blocked else "no",
        )
        for b in budgets
    ]
    return render_table(_BUDGET_HEADER, rows)


def _state_lines(state: StateStatus | None) -> list[str]:
    if state is None:
        return ["not open (no state is kept)"]
    last = (
        "never"
        if state.last_commit_wall is None
        else datetime.datetime.fromtimestamp(state.last_commit_wall, datetime.UTC).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
    )
    lines = [
        f"path           {state.path}",
        f"size           {format_bytes(state.size_bytes)}",
        f"last commit    {last}",
        f"queue depth    {state.queue_depth}",
        f"rows written   {state.committed_rows}",
        f"rows dropped   {state.dropped} (queue full)  {state.failed_rows} (write failed)",
    ]
    if state.requests_renamed:
        lines.append(f"ids reused     {state.requests_renamed} (stored with a suffix)")
    if state.replays_dropped or state.replays_too_large or state.replays_orphaned:
        lines.append(
            f"replays lost   {state.replays_dropped} (queue full)  "
            f"{state.replays_too_large} (over max_record_kb)  "
            f"{state.replays_orphaned} (request row, base record or piece missing)"
        )
    return lines


def format_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _in_flight_table(requests: Sequence[InFlight]) -> list[str]:
    if not requests:
        return ["none"]
    rows = [
        (
            r.request_id,
            r.dialect,
            r.profile,
            "waiting for a slot: " + ", ".join(r.waiting_for)
            if r.waiting_for
            else _or_missing(r.provider),
            "yes" if r.stream else "no",
            format_duration(r.age_s),
        )
        for r in requests
    ]
    return render_table(_IN_FLIGHT_HEADER, rows)


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns two spaces apart, without trailing blanks."""
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    ]


def _indent(lines: Sequence[str]) -> list[str]:
    return [f"  {line}" for line in lines]


def _or_missing(value: str | int | None) -> str:
    return _MISSING if value is None else str(value)
