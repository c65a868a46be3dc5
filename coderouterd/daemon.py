"""The running daemon's state: the current runtime, requests in flight, provider board.

Handlers and the control API reach everything through this one object; the
composition root (app.py) builds it and owns its lifecycle.
"""

from __future__ import annotations

import collections
import datetime
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from coderouterd.clock import Clock
from coderouterd.config import LoadedConfig, load_config
from coderouterd.config.model import ProviderConfig, ServerConfig
from coderouterd.config_source import config_file, missing_config_file, with_server_overrides
from coderouterd.ctl.model import ProviderActionReply, ReloadReply, StatusReply
from coderouterd.errors import ConfigError
from coderouterd.healing.drift_watch import DriftWatch
from coderouterd.healing.pace_watch import PaceWatch
from coderouterd.healing.service import HealingService
from coderouterd.ingress.body import BodyMemo
from coderouterd.ingress.inflight import InFlightEntry, InFlightRegistry
from coderouterd.provider_action import provider_action
from coderouterd.providers.retirement import Retirement
from coderouterd.reload import ProviderConfigs, restart_required
from coderouterd.routing.board import ProviderBoard
from coderouterd.routing.budget import SKIP_BUDGET, BudgetBook, budget_of
from coderouterd.routing.call import Call
from coderouterd.routing.cost import month_of
from coderouterd.routing.plan import SKIP_EXCLUDED_MANUAL
from coderouterd.routing.records import Observer, RequestSummary
from coderouterd.routing.slots import Slots
from coderouterd.routing.windows import LearnedWindows
from coderouterd.runtime import Runtime, build_runtime, retired_adapters
from coderouterd.scrub import masked_urls, shown_env_name
from coderouterd.state.pending import PendingReplay
from coderouterd.state.replay import ResponseCapture, redact_headers
from coderouterd.state.request_recorder import arrived, rebudget_events, start_events
from coderouterd.state.service import StateService
from coderouterd.status import status_of
from coderouterd.telemetry import events, sdnotify
from coderouterd.telemetry.deferred import Deferred
from coderouterd.telemetry.metrics import MetricsBook
from coderouterd.telemetry.truncation import TruncationWatch


class Daemon:
    def __init__(
        self,
        loaded: LoadedConfig,
        *,
        clock: Clock,
        env: Mapping[str, str],
        observer: Observer,
        inflight: InFlightRegistry,
        board: ProviderBoard,
        budget: BudgetBook,
        log: Any,
        state: StateService | None = None,
        server_overrides: Mapping[str, Any] | None = None,
        healing: HealingService,
        drift: DriftWatch,
        pace: PaceWatch,
        deferred: Deferred,
        metrics: MetricsBook,
        truncation: TruncationWatch,
        windows: LearnedWindows | None = None,
        slots: Slots | None = None,
    ) -> None:
        # `serve --host/--port` win over the file at every reload, as they will
        # at the next start under the same command line: a file that differs
        # there needs no restart, since a restart would not apply it either.
        self._overrides = dict(server_overrides or {})
        loaded = with_server_overrides(loaded, self._overrides)
        self.clock = clock
        self._clock = clock
        self._env = env
        self._observer = observer
        self._log = log
        self.inflight = inflight
        self.board = board
        self.budget = budget
        self.state = state
        self.healing = healing
        self.drift = drift
        self.pace = pace
        # Request summaries for drift, pace and /metrics, handed over in batches.
        self.deferred = deferred
        self.metrics = metrics
        self.truncation = truncation
        # Context windows the backends' overflow errors and cut prompts told.
        self.windows = windows or LearnedWindows(clock)
        self.windows.reconfigure(loaded.config)
        # Requests each provider is sent at once (max_concurrent), across reloads.
        self.slots = slots or Slots()
        self.slots.configure(loaded.config.providers)
        first = build_runtime(
            loaded, env=env, observer=observer, clock=clock, slots=self.slots,
            budget_spent=self.budget_spent, rotation=self.healing.book,
            learned=self.windows.learned,
        )  # fmt: skip
        self.holder = _Holder(first)
        # Adapters of providers a reload changed, closed once no request uses them.
        self._retired = Retirement()
        # Each provider's config in force, or its last one (see pricing).
        self._configs = ProviderConfigs(loaded.config)
        self.server: ServerConfig = loaded.config.server
        self.max_body_bytes = self.server.max_body_bytes
        # Recent conversations' last bodies: a turn's body is read only where
        # it differs from the one before.
        self.bodies = BodyMemo()
        # Requests the auto router placed, by (rule id or "", profile): a reload
        # may send a rule elsewhere, and its past requests stay where they went.
        self.auto_matches: collections.Counter[tuple[str, str]] = collections.Counter()
        self.listen = ""
        self.started_mono = clock.monotonic()
        self.started_wall = clock.wall()
        # Set at shutdown: requests that start now are refused (ingress/middleware.py).
        self.stopping = False
        self.started_iso = datetime.datetime.fromtimestamp(
            self.started_wall, datetime.UTC
        ).strftime("%Y-%m-%dT%H:%M:%SZ")

    def audit_start(self) -> None:
        """Once the daemon serves: a budget lowered under the month's spend
        while the daemon was stopped blocks as spend does, audited as at a
        reload unless the month's audit log holds the threshold already. Not
        before: a start that fails to bind would file what it never enforced."""
        if self.state is None:
            return
        config, now = self.holder.current.config, self._clock.wall()
        for event in start_events(self.budget, config, self.state.budget_month, now):
            self.state.writer.submit(event)

    def pricing(self, name: str) -> ProviderConfig | None:
        """The provider's config to price its answers by: the current one, or
        the last one of a provider a reload took out, for the requests that
        were running on it then (they are billed all the same)."""
        return self._configs.get(name)

    def budget_spent(self, provider: ProviderConfig, arrived: float) -> str | None:
        """The plan's reason to skip a provider whose budget is spent in the
        month a request arrived in (`arrived`, wall clock), the month its
        spend is filed under, asked again as an attempt on it starts
        (routing/lineup.py): under the budget in force, which a reload may
        have changed since the plan was made from `provider`."""
        config = self._configs.get(provider.name) or provider
        if budget_of(config) is None:
            return None
        return SKIP_BUDGET if self.budget.exhausted(config, month_of(arrived)) else None

    def ctl_action(self, action: str, uid: int | None) -> None:
        if self.state is not None:
            self.state.audit(events.CTL_ACTION, action=action, uid=uid)

    def recording_replays(self, profile: str) -> bool:
        if self.state is None or not self.holder.current.config.state.replay.enabled:
            return False
        p = self.holder.current.config.profile(profile)
        return p is not None and p.record_replays

    def unavailable(self, runtime: Runtime, dialect: str) -> Mapping[str, str]:
        """Providers a request must skip: no key, no translation, this month's
        budget spent, or taken out by the operator (`ctl exclude`)."""
        static = runtime.unavailable_for(dialect)
        manual = self.healing.book.manual()
        if not runtime.budgeted and not manual:
            return static
        month = month_of(self._clock.wall())
        held = dict.fromkeys(manual, SKIP_EXCLUDED_MANUAL)
        return {**held, **self.budget.blocked(runtime.budgeted, month), **static}

    async def provider_action(
        self, action: str, provider: str, uid: int | None
    ) -> ProviderActionReply:
        """`ctl exclude` / `ctl restore` / `ctl probe` of one provider."""
        self.ctl_action(f"{action} {provider}", uid)
        return await provider_action(self, action, provider, uid)

    @contextmanager
    def track(self, call: Call) -> Iterator[InFlightEntry]:
        entry = self.inflight.add(
            call.request_id, dialect=call.dialect, profile=call.profile, stream=call.stream
        )
        try:
            yield entry
        finally:
            self.inflight.remove(call.request_id)

    def rejected(
        self,
        request_id: str,
        *,
        dialect: str,
        status: int,
        error: str,
        model: str | None,
        stream: bool,
        started: float,
        client_disconnected: bool = False,
        profile: str = "",
    ) -> None:
        """Report a request refused before any provider was tried: before routing
        (bad body, unknown profile, too large, its client gone: no profile), or by
        its profile's policy (`profile`); no attempts, a summary like any other."""
        self._observer.request_finished(
            RequestSummary(
                request_id=request_id,
                dialect=dialect,
                profile=profile,
                requested_model=model,
                provider=None,
                attempts=(),
                status=status,
                stream=stream,
                ttfb_ms=None,
                total_ms=round((self._clock.monotonic() - started) * 1000, 3),
                usage=None,
                error=error,
                client_disconnected=client_disconnected,
            )
        )

    def replay_capture(self, profile: str) -> ResponseCapture | None:
        """A capture for the response when this profile's requests are recorded."""
        if self.state is None or not self.recording_replays(profile):
            return None
        return ResponseCapture(self.holder.current.config.state.replay.max_record_kb * 1024)

    def record_replay(
        self,
        call: Call,
        headers: Mapping[str, str],
        capture: ResponseCapture,
        provider: str | None,
        *,
        started: float,
    ) -> None:
        """Filed under when it arrived, as its request row is (`started`: monotonic)."""
        if self.state is None:
            return
        took_ms = (self._clock.monotonic() - started) * 1000
        self.state.replays.submit(
            PendingReplay(
                request_id=call.request_id,
                ts=arrived(self._clock.wall(), took_ms),
                dialect=call.dialect,
                profile=call.profile,
                provider=provider,
                stream=call.stream,
                # Each line of a repeated header (anthropic-beta), not its first only.
                headers=redact_headers(headers),
                request_fields=call.fields,
                conversation=call.conversation,
                body=call.body,
                turn=call.turn,
                shared=call.shared,
                response_body=capture.data,
                response_truncated=capture.truncated,
            )
        )

    def status(self) -> StatusReply:
        return status_of(self)

    async def reload(self) -> ReloadReply:
        """Re-read the config file; swap only if the whole new file is valid.
        systemd hears RELOADING=1 before and READY=1 after, whatever the outcome."""
        # MONOTONIC_USEC is CLOCK_MONOTONIC's, whichever clock the daemon runs on.
        sdnotify.notify(sdnotify.reloading_state(time.monotonic_ns() // 1000), env=self._env)
        try:
            return self._reload()
        finally:
            sdnotify.notify(sdnotify.READY, env=self._env)

    def _reload(self) -> ReloadReply:
        current = self.holder.current
        # Started on the built-in default: the file `serve` looks for may exist since.
        found = current.loaded.path or config_file(None, self._env)
        if found is None:
            return self._no_file(current)
        path = str(found)
        try:
            loaded = load_config(path, server_overrides=self._overrides)
            new = build_runtime(
                loaded, env=self._env, observer=self._observer, clock=self._clock,
                previous=current, slots=self.slots, budget_spent=self.budget_spent,
                rotation=self.healing.book, learned=self.windows.learned,
            )  # fmt: skip
        except ConfigError as exc:
            problems = tuple(masked_urls(str(p)) for p in exc.problems)
            self._log.error(events.CONFIG_RELOAD_REJECTED, path=path, problems=list(problems))
            return self._rejected(path, current, problems)
        except Exception as exc:
            # The loader turns what it meets into problems; whatever it still
            # misses must not end a reload half-done or take the daemon down:
            # the running config stays, and the traceback is logged to be fixed.
            problems = (masked_urls(f"{path}: cannot be loaded ({type(exc).__name__}: {exc})"),)
            self._log.exception(events.CONFIG_RELOAD_REJECTED, path=path, problems=list(problems))
            return self._rejected(path, current, problems)
        # Summaries queued so far are counted under the config they finished
        # under: priced at its prices (/metrics, as the request log did), put
        # in the windows of the backends it named (drift, pace, learned
        # context windows), before a reload that moved a provider to another
        # backend sets them aside.
        self.deferred.flush()
        self.holder.current = new
        self._retired.retire(retired_adapters(current, new))
        before = self._configs.swap(new.config)
        self.slots.configure(loaded.config.providers)
        self.healing.reconfigure(loaded.config)
        self.drift.reconfigure(loaded.config)
        self.pace.reconfigure(loaded.config)
        self.windows.reconfigure(loaded.config)
        restart = restart_required(self.server, loaded.config.server)
        if self.state is not None:
            restart += self.state.reconfigure(loaded.config.state)
            self.state.audit(
                events.CONFIG_RELOADED,
                path=path,
                digest=loaded.digest,
                previous_digest=current.loaded.digest,
            )
            # A budget lowered under the month's spend blocks as spend does: audited.
            now = self._clock.wall()
            for event in rebudget_events(self.budget, before, new.config, now):
                self.state.writer.submit(event)
        self._log.info(
            events.CONFIG_RELOADED,
            path=path,
            digest=loaded.digest,
            previous_digest=current.loaded.digest,
            restart_required=list(restart),
        )
        self.log_unavailable(new)
        return ReloadReply(ok=True, config_digest=loaded.digest, restart_required=restart)

    def _no_file(self, current: Runtime) -> ReloadReply:
        path, problem = missing_config_file(self._env)
        self._log.error(events.CONFIG_RELOAD_REJECTED, path=path, problems=[problem])
        return self._rejected(path, current, (problem,))

    def _rejected(self, path: str, current: Runtime, problems: tuple[str, ...]) -> ReloadReply:
        if self.state is not None:
            self.state.audit(
                events.CONFIG_RELOAD_REJECTED,
                path=path,
                running_digest=current.loaded.digest,
                problems=len(problems),
            )
        return ReloadReply(ok=False, config_digest=current.loaded.digest, problems=problems)

    def log_unavailable(self, runtime: Runtime) -> None:
        for name, reason in runtime.unavailable_for("anthropic").items():
            p = runtime.config.provider(name)
            self._log.warning(
                events.PROVIDER_UNAVAILABLE,
                provider=name,
                reason=reason,
                # A key pasted where the variable's name goes passes for a name: shown in part.
                api_key_env=shown_env_name(p.api_key_env) if p and p.api_key_env else None,
            )

    async def close_adapters(self) -> None:
        await self._retired.close()
        for adapter in self.holder.current.adapters.values():
            await adapter.close()


class _Holder:
    """The current runtime; replaced whole, never mutated."""

    def __init__(self, runtime: Runtime) -> None:
        self.current = runtime
