"""What the control socket answers: typed replies shared by server and client."""

from __future__ import annotations

import msgspec


class HealingStatus(msgspec.Struct, frozen=True, kw_only=True):
    """What self-healing knows of a provider (healing/policy.py)."""

    # Excluded after 2 x this many consecutive failures; None: never excluded automatically.
    threshold: int | None = None
    excluded: bool = False
    reason: str | None = None
    since_wall: float | None = None
    # None while a restart_command runs (the probe waits for it) or a probe is
    # out, or not excluded.
    next_probe_in_s: float | None = None
    # When a cooldown (memory pressure) ends, and how soon.
    until_wall: float | None = None
    ends_in_s: float | None = None
    probes_failed: int = 0
    last_probe_wall: float | None = None
    last_probe_ok: bool | None = None
    last_probe_latency_ms: float | None = None
    # restart_command runs since start-up, and whether one runs now.
    restarts: int = 0
    restart_running: bool = False


class DriftStatus(msgspec.Struct, frozen=True, kw_only=True):
    """The verdict on a provider's last answers (healing/drift.py)."""

    severity: str
    # Answers and failed attempts judged (of drift.window).
    outcomes: int
    reason: str = ""
    signals: dict[str, float] = {}
    # How long a `demote` profile tries it last yet; None when it does not.
    demoted_for_s: float | None = None


class PaceStatus(msgspec.Struct, frozen=True, kw_only=True):
    """A provider's decoding speeds (healing/pace.py), in output tokens a second."""

    # None until enough streamed answers make one.
    usual_tokens_per_s: float | None
    recent_tokens_per_s: float | None
    answers: int
    slow: bool
    # How long `adaptive` profiles keep trying it later; None: they do not.
    demoted_for_s: float | None = None


class WindowStatus(msgspec.Struct, frozen=True, kw_only=True):
    """What a provider's last overflow error, or last cut prompt, told of
    its context window (routing/windows.py), while it holds."""

    # The window it named; None when it named none.
    window: int | None
    # Prompts estimated above this many tokens do not fit it.
    prompt_limit: int
    learned_s_ago: float
    forgotten_in_s: float
    # Learned from a prompt it cut (read only prompt_limit tokens of), not refused.
    cut: bool = False


class SlotStatus(msgspec.Struct, frozen=True, kw_only=True):
    """A provider with a max_concurrent: its slots and the line for them."""

    limit: int
    in_use: int
    waiting: int


class ProviderStatus(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    kind: str
    model: str
    base_url: str
    paid: bool
    # "unknown" until the first attempt; then "ok" or "failing"; "excluded
    # (unhealthy)" while self-healing keeps it out; "unavailable (why)".
    state: str = "unknown"
    last_outcome: str | None = None
    last_status: int | None = None
    last_change_wall: float | None = None
    last_attempt_wall: float | None = None
    consecutive_failures: int = 0
    tool_call_repairs: int = 0
    # The provider's last answer was a 401/403 to our credentials.
    auth_rejected: bool = False
    healing: HealingStatus = HealingStatus()
    # None when no profile watches its drift.
    drift: DriftStatus | None = None
    # Prompts it read far less of than it was sent, since the start.
    prompts_truncated: int = 0
    # None when no `adaptive` profile lists it.
    pace: PaceStatus | None = None
    # None unless it said a prompt did not fit its window in the last 10 minutes.
    context_window: WindowStatus | None = None
    # None unless it has a max_concurrent.
    slots: SlotStatus | None = None


class InFlight(msgspec.Struct, frozen=True, kw_only=True):
    request_id: str
    dialect: str
    profile: str
    provider: str | None
    stream: bool
    age_s: float
    # Waiting in line for a slot of any of these providers (max_concurrent).
    waiting_for: tuple[str, ...] = ()


class BudgetStatus(msgspec.Struct, frozen=True, kw_only=True):
    provider: str
    month: str
    spent_usd: float
    budget_usd: float | None
    percent: float | None
    blocked: bool


class StateStatus(msgspec.Struct, frozen=True, kw_only=True):
    """The database's health, as `ctl status` shows it."""

    path: str
    size_bytes: int
    queue_depth: int
    dropped: int
    failed_rows: int
    committed_rows: int
    last_commit_wall: float | None
    replays_dropped: int
    replays_too_large: int
    # Not stored: the request row, or the record the body continues, was missing.
    replays_orphaned: int = 0
    # Stored under their id with a suffix: a client had used the id before.
    requests_renamed: int = 0


class MemoStatus(msgspec.Struct, frozen=True, kw_only=True):
    """One memo of recent conversations (a cache, bounded by count and bytes)."""

    name: str
    conversations: int
    bytes: int


class MemoryStatus(msgspec.Struct, frozen=True, kw_only=True):
    # Resident memory now (None where it cannot be read: not Linux) and at its peak.
    rss_bytes: int | None
    peak_rss_bytes: int
    memos: tuple[MemoStatus, ...] = ()


class AutoRuleStatus(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    profile: str
    # Requests this rule placed since the start.
    matched: int


class AutoPlacement(msgspec.Struct, frozen=True, kw_only=True):
    rule: str  # "" for requests no rule matched
    profile: str
    requests: int


class AutoRouterStatus(msgspec.Struct, frozen=True, kw_only=True):
    disabled: bool
    # Each rule with the requests it placed on its profile since the start.
    rules: tuple[AutoRuleStatus, ...]
    default_rule_profile: str
    # Requests no rule matched (or placed while disabled) on that profile.
    unmatched: int
    # Every (rule, profile) the router placed requests by since the start,
    # those of rules a reload sent elsewhere included: what /metrics counts.
    placed: tuple[AutoPlacement, ...] = ()


class StatusReply(msgspec.Struct, frozen=True, kw_only=True):
    version: str
    pid: int
    uptime_s: float
    listen: str
    config_path: str | None
    config_digest: str
    default_profile: str
    providers: tuple[ProviderStatus, ...]
    in_flight: tuple[InFlight, ...]
    budgets: tuple[BudgetStatus, ...] = ()
    state: StateStatus | None = None
    memory: MemoryStatus | None = None
    # With `default_profile: auto`.
    auto_router: AutoRouterStatus | None = None


class ProviderActionReply(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to `ctl exclude` / `ctl restore`."""

    # False: no such provider.
    ok: bool
    provider: str
    action: str
    changed: bool = False
    message: str = ""


class ReloadReply(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    config_digest: str
    problems: tuple[str, ...] = ()
    # Settings that only take effect after a restart (listen address, paths).
    restart_required: tuple[str, ...] = ()
