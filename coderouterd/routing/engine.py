"""The one loop that executes a plan: try each provider in order.

Before the commit point any failure moves on to the next provider; the
client may meanwhile be kept alive with `ping` events. After it, a failure
ends the stream with an in-stream `error` event. Every attempt and the final
summary are reported to the observer, whatever happens, exactly once. The
streaming half (the head, pings, forwarding after the commit) is streams.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence

from coderouterd.clock import Clock
from coderouterd.config.model import ProviderConfig
from coderouterd.errors import (
    ClientDisconnectedError,
    NoProviderAvailableError,
    RequestError,
    UntranslatableRequestError,
    UpstreamError,
    UpstreamStatusError,
)
from coderouterd.routing.all_failed import LearnedOf, error_type_for, none_answered
from coderouterd.routing.call import Call
from coderouterd.routing.lineup import BudgetCheck, Lineup, RotationCheck, SlotWait
from coderouterd.routing.plan import Plan
from coderouterd.routing.progress import Progress, Reply
from coderouterd.routing.records import Observer
from coderouterd.routing.shape import ReplyShape
from coderouterd.routing.slots import Gate, Slots, take_first
from coderouterd.routing.streams import (
    LAST_WORD_S,
    KeepAlive,
    StreamSink,
    drop_head,
    end_stream,
    first_wait,
    open_head,
    opening,
    pump,
    reading,
    tell_client_of_shutdown,
    with_pings,
)
from coderouterd.routing.upstream import Codec, ProviderRoute
from coderouterd.routing.verdict import Verdict, classify_status
from coderouterd.tasks import cancelled_by_shutdown, spawn
from coderouterd.wire.error_reply import as_envelope, error_event, error_reply
from coderouterd.wire.errors import with_request_id
from coderouterd.wire.overflow import Overflow

# BudgetCheck and RotationCheck, for those who build an Engine (runtime.py).
__all__ = ["BudgetCheck", "Engine", "RotationCheck"]


class Engine:
    def __init__(
        self,
        routes: Mapping[str, ProviderRoute],
        observer: Observer,
        clock: Clock,
        keepalive: KeepAlive,
        slots: Slots | None = None,
        *,
        budget_spent: BudgetCheck | None = None,
        out_of_rotation: RotationCheck | None = None,
        learned: LearnedOf | None = None,
        windows: Mapping[str, int] | None = None,
    ) -> None:
        """`budget_spent`: the reason to skip a provider whose budget is spent
        in the month a request arrived in, or None; `out_of_rotation`: the
        reason a profile skips a provider taken out of rotation, or None;
        both asked as each attempt starts (lineup.py). `learned` and
        `windows` (the configured ones): what the plan skipped a provider
        for as too small for the prompt, for the answer when none answers."""
        self._routes = routes
        self._observer = observer
        self._clock = clock
        self._keepalive = keepalive
        self._slots = slots or Slots()
        self._budget_spent = budget_spent or _never_spent
        self._out_of_rotation = out_of_rotation or _never_out
        self._learned = learned or _nothing_learned
        self._windows = windows or {}

    async def unary(
        self, call: Call, plan: Plan, *, after: Callable[[Progress], None] | None = None
    ) -> Reply:
        """The answer to `call`. `after`, if given, is handed the request's
        progress when a reply is returned, for the caller to report once the
        reply is sent (as cut short, when its client did not take it all); a
        call that raises is reported here all the same."""
        progress = Progress(call, plan, self._clock, self._observer)
        handed = False
        try:
            reply = await self._each(
                progress, lambda a: self._unary_attempt(a, call, progress), take_first
            )
            progress.finish(reply.status)
            if after is not None:
                after(progress)
                handed = True
            return reply
        except (NoProviderAvailableError, RequestError) as exc:
            progress.finish(exc.status, error=str(exc))
            raise
        except asyncio.CancelledError as exc:
            progress.interrupted(shutdown=cancelled_by_shutdown(exc))
            raise
        finally:
            if not handed:
                progress.report()

    async def stream(self, call: Call, plan: Plan, sink: StreamSink) -> Reply | None:
        """Stream the answer into `sink`; or return a Reply the caller must send as a
        plain HTTP response (an error status, when nothing was sent yet)."""
        progress = Progress(call, plan, self._clock, self._observer)

        async def wait(gates: Sequence[Gate]) -> int:
            # A stream waiting for a slot is kept alive like one waiting for its first byte.
            taking = spawn(take_first(gates), name=f"slot:{call.request_id}")
            return await with_pings(
                taking, sink, progress, clock=self._clock, keepalive=self._keepalive,
                drop=lambda i: gates[i].give_back(),
            )  # fmt: skip

        try:
            reply = await self._each(
                progress, lambda a: self._stream_attempt(a, call, sink, progress), wait
            )
            progress.finish(reply.status)
            if reply.outcome != "returned":
                return None
            if not sink.started:
                return reply
            # Pings committed us to a 200 stream: the error response's body goes inside it.
            body = as_envelope(call.dialect, reply.status, reply.body, call.request_id)
            await sink.write(error_event(call.dialect, body))
            await sink.finish()
            return None
        except (NoProviderAvailableError, RequestError) as exc:
            # The request log keeps the status the error has, sent as one or not:
            # a failure counts as one whether or not a ping went out before it.
            progress.finish(exc.status, error=str(exc))
            if not sink.started:
                raise
            # Headers went out with the keep-alive pings: the error response's body, in-stream.
            body = error_reply(call.dialect, exc, call.request_id)
            await sink.write(error_event(call.dialect, body))
            await sink.finish()
            return None
        except ClientDisconnectedError as exc:
            # Raised with words only for a client cut off for not reading (streams.STALLED).
            progress.interrupted(shutdown=False, stalled=str(exc) or None)
            return None
        except asyncio.CancelledError as exc:
            shutdown = cancelled_by_shutdown(exc)
            progress.interrupted(shutdown=shutdown)
            if shutdown and sink.started:
                await tell_client_of_shutdown(sink)
            raise
        finally:
            progress.report()

    async def _each(
        self,
        progress: Progress,
        attempt: Callable[[ProviderRoute], Awaitable[Reply]],
        wait: SlotWait,
    ) -> Reply:
        # The last provider that found the prompt too long for its window, and what it said.
        too_long: tuple[str, Overflow] | None = None
        # What the first provider the request could not be written for said.
        refused: UntranslatableRequestError | None = None
        # Progress has just begun timing the request: its row is filed under
        # now (request_recorder.arrived), and so is its spend.
        lineup = Lineup(
            progress, arrived=self._clock.wall(), clock=self._clock, slots=self._slots,
            budget_spent=self._budget_spent, out_of_rotation=self._out_of_rotation, wait=wait,
        )  # fmt: skip
        while lineup:
            turn = await lineup.next()
            if turn is None:
                continue
            provider, gate = turn
            name = provider.name
            try:
                reply = await attempt(self._routes[name])
            except RequestError as exc:
                progress.end_attempt("refused", "invalid_request", provider=name, detail=str(exc))
                if not isinstance(exc, UntranslatableRequestError):
                    # Holds for every provider: the client's error, answered at once.
                    raise
                # Not for this provider's dialect or model: another may take it.
                refused = refused or exc
            except UpstreamStatusError as exc:
                if (returned := self._status_error(progress, name, exc)) is not None:
                    return returned
                too_long = (name, exc.overflow) if exc.overflow is not None else too_long
            except UpstreamError as exc:
                progress.end_attempt("failed", exc.reason, provider=name, detail=exc.detail)
            except (asyncio.CancelledError, ClientDisconnectedError) as exc:
                cause = "shutdown" if cancelled_by_shutdown(exc) else "client_disconnected"
                progress.end_attempt(
                    "interrupted", cause, provider=name, answered=progress.client_answered
                )
                raise
            else:
                ok = reply.outcome == "ok"
                progress.end_attempt(
                    "ok" if ok else "failed",
                    None if ok else reply.outcome,
                    provider=name,
                    status=reply.status,
                    detail=reply.detail,
                    answered=True,
                )
                return reply
            finally:
                if gate is not None:
                    gate.give_back()
        return none_answered(
            progress, too_long, refused, learned=self._learned, windows=self._windows
        )

    def _status_error(
        self, progress: Progress, name: str, exc: UpstreamStatusError
    ) -> Reply | None:
        """Record an error status; the Reply when it goes back to the client as it is."""
        if exc.overflow is not None:
            # A healthy backend; one with a larger window may take the prompt.
            progress.end_attempt(
                "too_long", exc.reason, provider=name, status=exc.status,
                detail=exc.overflow.message[:300],
                context_window=exc.overflow.window,
                prompt_tokens=exc.overflow.prompt_tokens,
            )  # fmt: skip
            return None
        verdict = classify_status(exc.status, exc.error_type, memory_pressure=exc.memory_pressure)
        if verdict is not Verdict.RETURN:
            progress.end_attempt(
                "failed", exc.reason, provider=name, status=exc.status, detail=exc.detail,
                retry_after_s=exc.retry_after_s,
            )  # fmt: skip
            return None
        headers = progress.headers(name)
        progress.end_attempt(
            "returned", exc.reason, provider=name, status=exc.status, answered=True
        )
        call = progress.call
        body = self._routes[name].codecs[call.dialect].error_body(exc.status, exc.body)
        if body != exc.body:
            # Written here (the upstream's text put in an envelope, or its error
            # in the other dialect), so it carries our request id, as our own
            # errors do; an upstream's own body goes on as it is, with its id.
            body = with_request_id(call.dialect, body, call.request_id)
        return Reply(exc.status, body, "application/json", headers, outcome="returned")

    async def _unary_attempt(self, route: ProviderRoute, call: Call, progress: Progress) -> Reply:
        adapter, codec = route.adapter, route.codecs[call.dialect]
        t = adapter.config.timeouts
        body = _request_body(codec, progress, adapter.name)
        wait, phase = first_wait(t.first_byte_s, t.total_s)
        # One timeout, moved on from the first-byte limit to the total one.
        with opening(adapter.name, phase) as opened:
            async with asyncio.timeout(wait) as limit:
                resp = opened.resp = await adapter.open(call, body)
                progress.first_byte()
                opened.phase = "total"
                limit.reschedule(_when(limit) - wait + t.total_s)
                raw = await resp.body()
        resp.release()
        with reading(adapter.name, "answer"):
            unary = codec.unary(raw, call)
        progress.usage, progress.usage_estimated = unary.usage, unary.usage_estimated
        progress.repairs = unary.repairs
        progress.shape = ReplyShape(call.dialect)
        progress.shape.body(unary.body)
        return Reply(resp.status, unary.body, unary.content_type, progress.headers(adapter.name))

    async def _stream_attempt(
        self, route: ProviderRoute, call: Call, sink: StreamSink, progress: Progress
    ) -> Reply:
        adapter, codec = route.adapter, route.codecs[call.dialect]
        t = adapter.config.timeouts
        deadline = self._clock.monotonic() + t.total_s
        body = _request_body(codec, progress, adapter.name)
        opening = spawn(
            open_head(adapter, call, body, codec.transcoder(call), t),
            name=f"head:{call.request_id}",
        )
        # Sent once the head is open: a long stream need not hold the body too.
        del body
        head = await with_pings(
            opening, sink, progress, clock=self._clock, keepalive=self._keepalive, drop=drop_head
        )
        progress.first_byte()
        progress.shape = ReplyShape(call.dialect)
        try:
            await sink.commit(progress.headers(adapter.name))
            ending = await pump(
                head,
                clock=self._clock,
                keepalive=self._keepalive,
                sink=sink,
                idle_s=t.idle_s,
                deadline=deadline,
                provider=adapter.name,
                shape=progress.shape,
            )
        except BaseException:
            head.resp.abort()
            raise
        finally:
            tc = head.transcoder
            progress.usage, progress.usage_estimated = tc.usage, tc.usage_estimated
            progress.repairs = tc.repairs
        if ending.reason is None:
            head.resp.release()
        else:
            head.resp.abort()
            progress.error = f"{ending.reason}: {ending.detail}" if ending.detail else ending.reason
        # total_s bounds the end of the stream too; but the deadline may have
        # just passed, and a client still reading gets a last word's time.
        wait_s = max(deadline - self._clock.monotonic(), LAST_WORD_S)
        # What is owed is the daemon's own error (a cut, a timeout), in the client's words.
        kind = error_type_for(call.dialect, 500)
        await end_stream(sink, ending.error, error_type=kind, wait_s=wait_s)
        return Reply.streamed(ending.reason or "ok", ending.detail)


def _request_body(codec: Codec, progress: Progress, provider: str) -> bytes:
    body, degraded = codec.request(progress.call)
    if degraded:
        progress.degraded(provider, degraded)
    return body


def _never_spent(provider: ProviderConfig, arrived: float) -> str | None:
    return None


def _never_out(profile: str, provider: str) -> str | None:
    return None


def _nothing_learned(provider: str) -> None:
    return None


def _when(limit: asyncio.Timeout) -> float:
    when = limit.when()
    assert when is not None  # set on entry, from the first-byte wait
    return when
