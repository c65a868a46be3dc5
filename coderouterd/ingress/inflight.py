"""Requests being served right now: for `ctl status` and for draining on shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from coderouterd.clock import Clock
from coderouterd.ctl.model import InFlight
from coderouterd.routing.records import BaseObserver, RequestSummary
from coderouterd.tasks import cancel_with


@dataclass(slots=True)
class InFlightEntry:
    dialect: str
    profile: str
    stream: bool
    started: float
    task: asyncio.Task[object] | None
    # The provider it is trying now.
    provider: str | None = None
    # The provider whose answer the client got, as the request's report
    # names it; None until then, and for one no provider answered.
    answered: str | None = None
    # The providers whose slot it waits for (max_concurrent), while it does.
    waiting_for: tuple[str, ...] = ()


class InFlightRegistry(BaseObserver):
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._entries: dict[str, InFlightEntry] = {}
        # Requests added since start.
        self.started = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, request_id: str, *, dialect: str, profile: str, stream: bool) -> InFlightEntry:
        """List a request from its first byte. Added again once its body is
        read and routed, it is the same request, in flight since that byte."""
        entry = self._entries.get(request_id)
        if entry is not None:
            entry.dialect, entry.profile, entry.stream = dialect, profile, stream
            return entry
        entry = InFlightEntry(
            dialect, profile, stream, self._clock.monotonic(), asyncio.current_task()
        )
        self.started += 1
        self._entries[request_id] = entry
        self._idle.clear()
        return entry

    def cancel_all(self, reason: str) -> int:
        """Cancel the handler of every request still in flight, for a reason its
        code reads back (tasks.cancel_with); returns how many."""
        tasks = [e.task for e in self._entries.values() if e.task is not None]
        for task in tasks:
            cancel_with(task, reason)
        return len(tasks)

    def remove(self, request_id: str) -> None:
        self._entries.pop(request_id, None)
        if not self._entries:
            self._idle.set()

    async def wait_idle(self) -> None:
        await self._idle.wait()

    def snapshot(self) -> tuple[InFlight, ...]:
        now = self._clock.monotonic()
        return tuple(
            InFlight(
                request_id=rid,
                dialect=e.dialect,
                profile=e.profile,
                provider=e.provider,
                stream=e.stream,
                age_s=round(now - e.started, 3),
                waiting_for=e.waiting_for,
            )
            for rid, e in self._entries.items()
        )

    # Observer: shows which provider each request is currently trying, or
    # whose slot it waits for, and which one answered it.
    def waiting_for_slot(self, request_id: str, providers: Sequence[str]) -> None:
        if (entry := self._entries.get(request_id)) is not None:
            entry.provider, entry.waiting_for = None, tuple(providers)

    def attempt_started(self, request_id: str, provider: str) -> None:
        if (entry := self._entries.get(request_id)) is not None:
            entry.provider, entry.waiting_for = provider, ()

    def request_finished(self, summary: RequestSummary) -> None:
        if (entry := self._entries.get(summary.request_id)) is not None:
            entry.answered = summary.provider
