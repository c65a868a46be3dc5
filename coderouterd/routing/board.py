"""Last known outcome of every provider, and its transitions (pure).

A provider is "unknown" until its first attempt, then "ok" or "failing";
self-healing's probes count like attempts (`record_probe`). `record`
returns the transition when the state changes so the caller logs a provider
going bad once and coming back once, never every request.
Credentials are tracked apart from health: a 401/403 is handed back to the
client, so it never makes a provider "failing", yet an operator must hear of
a rejected key once, and once more when it works again.
"""

from __future__ import annotations

from dataclasses import dataclass

from coderouterd.routing.records import AttemptRecord

AUTH_REJECTED_STATUSES = frozenset({401, 403})


@dataclass(slots=True)
class ProviderState:
    state: str = "unknown"
    last_outcome: str | None = None
    last_status: int | None = None
    last_change_wall: float | None = None
    last_attempt_wall: float | None = None
    consecutive_failures: int = 0
    # The provider's last answer rejected our credentials (401/403).
    auth_rejected: bool = False
    # Tool calls lifted out of this provider's text since start-up.
    repairs: int = 0


@dataclass(frozen=True, slots=True)
class Transition:
    provider: str
    old: str
    new: str
    reason: str | None


class ProviderBoard:
    def __init__(self) -> None:
        self._states: dict[str, ProviderState] = {}

    def get(self, name: str) -> ProviderState:
        return self._states.get(name) or ProviderState()

    def count_repairs(self, provider: str, repairs: int) -> None:
        if repairs:
            self._states.setdefault(provider, ProviderState()).repairs += repairs

    def record(self, record: AttemptRecord, now_wall: float) -> Transition | None:
        # A skipped provider was not asked, nor was one the request could not
        # be written for (refused); an interrupted one was cut off by us or the
        # client. None says anything about the provider's health.
        if record.outcome in ("skipped", "refused", "interrupted"):
            return None
        st = self._states.setdefault(record.provider, ProviderState())
        st.last_attempt_wall = now_wall
        if record.outcome == "returned":
            # A 4xx handed back to the client says nothing about the
            # provider's health: it neither ends a streak of failures nor
            # adds to one, as self-healing counts it.
            st.last_outcome, st.last_status = record.reason or record.outcome, record.status
            return None
        return self._note(
            record.provider,
            failed=record.outcome == "failed",
            outcome=record.reason or record.outcome,
            reason=record.reason,
            status=record.status,
            now_wall=now_wall,
        )

    def record_probe(
        self, provider: str, *, ok: bool, reason: str | None, status: int | None, now_wall: float
    ) -> Transition | None:
        """A probe's outcome (healing/), which counts like an attempt's; the
        last attempt's time stays that of a request. A 401/403 says nothing
        about the backend's health (self-healing does not count it either)."""
        if status in AUTH_REJECTED_STATUSES:
            return None
        outcome = reason or ("ok" if ok else "failed")
        return self._note(
            provider,
            failed=not ok,
            outcome=outcome,
            reason=reason,
            status=status,
            now_wall=now_wall,
        )

    def _note(
        self,
        provider: str,
        *,
        failed: bool,
        outcome: str,
        reason: str | None,
        status: int | None,
        now_wall: float,
    ) -> Transition | None:
        st = self._states.setdefault(provider, ProviderState())
        st.last_outcome = outcome
        st.last_status = status
        new = "failing" if failed else "ok"
        st.consecutive_failures = st.consecutive_failures + 1 if failed else 0
        if new == st.state:
            return None
        old, st.state, st.last_change_wall = st.state, new, now_wall
        if old == "unknown" and new == "ok":
            return None
        return Transition(provider, old, new, reason)

    def auth_change(self, record: AttemptRecord) -> bool | None:
        """True when a provider starts rejecting our credentials, False when it
        accepts them again after that, None when nothing changed."""
        rejected = record.status in AUTH_REJECTED_STATUSES
        if not rejected and record.outcome != "ok":
            return None
        st = self._states.get(record.provider)
        if st is None:
            if not rejected:
                return None
            st = self._states[record.provider] = ProviderState()
        if st.auth_rejected == rejected:
            return None
        st.auth_rejected = rejected
        return rejected
