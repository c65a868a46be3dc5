"""Self-healing at work: the book's decisions carried out (I/O shell).

`HealingService` observes every attempt of every request (it is one of the
engine's observers: it counts the attempts each provider is answering),
asks the book (policy.py) what follows, and does it: it logs and records an
exclusion or a restoration (report.py: the `exclusions` row and its audit
event), runs a restart_command (restart.py) and audits its outcome, and
probes excluded providers (probe.py) from one loop that sleeps until the
next probe is due. Everything runs on the event loop; probes and restarts
are named tasks, at most one of each per provider. None starts once the
daemon's shutdown has begun (`stop_starting`), whatever a request finishing
during its grace period decides; those running are cancelled together at
close (every running restart_command's process group gets its SIGTERM at
once). A probe's outcome also goes on the provider board, like an
attempt's, so that `ctl status` and /metrics show a backend whose probes
fail as failing.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from coderouterd.clock import Clock
from coderouterd.config.model import Config
from coderouterd.healing.decisions import (
    Decision,
    Exclude,
    MemoryPressure,
    Probe,
    Restart,
    RestartSkipped,
    Restore,
)
from coderouterd.healing.policy import HealingBook
from coderouterd.healing.probe import ProbeOutcome, probe
from coderouterd.healing.report import HealingReport
from coderouterd.healing.restart import RestartOutcome, run_restart
from coderouterd.providers.base import HttpAdapter
from coderouterd.routing.backends import Backend
from coderouterd.routing.board import ProviderBoard
from coderouterd.routing.plan import SKIP_BUSY
from coderouterd.routing.records import AttemptRecord, BaseObserver, RequestSummary
from coderouterd.routing.slots import Slots
from coderouterd.state import reads
from coderouterd.state.service import StateService
from coderouterd.tasks import cancel_and_wait, spawn
from coderouterd.telemetry import events

# The longest the loop sleeps without a wake-up, so that a clock jump or a
# missed wake-up costs at most this much delay.
_MAX_SLEEP_S = 60.0
# A `ctl probe` that found no free slot in time (the name the planner gives it).
_BUSY = SKIP_BUSY
# The reason of a probe that raised what no answer explains (a bug).
_PROBE_ERROR = "probe_error"
# The reason `ctl probe` gets once the daemon's shutdown has begun.
_SHUTTING_DOWN = "shutting_down"
# The `error` of a restart_command the daemon's shutdown stopped.
_STOPPED = "stopped at shutdown"


class HealingService(BaseObserver):
    def __init__(
        self,
        book: HealingBook,
        *,
        adapters: Callable[[], Mapping[str, HttpAdapter]],
        state: StateService | None,
        log: Any,
        clock: Clock,
        env: Mapping[str, str],
        restart_logs: Path | None = None,
        slots: Slots | None = None,
        board: ProviderBoard | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        """`restart_logs`: the directory of each provider's restart_command
        log (`<provider>.log`); without it the output is read and let go.
        `slots`: a probe waits for a free slot of a provider with a
        max_concurrent, so it times the backend and not its queue.
        `board`: where probes count like attempts (`ctl status`)."""
        self.book = book
        self._adapters = adapters
        self._state = state
        self._log = log
        self._report = HealingReport(log, state)
        self._clock = clock
        self._env = env
        self._restart_logs = restart_logs
        self._slots = slots or Slots()
        self._board = board
        self._rand = rand
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        # The provider each request is trying now (its attempt counted in the
        # book), and the backend it talked to when the attempt began.
        self._trying: dict[str, tuple[str, Backend | None]] = {}
        # Exclusions stored before this start, loaded once the audit log is read.
        self._stored: list[tuple[str, str, float, float | None]] = []

    def exclude(self, provider: str, *, uid: int | None) -> bool:
        """`ctl exclude`: whether it changed anything (KeyError: no such provider)."""
        now = self._clock.monotonic()
        decisions = self.book.exclude_manual(provider, now_mono=now, now_wall=self._clock.wall())
        self._apply(decisions, uid=uid)
        return bool(decisions)

    async def probe_now(self, provider: str, *, uid: int | None) -> tuple[ProbeOutcome, bool]:
        """`ctl probe`: the probe's outcome, and whether it restored the
        provider (KeyError: no such provider). It waits probe_timeout_s at
        most for a free slot (else its outcome is `busy`, and nothing is
        noted: the backend was not asked) and as long for the probe, so the
        command line knows how long to wait for the answer."""
        adapter = self._adapters().get(provider)
        if adapter is None:
            raise KeyError(provider)
        if self._closing:
            # Nothing starts once the shutdown has begun (stop_starting).
            return ProbeOutcome(False, 0.0, reason=_SHUTTING_DOWN), False
        started = self._clock.monotonic()
        try:
            outcome = await self._send_probe(
                adapter, slot_wait_s=self.book.settings.probe_timeout_s
            )
        except Exception as exc:
            # A probe that breaks is a failed probe, as a scheduled one is,
            # never a failed control request.
            self._log.exception(events.PROVIDER_PROBE, provider=provider, error=repr(exc))
            took = round((self._clock.monotonic() - started) * 1000, 3)
            outcome = ProbeOutcome(False, took, reason=_PROBE_ERROR)
        if outcome.reason == _BUSY:
            return outcome, False
        self._on_board(provider, outcome)
        decisions = self.book.probed_by_hand(
            provider,
            ok=outcome.ok,
            latency_ms=outcome.latency_ms,
            now_mono=self._clock.monotonic(),
            now_wall=self._clock.wall(),
        )
        self._apply(decisions, uid=uid)
        return outcome, bool(decisions)

    def restore(self, provider: str, *, uid: int | None) -> bool:
        """`ctl restore`: whether it changed anything (KeyError: no such provider)."""
        decisions = self.book.restore_manual(provider, now_mono=self._clock.monotonic())
        self._apply(decisions, uid=uid)
        return bool(decisions)

    def attempt_started(self, request_id: str, provider: str) -> None:
        self._attempt_ended(request_id)
        self._trying[request_id] = provider, self.book.backend(provider)
        self.book.attempt_started(provider)

    def request_finished(self, summary: RequestSummary) -> None:
        # An attempt that ended without its report (a bug) is not counted forever.
        self._attempt_ended(summary.request_id)

    def _attempt_ended(self, request_id: str) -> Backend | None:
        """The backend the attempt began on."""
        provider, backend = self._trying.pop(request_id, ("", None))
        if provider and self.book.attempt_ended(provider):
            # Its continuous probe is due again: the loop may sleep past it.
            self._wake.set()
        return backend

    def attempt_finished(self, request_id: str, record: AttemptRecord) -> None:
        started = self._attempt_ended(request_id)
        if not self.book.sent_to_current(record.provider, record.model, started):
            return
        self._apply(
            self.book.observe(
                record.provider,
                outcome=record.outcome,
                reason=record.reason,
                status=record.status,
                now_mono=self._clock.monotonic(),
                now_wall=self._clock.wall(),
                u=self._rand(),
            )
        )

    def load(self, rows: Iterable[tuple[str, str, float, float | None]]) -> None:
        """Exclusions stored before this start, as (provider, reason, since,
        until): with a database, loaded by `load_restarts` with the episode
        the audit log gave each; without, at once."""
        self._stored = list(rows)
        if self._state is None:
            self._load_stored({})

    def _load_stored(self, episodes: Mapping[str, int]) -> None:
        decisions = self.book.load(
            self._stored,
            now_mono=self._clock.monotonic(),
            now_wall=self._clock.wall(),
            rand=self._rand,
            episodes=episodes,
        )
        self._stored = []
        kept = sorted(self.book.excluded() | self.book.manual() | self.book.cooling())
        if kept:
            self._log.warning(events.PROVIDER_EXCLUDED_AT_STARTUP, providers=kept)
        self._apply(decisions)

    def reconfigure(self, config: Config) -> None:
        self._apply(self.book.configure(config, now_mono=self._clock.monotonic()))
        # Intervals may have changed: the loop recomputes when it sleeps until.
        self._wake.set()

    def start(self) -> None:
        if self._loop_task is None:
            self._loop_task = spawn(self._run(), name="healing:loop")

    async def load_restarts(self) -> None:
        """Read what the audit log tells of the runs before this one, before
        the first request: the largest episode, so that none is numbered
        twice; each stored exclusion's episode, loaded with it (`load`);
        when each provider's restart_command last ran, for
        restart_min_interval_s."""
        if self._state is None:
            return
        latest, episodes = await self._state.writer.maintain(reads.episodes)
        self.book.load_episodes(latest)
        self._load_stored(episodes)
        started = await self._state.writer.maintain(reads.last_restarts)
        self.book.load_restarts(
            started, now_mono=self._clock.monotonic(), now_wall=self._clock.wall()
        )

    def stop_starting(self) -> None:
        """The daemon's shutdown has begun: from now on no restart_command
        or probe starts; those running go on until `close`."""
        self._closing = True

    async def close(self) -> None:
        """Cancel every probe and restart at once, then wait for them all:
        each restart_command's group gets SIGTERM now, not after the grace
        of the one before it. Nothing starts after this."""
        self._closing = True
        tasks = [t for t in (self._loop_task, *self._tasks) if t is not None]
        self._loop_task = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*(cancel_and_wait(t) for t in tasks))

    async def _run(self) -> None:
        while True:
            self._apply(self.book.due(self._clock.monotonic()))
            due = self.book.next_due()
            wait = _MAX_SLEEP_S if due is None else due - self._clock.monotonic()
            self._wake.clear()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(wait, _MAX_SLEEP_S)):
                        await self._wake.wait()

    def _apply(self, decisions: Sequence[Decision], *, uid: int | None = None) -> None:
        # Decided during a request, a log line carries its request_id (bound in
        # the request's context), and so does a restart it starts.
        for d in decisions:
            if isinstance(d, Exclude):
                self._report.excluded(d, uid)
            elif isinstance(d, Restore):
                self._report.restored(d, uid)
            elif isinstance(d, Restart):
                self._spawn(self._restart(d), f"healing:restart:{d.provider}")
            elif isinstance(d, RestartSkipped):
                self._report.restart_skipped(d)
            elif isinstance(d, Probe):
                self._spawn(self._probe(d), f"healing:probe:{d.provider}")
            elif isinstance(d, MemoryPressure):
                self._report.memory_pressure(d)
        if decisions:
            self._wake.set()

    def _spawn(self, coro: Any, name: str) -> None:
        if self._closing:
            # Decided by a request finishing during shutdown: too late to act on.
            coro.close()
            return
        task: asyncio.Task[None] = spawn(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _probe(self, d: Probe) -> None:
        try:
            adapter = self._adapters().get(d.provider)
            reason: str | None = "not_configured"
            status: int | None = None
            returned = False
            if adapter is None:
                ok, latency_ms = False, None
            else:
                outcome = await self._send_probe(adapter)
                ok, latency_ms = outcome.ok, outcome.latency_ms
                reason, status, returned = outcome.reason, outcome.status, outcome.returned
                self._on_board(d.provider, outcome)
            self._log.debug(
                events.PROVIDER_PROBE,
                provider=d.provider,
                ok=ok,
                latency_ms=latency_ms,
                status=status,
                reason=reason,
                episode=d.episode,
            )
        except Exception as exc:
            # A probe that breaks is a failed probe, never a stuck provider.
            ok, latency_ms, reason, status, returned = False, None, _PROBE_ERROR, None, False
            self._log.exception(events.PROVIDER_PROBE, provider=d.provider, error=repr(exc))
            self._on_board(d.provider, ProbeOutcome(False, 0.0, reason=reason))
        self._apply(
            self.book.probe_finished(
                d.provider,
                d.episode,
                ok=ok,
                latency_ms=latency_ms,
                now_mono=self._clock.monotonic(),
                now_wall=self._clock.wall(),
                u=self._rand(),
                reason=reason,
                status=status,
                returned=returned,
            )
        )
        self._wake.set()

    async def _send_probe(
        self, adapter: HttpAdapter, *, slot_wait_s: float | None = None
    ) -> ProbeOutcome:
        """The probe, once a slot is free; `slot_wait_s`: how long to wait
        for one at most (None: as long as it takes), else it is `busy`."""
        started = self._clock.monotonic()
        async with contextlib.AsyncExitStack() as held:
            try:
                async with asyncio.timeout(slot_wait_s):
                    await held.enter_async_context(self._slots.held(adapter.name))
            except TimeoutError:
                waited = round((self._clock.monotonic() - started) * 1000, 3)
                return ProbeOutcome(False, waited, reason=_BUSY)
            timeout_s = self.book.settings.probe_timeout_s
            return await probe(adapter, timeout_s=timeout_s, clock=self._clock)

    def _on_board(self, provider: str, outcome: ProbeOutcome) -> None:
        """A probe counts on the provider board like an attempt; a change of
        state is logged as an attempt's is (telemetry/observers.py). A 4xx
        a real request would get back says nothing of the backend's health,
        for the board as for self-healing."""
        if self._board is None or outcome.returned:
            return
        change = self._board.record_probe(
            provider,
            ok=outcome.ok,
            reason=outcome.reason,
            status=outcome.status,
            now_wall=self._clock.wall(),
        )
        if change is None:
            return
        failing = change.new == "failing"
        level = self._log.warning if failing else self._log.info
        event = events.PROVIDER_FAILING if failing else events.PROVIDER_RECOVERED
        level(event, provider=provider, previous=change.old, reason=change.reason, via="probe")

    async def _restart(self, d: Restart) -> None:
        log_path = None if self._restart_logs is None else self._restart_logs / f"{d.provider}.log"
        started = self._clock.monotonic()
        try:
            outcome = await run_restart(
                d.argv,
                provider=d.provider,
                timeout_s=d.timeout_s,
                output_bytes=self.book.settings.restart_output_bytes,
                env=self._env,
                log_path=log_path,
            )
        except asyncio.CancelledError:
            # Stopped at shutdown: recorded all the same, so that the next
            # start counts restart_min_interval_s from this run. The command
            # did start: it is spawned before run_restart first waits, and a
            # task cancelled before its first step never gets here.
            took = round((self._clock.monotonic() - started) * 1000, 1)
            stopped = RestartOutcome(None, None, False, took, "", False, _STOPPED)
            self._report.restart_ran(d, stopped, log_path)
            raise
        finally:
            now = self._clock.monotonic()
            self.book.restart_finished(d.provider, d.episode, now_mono=now, u=self._rand())
            self._wake.set()
        self._report.restart_ran(d, outcome, log_path)
