"""The one loop that executes a plan: try each provider in order.

Before the commit point any failure moves on to the next provider; the
client may meanwhile be kept alive with `ping` events. After it, a failure
ends the stream with an in-stream `error` event. Every attempt and the final
summary are reported to the observer, whatever happens, exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

from coderouterd.clock import Clock
from coderouterd.errors import (
    ClientDisconnectedError,
    NoProviderAvailableError,
    UpstreamError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)
from coderouterd.routing.anthropic_stream import Head, StreamState, read_head
from coderouterd.routing.call import Call
from coderouterd.routing.plan import Plan
from coderouterd.routing.progress import Progress, Reply
from coderouterd.routing.records import Observer
from coderouterd.routing.upstream import Adapter, UpstreamBody
from coderouterd.routing.verdict import Verdict, classify_status
from coderouterd.tasks import cancel_and_wait, cancelled_by_shutdown, spawn
from coderouterd.wire.errors import error_type_of
from coderouterd.wire.sse import SSEEvent
from coderouterd.wire.usage import usage_of_body

T = TypeVar("T")


class StreamSink(Protocol):
    """The client side of a stream; implemented by the ingress SSE writer."""

    @property
    def started(self) -> bool: ...

    async def ping(self) -> None: ...

    async def commit(self, headers: Mapping[str, str]) -> None: ...

    async def write(self, data: bytes) -> None: ...

    async def fail(self, error_type: str, message: str) -> None: ...

    async def finish(self) -> None: ...


@dataclass(frozen=True, slots=True)
class KeepAlive:
    after_s: float
    interval_s: float


class Engine:
    def __init__(
        self,
        adapters: Mapping[str, Adapter],
        observer: Observer,
        clock: Clock,
        keepalive: KeepAlive,
    ) -> None:
        self._adapters = adapters
        self._observer = observer
        self._clock = clock
        self._keepalive = keepalive

    async def unary(self, call: Call, plan: Plan) -> Reply:
        progress = Progress(call, plan, self._clock, self._observer)
        try:
            reply = await self._each(progress, lambda a: self._unary_attempt(a, call, progress))
            progress.finish(reply.status)
            return reply
        except NoProviderAvailableError as exc:
            progress.finish(exc.status, error=str(exc))
            raise
        except asyncio.CancelledError as exc:
            progress.interrupted(shutdown=cancelled_by_shutdown(exc))
            raise
        finally:
            progress.report()

    async def stream(self, call: Call, plan: Plan, sink: StreamSink) -> Reply | None:
        """Stream the answer into `sink`; or return a Reply the caller must send as a
        plain HTTP response (an error status, when nothing was sent yet)."""
        progress = Progress(call, plan, self._clock, self._observer)
        try:
            reply = await self._each(
                progress, lambda a: self._stream_attempt(a, call, sink, progress)
            )
            progress.finish(reply.status)
            if reply.outcome != "returned":
                return None
            if not sink.started:
                return reply
            # Pings already committed us to a 200 stream: carry the error inside it.
            kind = error_type_of(reply.body) or "api_error"
            await sink.fail(
                kind, f"upstream provider {progress.provider!r} answered {reply.status}"
            )
            await sink.finish()
            return None
        except NoProviderAvailableError as exc:
            if not sink.started:
                progress.finish(exc.status, error=str(exc))
                raise
            # Headers went out with the keep-alive pings: the error must be in-stream.
            progress.finish(200, error=str(exc))
            await sink.fail("overloaded_error", str(exc))
            await sink.finish()
            return None
        except ClientDisconnectedError:
            progress.interrupted(shutdown=False)
            return None
        except asyncio.CancelledError as exc:
            shutdown = cancelled_by_shutdown(exc)
            progress.interrupted(shutdown=shutdown)
            if shutdown and sink.started:
                await _tell_client_of_shutdown(sink)
            raise
        finally:
            progress.report()

    async def _each(
        self, progress: Progress, attempt: Callable[[Adapter], Awaitable[Reply]]
    ) -> Reply:
        for provider in progress.plan.attempts:
            name = provider.name
            progress.start_attempt(name)
            try:
                reply = await attempt(self._adapters[name])
            except UpstreamStatusError as exc:
                if classify_status(exc.status, exc.error_type) is Verdict.RETURN:
                    progress.end_attempt(
                        "returned", exc.reason, provider=name, status=exc.status, answered=True
                    )
                    return Reply.from_status_error(exc, progress.headers(name))
                progress.end_attempt(
                    "failed", exc.reason, provider=name, status=exc.status, detail=exc.detail
                )
            except UpstreamError as exc:
                progress.end_attempt("failed", exc.reason, provider=name, detail=exc.detail)
            except (asyncio.CancelledError, ClientDisconnectedError) as exc:
                cause = "shutdown" if cancelled_by_shutdown(exc) else "client_disconnected"
                progress.end_attempt(
                    "interrupted", cause, provider=name, answered=progress.attempt_committed
                )
                raise
            else:
                ok = reply.outcome == "ok"
                progress.end_attempt(
                    "ok" if ok else "failed",
                    None if ok else reply.outcome,
                    provider=name,
                    status=reply.status,
                    answered=True,
                )
                return reply
        raise NoProviderAvailableError(progress.plan.profile, progress.failures())

    async def _unary_attempt(self, adapter: Adapter, call: Call, progress: Progress) -> Reply:
        t = adapter.config.timeouts
        resp = await _within(t.first_byte_s, adapter.name, "first_byte", adapter.open(call))
        progress.first_byte()
        try:
            body = await _within(t.total_s, adapter.name, "total", resp.body())
        except BaseException:
            resp.abort()
            raise
        resp.release()
        progress.usage = usage_of_body(body)
        return Reply(resp.status, body, resp.content_type, progress.headers(adapter.name))

    async def _stream_attempt(
        self, adapter: Adapter, call: Call, sink: StreamSink, progress: Progress
    ) -> Reply:
        t = adapter.config.timeouts
        deadline = self._clock.monotonic() + t.total_s
        head = await self._with_pings(
            spawn(_open_head(adapter, call, t.first_byte_s), name=f"head:{call.request_id}"),
            sink,
            progress,
        )
        progress.first_byte()
        state = StreamState()
        try:
            await sink.commit(progress.headers(adapter.name))
            outcome = await self._pump(
                head,
                state=state,
                sink=sink,
                idle_s=t.idle_s,
                deadline=deadline,
                provider=adapter.name,
            )
        except BaseException:
            head.resp.abort()
            raise
        progress.usage = state.usage
        if outcome is None:
            head.resp.release()
            await sink.finish()
            return Reply.streamed("ok")
        head.resp.abort()
        progress.error = outcome
        await sink.finish()
        return Reply.streamed(outcome)

    async def _pump(
        self,
        head: Head,
        *,
        state: StreamState,
        sink: StreamSink,
        idle_s: float,
        deadline: float,
        provider: str,
    ) -> str | None:
        """Forward events until message_stop; return None, or the reason the stream failed."""
        batch: list[SSEEvent] = head.events
        while True:
            for ev in batch:
                state.observe(ev)
            await sink.write(b"".join(ev.raw for ev in batch))
            if state.error_type is not None:
                return f"upstream_error_event:{state.error_type}"
            if state.saw_stop:
                return None
            remaining = deadline - self._clock.monotonic()
            phase = "idle" if idle_s < remaining else "total"
            try:
                async with asyncio.timeout(max(0.0, min(idle_s, remaining))):
                    next_batch = await head.reader.next_batch()
            except TimeoutError:
                return await _fail(sink, provider, f"timeout_{phase}")
            except UpstreamError as exc:
                return await _fail(sink, provider, f"{exc.reason}: {exc.detail}")
            if next_batch is None:
                return await _fail(sink, provider, "stream ended without message_stop")
            batch = next_batch

    async def _with_pings(
        self, task: asyncio.Task[Head], sink: StreamSink, progress: Progress
    ) -> Head:
        try:
            while True:
                delay = progress.next_ping_at(self._keepalive) - self._clock.monotonic()
                done, _ = await asyncio.wait({task}, timeout=max(0.0, delay))
                if done:
                    return task.result()
                await sink.ping()
                progress.pinged()
        except BaseException:
            await cancel_and_wait(task)
            # The head may have arrived just as we were cancelled: drop its connection.
            if task.done() and not task.cancelled() and task.exception() is None:
                task.result().resp.abort()
            raise


async def _tell_client_of_shutdown(sink: StreamSink) -> None:
    # The stream is being abandoned: end it with an error event rather than a cut.
    with contextlib.suppress(ClientDisconnectedError, ConnectionError):
        await sink.fail(
            "overloaded_error", "coderouterd is shutting down; the stream was cut short"
        )
        await sink.finish()


async def _fail(sink: StreamSink, provider: str, reason: str) -> str:
    await sink.fail("api_error", f"upstream provider {provider!r} failed mid-stream: {reason}")
    return reason


async def _open_head(adapter: Adapter, call: Call, first_byte_s: float) -> Head:
    resp: UpstreamBody | None = None
    try:
        async with asyncio.timeout(first_byte_s):
            resp = await adapter.open(call)
            return await read_head(resp, adapter.name)
    except TimeoutError as exc:
        if resp is not None:
            resp.abort()
        raise UpstreamTimeoutError(adapter.name, "first_byte") from exc
    except BaseException:
        if resp is not None:
            resp.abort()
        raise


async def _within(seconds: float, provider: str, phase: str, aw: Awaitable[T]) -> T:
    try:
        async with asyncio.timeout(seconds):
            return await aw
    except TimeoutError as exc:
        raise UpstreamTimeoutError(provider, phase) from exc
