"""Context windows learned from what the backends did with a prompt too long
for them (pure, but for the clock).

A conversation only grows: once a backend has said its prompt does not fit,
every later turn would be refused too, each after a round trip (and, for a
local server, after tokenizing the whole prompt); once a backend has cut a
prompt (telemetry/truncation.py), every later turn would be cut too, and
answered by a model that lost its instructions. A profile whose
`context_action` is `learned` (the default) or `skip` skips a provider
whose window is known to be smaller than the prompt; this module makes the
window known from the error, or the cut.

What is learned is a limit on the daemon's own prompt estimate (four bytes
a token) of the prompt as that backend was sent it (without the tools to a
model that cannot call them, whoever answered), so it compares with the
next request's estimate as that backend is sent it (routing/plan.py): when
the backend gave its counts (`40960 tokens > 32768`), the estimate at which
that prompt would have just fit, `estimate * window / tokens`, which
calibrates the estimate to the backend's tokenizer; when it did not, just
below the estimate that did not fit; after a cut, the tokens the backend
read (about its window; the estimate over-counts a little, so this errs
towards skipping).

A limit is forgotten `FORGET_S` after it was learned (a backend restarted
with a larger window gets its chance again; the first prompt too long for
it then teaches the limit again), or as soon as the backend reads a prompt
over it whole (one sent by a profile that does not skip), or when the
operator says it was fixed (`ctl restore`), or when a reload points the
provider at another model or server (`model`, `base_url`) or takes it out:
what the old backend told is not the new one's window. Requests still
running on the old model then, refused or cut after the reload, teach
nothing (their attempts name the model they were sent to,
AttemptRecord.model); an attempt does not name its server, so one to the
old `base_url` with the same model counts for the new server.

A backend that fails again within FORGET_S of getting its chance back
keeps its limit twice as long each time, up to MAX_HOLD_S: a cut prompt is
a turn answered by a model that lost its instructions, not worth paying
every ten minutes. The request log keeps each refusal with the counts it
named and the model it came from, and each cut answer with what the
backend read and its model, and the audit log each long hold (with its
model) and each limit forgotten early, so a restarted daemon reads back
what it had learned, and for how long (`load`): only of the model each
provider is configured with, so neither an old model's refusal ending
after a reload nor what the old model told before a `model` changed while
the daemon was down is read back. A limit forgotten at a reload that moved
its provider is told, so it is not read back; a `base_url` changed while
the daemon was down is not noticed (the log does not name the server):
what the old server told is read back. Only the doubling of a hold that
has ended is not kept (the next one after a restart starts at FORGET_S).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from coderouterd.clock import Clock
from coderouterd.config.model import Config
from coderouterd.routing.backends import Backend, backends_of, moved, sent_elsewhere
from coderouterd.routing.records import RequestSummary
from coderouterd.state.overflows import Recent
from coderouterd.telemetry import events
from coderouterd.telemetry.truncation import RATIO, counted_input, was_cut

FORGET_S = 600.0
MAX_HOLD_S = 4 * 3600.0


@dataclass(frozen=True, slots=True)
class Learned:
    # Prompt estimates above this do not fit.
    limit: int
    # The window the backend named, if it did.
    window: int | None
    at: float
    # Learned from a prompt the backend cut rather than refused.
    cut: bool = False
    # How long it holds from `at`.
    hold_s: float = FORGET_S

    def holds(self, now: float) -> bool:
        return now - self.at < self.hold_s


def limit_of(estimate: int, tokens: int | None, window: int | None) -> int:
    """The largest prompt estimate that fits, from one that did not."""
    if tokens and window:
        return max(1, estimate * window // tokens)
    return max(1, estimate - 1)


class LearnedWindows:
    def __init__(
        self, clock: Clock, *, log: Any = None, audit: Callable[..., None] | None = None
    ) -> None:
        self._clock = clock
        # Where a limit held longer than FORGET_S, and one forgotten while it
        # held, are told (a log line; an audit event a restart reads back).
        self._log = log
        self._audit = audit
        self._learned: dict[str, Learned] = {}
        # Each provider's last limit, kept past its hold for FORGET_S: one
        # learned again within that time holds twice as long.
        self._last: dict[str, Learned] = {}
        # What each provider talks to; empty until configured (then every
        # attempt counts).
        self._backends: dict[str, Backend] = {}

    def reconfigure(self, config: Config) -> None:
        """Take a (re)loaded config: what was learned of a provider it points
        at another model or server, or takes out, is forgotten, and told so
        (`via`: `backend_changed`, `config_removed`), so that a restart does
        not read it back."""
        backends = backends_of(config)
        changed = moved(self._backends, backends)
        removed = self._backends.keys() - backends.keys()
        self._backends = backends
        for name in sorted(changed | removed):
            self.forget(name, via="backend_changed" if name in changed else "config_removed")

    def _current(self, provider: str, model: str | None) -> bool:
        """Whether what `provider` told, sent to `model`, came from the backend
        it is configured with: neither one a reload moved it from, nor one
        of a provider a reload took out."""
        if not self._backends:
            return True
        backend = self._backends.get(provider)
        return backend is not None and not sent_elsewhere(model, backend[0])

    def load(self, recent: Recent) -> None:
        """What the logs kept (state/overflows.py): each provider's latest
        long hold, still running, then its latest refusal and cut of the
        last FORGET_S learned on top of it, each placed on the monotonic
        clock by its age; nothing from before the provider's limit was last
        forgotten, nor of another model than the one it is configured with
        (a row naming none counts as that one's)."""
        wall, now = self._clock.wall(), self._clock.monotonic()

        def since(ts: float) -> float:
            return now - max(0.0, wall - ts)

        def current(provider: str, ts: float, model: str | None) -> bool:
            forgotten = recent.forgotten.get(provider, float("-inf"))
            return ts > forgotten and self._current(provider, model)

        for h in sorted(recent.held, key=lambda h: h.ts):
            if current(h.provider, h.ts, h.model) and wall - h.ts < h.hold_s:
                held = Learned(h.limit, h.window, since(h.ts), h.cut, h.hold_s)
                self._learned[h.provider] = self._last[h.provider] = held
        for o in sorted(recent.overflows, key=lambda o: o.ts):
            if not current(o.provider, o.ts, o.model):
                continue
            if o.read_tokens is not None:
                learned = Learned(o.read_tokens, None, since(o.ts), cut=True)
            else:
                limit = limit_of(o.prompt_estimate, o.prompt_tokens, o.context_window)
                learned = Learned(limit, o.context_window, since(o.ts))
            self._learn(o.provider, learned, told=True)

    def take(self, summaries: Sequence[RequestSummary]) -> None:
        """Learn from every attempt whose prompt did not fit, and every answer
        from a prompt the backend cut (a Deferred consumer), of the backend each
        provider is configured with."""
        now = self._clock.monotonic()
        for s in summaries:
            for a in s.attempts:
                # Measured as this provider was sent it: the one that answered
                # may have been sent less (no tools).
                estimate = a.prompt_estimate or s.prompt_estimate
                if a.outcome == "too_long" and estimate and self._current(a.provider, a.model):
                    limit = limit_of(estimate, a.prompt_tokens, a.context_window)
                    self._learn(a.provider, Learned(limit, a.context_window, now))
            counted = counted_input(s)
            # The answer is the last attempt's.
            model = s.attempts[-1].model if s.attempts else None
            if s.provider is None or not counted or not self._current(s.provider, model):
                continue
            pictured = s.prompt_image_tokens
            if was_cut(s.prompt_estimate, counted, pictured):
                self._learn(s.provider, Learned(counted, None, now, cut=True))
            elif self._grown(s.provider, s.prompt_estimate, counted, pictured, now):
                self.forget(s.provider, via="read_whole")

    def _learn(self, provider: str, learned: Learned, *, told: bool = False) -> None:
        """Hold `learned` as long as the limit it replaces, while that holds
        (the backend told more of the same); twice as long as the last one,
        if that ended within FORGET_S (the backend failed again soon after
        getting its chance back); else FORGET_S. A hold longer than FORGET_S
        begun or renewed is told (audited: a restart reads the latest back),
        unless it is being read back (`told`)."""
        last = self._last.get(provider)
        hold = FORGET_S
        if last is not None and learned.at - last.at < last.hold_s:
            hold = last.hold_s
        elif last is not None and learned.at - last.at < last.hold_s + FORGET_S:
            hold = min(last.hold_s * 2, MAX_HOLD_S)
        learned = dataclasses.replace(learned, hold_s=hold)
        self._learned[provider] = self._last[provider] = learned
        if hold > FORGET_S and not told:
            # Whose window it is, so that a restart after the provider's
            # `model` changed does not hold the new model to it.
            backend = self._backends.get(provider)
            model = {} if backend is None else {"model": backend[0]}
            self._tell(
                events.PROVIDER_WINDOW_HELD, provider=provider, limit=learned.limit,
                hold_s=learned.hold_s, window=learned.window, cut=learned.cut, **model,
            )  # fmt: skip

    def forget(self, provider: str, *, via: str, uid: int | None = None) -> bool:
        """Forget what was learned of `provider` (`via`: its window grew,
        `read_whole`; the operator says so, `manual`; a reload moved it to
        another backend, `backend_changed`, or took it out, `config_removed`);
        whether anything still held (then it is told: provider.window_forgotten)."""
        now = self._clock.monotonic()
        self._last.pop(provider, None)
        held = self._learned.pop(provider, None)
        if held is None or not held.holds(now):
            return False
        who = {} if uid is None else {"uid": uid}
        self._tell(events.PROVIDER_WINDOW_FORGOTTEN, provider=provider, via=via, **who)
        return True

    def _tell(self, event: str, **fields: Any) -> None:
        if self._log is not None:
            self._log.info(event, **fields)
        if self._audit is not None:
            self._audit(event, **fields)

    def _grown(
        self, provider: str, estimate: int, counted: int, image_tokens: int, now: float
    ) -> bool:
        """Whether `provider` read a prompt over the limit it holds whole: its
        window grew (it was restarted with a larger one). One learned from a
        cut must have read more than it cut to: a prompt under 2.5 times the
        window, cut to it again, reads as whole by the ratio alone."""
        held = self._learned.get(provider)
        text = estimate - image_tokens
        return (
            held is not None
            and held.holds(now)
            and estimate > held.limit
            and counted >= RATIO * text
            and (not held.cut or counted > held.limit)
        )

    def limits(self, configured: Mapping[str, int]) -> Mapping[str, int]:
        """The configured windows, each lowered to a limit learned that still
        holds; `configured` itself when nothing is learned (the usual case)."""
        if not self._learned:
            return configured
        now = self._clock.monotonic()
        self._learned = {p: w for p, w in self._learned.items() if w.holds(now)}
        self._last = {p: w for p, w in self._last.items() if now - w.at < w.hold_s + FORGET_S}
        merged = dict(configured)
        for provider, learned in self._learned.items():
            merged[provider] = min(learned.limit, merged.get(provider, learned.limit))
        return merged

    def learned(self, provider: str) -> tuple[Learned, float] | None:
        """What was learned of `provider` and how long ago, while it holds."""
        learned = self._learned.get(provider)
        if learned is None:
            return None
        now = self._clock.monotonic()
        return (learned, now - learned.at) if learned.holds(now) else None
