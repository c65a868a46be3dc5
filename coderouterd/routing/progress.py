"""Book-keeping of one request while the engine works on it.

Collects the attempt records, timings and usage, builds the response headers
that name the provider and the fallback path, and hands exactly one summary
to the observer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import msgspec

from coderouterd.clock import Clock
from coderouterd.errors import AttemptFailure
from coderouterd.routing.call import Call
from coderouterd.routing.plan import Plan
from coderouterd.routing.records import AttemptRecord, Observer, RequestSummary
from coderouterd.routing.shape import ReplyShape, tools_callable
from coderouterd.scrub import TEXT_CHARS, clip
from coderouterd.tasks import ABANDONED_AT_SHUTDOWN
from coderouterd.translate.estimate import PromptSize, SentPrompt
from coderouterd.translate.types import Degradation
from coderouterd.wire.usage import Usage, counted, sane_count

if TYPE_CHECKING:
    from coderouterd.routing.streams import KeepAlive

PROVIDER_HEADER = "x-coderouter-provider"
FALLBACK_PATH_HEADER = "x-coderouter-fallback-path"
FALLBACK_REASON_HEADER = "x-coderouter-fallback-reason"
# The answering provider's answers were drifting (mild or severe) when the request came.
DRIFT_HEADER = "x-coderouter-drift"

# Degradations told of one request to one provider, and their characters
# (fields and reasons) at most: the rest are counted. Each may quote a name
# of the client's (256 characters), up to 6 bytes each as JSON: this keeps
# the line far below journald's 48 KiB, past which it is split into pieces
# that are no longer JSON.
_MOST_DEGRADATIONS = 32
_MOST_DEGRADATION_CHARS = 4096

CLIENT_CLOSED_STATUS = 499
SHUTDOWN_STATUS = 503


@dataclass(frozen=True, slots=True)
class Reply:
    """A finished answer: a whole body, or a marker that it was streamed."""

    status: int
    body: bytes
    content_type: str
    headers: Mapping[str, str] = field(default_factory=dict)
    outcome: str = "ok"
    # What happened, in words, when a stream failed past its commit point.
    detail: str | None = None

    @classmethod
    def streamed(cls, outcome: str, detail: str | None = None) -> Reply:
        return cls(200, b"", "text/event-stream", outcome=outcome, detail=detail)


# The degradation a translation notes when it sends a request without its tools.
TOOLS_FIELD = "tools"


class Progress:
    def __init__(self, call: Call, plan: Plan, clock: Clock, observer: Observer) -> None:
        self.call = call
        self.plan = plan
        self._clock = clock
        self._observer = observer
        self._start = clock.monotonic()
        self._attempt_start = self._start
        self._attempt_ttfb: float | None = None
        self._attempt_queued_ms: float | None = None
        self._last_ping: float | None = None
        self._reported = False
        self.records: list[AttemptRecord] = [
            AttemptRecord(provider=s.provider, outcome="skipped", reason=s.reason)
            for s in plan.skipped
        ]
        self.provider: str | None = None
        self.status = 500
        self.error: str | None = None
        self.usage: Usage | None = None
        self.usage_estimated = False
        self.repairs = 0
        self.ttfb_ms: float | None = None
        self.client_disconnected = False
        # Read from the answer the client gets (the stream's, or the last
        # attempt's whole reply); set by the attempt that answers.
        self.shape: ReplyShape | None = None
        # Providers the request went to without its tools (a model that
        # cannot call them): their prompt is measured without them.
        self._without_tools: frozenset[str] = frozenset()
        self._prompt = SentPrompt(call.fields, call.media)
        self._models = {p.name: p.model for p in (*plan.attempts, *plan.reserve)}

    def _ms(self, since: float) -> float:
        return round((self._clock.monotonic() - since) * 1000, 3)

    def start_attempt(self, provider: str, *, queued_at: float | None = None) -> None:
        """`queued_at`: when the attempt began to wait for a slot of the provider."""
        self._attempt_start = self._clock.monotonic()
        self._attempt_ttfb = None
        self._attempt_queued_ms = None if queued_at is None else self._ms(queued_at)
        self._observer.attempt_started(self.call.request_id, provider)

    @property
    def attempt_started(self) -> float:
        """When the latest attempt began, after any wait for its slot
        (monotonic); the request's start before any began."""
        return self._attempt_start

    def waiting(self, providers: Sequence[str]) -> None:
        """The request waits in line for a slot of any of `providers`."""
        self._observer.waiting_for_slot(self.call.request_id, providers)

    def degraded(self, provider: str, degradations: Sequence[Degradation]) -> None:
        """What the request to `provider` left out or changed, told once. Each
        names what the client sent (a block's type, a tool's kind) and is
        logged: cut to a sane length, and so are their number and their size."""
        told: list[Degradation] = []
        room = _MOST_DEGRADATION_CHARS
        for d in degradations[:_MOST_DEGRADATIONS]:
            entry = Degradation(clip(d.field), clip(d.reason, TEXT_CHARS))
            room -= len(entry.field) + len(entry.reason)
            if room < 0:
                break
            told.append(entry)
        if (more := len(degradations) - len(told)) > 0:
            told.append(Degradation("...", f"{more} more"))
        if any(d.field == TOOLS_FIELD for d in degradations):
            self._without_tools |= {provider}
        self._observer.degraded(self.call.request_id, provider, told)

    def skip(self, provider: str, reason: str) -> None:
        """A provider passed over at run time (busy), like those the plan skipped."""
        self.records.append(AttemptRecord(provider=provider, outcome="skipped", reason=reason))

    def reskip(self, provider: str, reason: str | None) -> None:
        """Asked about again at run time (lineup.py), `provider`'s latest skip
        stands if the same reason skips it now; else it gives way to what it
        meets now, in the order things happened: the reason that skips it
        now, told anew, or (None) the attempt that follows."""
        for i in range(len(self.records) - 1, -1, -1):
            record = self.records[i]
            if record.provider == provider and record.outcome == "skipped":
                if record.reason == reason:
                    return
                del self.records[i]
                if reason is not None:
                    self.skip(provider, reason)
                return

    def first_byte(self) -> None:
        self._attempt_ttfb = self._ms(self._attempt_start)
        self.ttfb_ms = self._ms(self._start)

    def end_attempt(
        self,
        outcome: str,
        reason: str | None,
        *,
        provider: str,
        status: int | None = None,
        detail: str | None = None,
        answered: bool = False,
        context_window: int | None = None,
        prompt_tokens: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        record = AttemptRecord(
            provider=provider,
            outcome=outcome,
            reason=reason,
            # A translator's refusal may quote what the client sent.
            detail=clip(detail, TEXT_CHARS) or None,
            status=status,
            ttfb_ms=self._attempt_ttfb,
            latency_ms=self._ms(self._attempt_start),
            queued_ms=self._attempt_queued_ms,
            # Read from the backend's error text: digits of any length.
            context_window=sane_count(context_window),
            prompt_tokens=sane_count(prompt_tokens),
            retry_after_s=retry_after_s,
            model=self._models.get(provider),
            # A refused provider was sent nothing to measure.
            prompt_estimate=None if outcome == "refused" else self._size(provider).tokens,
        )
        self.records.append(record)
        if answered:
            self.provider = provider
        elif outcome != "interrupted":
            # The first byte of an answer that fell through is no answer's:
            # the request's is the one of the attempt that answers, if any.
            self.ttfb_ms = None
        self._observer.attempt_finished(self.call.request_id, record)

    def _size(self, provider: str | None) -> PromptSize:
        """The prompt as `provider` was sent it (None: whole, tools and all).
        A window a provider refused the prompt by is a limit on what it got,
        whoever answered."""
        return self._prompt.size(bare=provider in self._without_tools)

    def _fields(self, provider: str | None) -> Mapping[str, msgspec.Raw]:
        return self._prompt.fields(bare=provider in self._without_tools)

    def failures(self) -> list[AttemptFailure]:
        return [
            AttemptFailure(
                r.provider,
                r.reason or r.outcome,
                r.status,
                r.retry_after_s,
                # A refused provider was sent nothing, as a skipped one.
                attempted=r.outcome not in ("skipped", "refused"),
            )
            for r in self.records
        ]

    def headers(self, provider: str | None) -> dict[str, str]:
        """The routing headers of an answer from `provider` (None: from no
        provider), the attempts recorded so far being those before it."""
        out: dict[str, str] = {}
        if provider is not None:
            out[PROVIDER_HEADER] = provider
            if drift := self.plan.drift.get(provider):
                out[DRIFT_HEADER] = drift
        if self.records:
            tried = [r.provider for r in self.records]
            out[FALLBACK_PATH_HEADER] = ",".join(tried if provider is None else [*tried, provider])
            out[FALLBACK_REASON_HEADER] = ", ".join(
                f"{r.provider}={r.reason or r.outcome}" for r in self.records
            )
        return out

    def next_ping_at(self, keepalive: KeepAlive) -> float:
        if self._last_ping is None:
            return self._start + keepalive.after_s
        return self._last_ping + keepalive.interval_s

    def pinged(self) -> None:
        self._last_ping = self._clock.monotonic()

    def finish(self, status: int, *, error: str | None = None) -> None:
        self.status = status
        if error is not None:
            self.error = error

    @property
    def client_answered(self) -> bool:
        """Whether the current attempt's answer began to reach the client: a
        stream past its commit point (its first content frame). A whole reply
        reaches the client only once the engine returns it, so an attempt cut
        short before then answered nobody, whatever the upstream had sent."""
        return self.call.stream and self._attempt_ttfb is not None

    def interrupted(self, *, shutdown: bool, stalled: str | None = None) -> None:
        """The request was cut short: by the client leaving, or by the daemon
        shutting down. `stalled`: the client was cut off for not reading, and
        why, told apart from one that left in the request's error."""
        if shutdown:
            self.status = SHUTDOWN_STATUS
            self.error = ABANDONED_AT_SHUTDOWN
        else:
            self.client_disconnected = True
            self.status = CLIENT_CLOSED_STATUS
            self.error = stalled or self.error

    def report(self) -> None:
        if self._reported:
            return
        self._reported = True
        shape = self.shape if self.provider is not None else None
        # What the answering provider was sent, and counted: a backend's count
        # is judged against it (cut prompts, learned windows), and its tool
        # use against the tools it was offered (none, when sent without: drift).
        fields = self._fields(self.provider)
        prompt = self._size(self.provider)
        self._observer.request_finished(
            RequestSummary(
                request_id=self.call.request_id,
                dialect=self.call.dialect,
                profile=self.plan.profile,
                # The client's to choose, and logged and stored: of any length.
                requested_model=clip(self.call.requested_model),
                provider=self.provider,
                attempts=tuple(self.records),
                status=self.status,
                stream=self.call.stream,
                ttfb_ms=self.ttfb_ms,
                total_ms=self._ms(self._start),
                # What the backend reported, as metrics, the spend and the
                # request log count it: no negative count, none SQLite cannot hold.
                usage=counted(self.usage),
                usage_estimated=self.usage_estimated,
                repairs=self.repairs,
                stop_reason=shape.stop_reason if shape is not None else None,
                tool_use=shape.tool_use if shape is not None else None,
                tools_offered=tools_callable(fields),
                prompt_estimate=prompt.tokens,
                prompt_images=prompt.images,
                prompt_image_tokens=prompt.image_tokens,
                error=clip(self.error, TEXT_CHARS),
                client_disconnected=self.client_disconnected,
            )
        )
