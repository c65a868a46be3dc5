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
from typing import Protocol

from coderouterd.clock import Clock
from coderouterd.config.model import TimeoutsConfig
from coderouterd.errors import (
    ClientDisconnectedError,
    NoProviderAvailableError,
    RequestError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)
from coderouterd.routing.call import Call
from coderouterd.routing.plan import Plan
from coderouterd.routing.progress import Progress, Reply
from coderouterd.routing.records import Observer
from coderouterd.routing.upstream import (
    Adapter,
    Codec,
    ProviderRoute,
    Transcoder,
    UpstreamBody,
)
from coderouterd.routing.verdict import Verdict, classify_status
from coderouterd.tasks import cancel_and_wait, cancelled_by_shutdown, spawn
from coderouterd.wire.errors import error_type_of


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
        routes: Mapping[str, ProviderRoute],
        observer: Observer,
        clock: Clock,
        keepalive: KeepAlive,
    ) -> None:
        self._routes = routes
        self._observer = observer
        self._clock = clock
        self._keepalive = keepalive

    async def unary(
        self, call: Call, plan: Plan, *, after: Callable[[Callable[[], None]], None] | None = None
    ) -> Reply:
        """The answer to `call`. `after`, if given, is handed the request's report
        when a reply is returned, for the caller to make once the reply is sent;
        a call that raises is reported here all the same."""
        progress = Progress(call, plan, self._clock, self._observer)
        handed = False
        try:
            reply = await self._each(progress, lambda a: self._unary_attempt(a, call, progress))
            progress.finish(reply.status)
            if after is not None:
                after(progress.report)
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
        except (NoProviderAvailableError, RequestError) as exc:
            if not sink.started:
                progress.finish(exc.status, error=str(exc))
                raise
            # Headers went out with the keep-alive pings: the error must be in-stream.
            progress.finish(200, error=str(exc))
            failed = isinstance(exc, NoProviderAvailableError)
            await sink.fail("overloaded_error" if failed else "invalid_request_error", str(exc))
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
        self, progress: Progress, attempt: Callable[[ProviderRoute], Awaitable[Reply]]
    ) -> Reply:
        for provider in progress.plan.attempts:
            name = provider.name
            progress.start_attempt(name)
            try:
                reply = await attempt(self._routes[name])
            except RequestError as exc:
                # The request cannot be written for this provider: the client's
                # error, answered as such; no later provider is tried for it.
                progress.end_attempt("refused", "invalid_request", provider=name, detail=str(exc))
                raise
            except UpstreamStatusError as exc:
                if classify_status(exc.status, exc.error_type) is Verdict.RETURN:
                    progress.end_attempt(
                        "returned", exc.reason, provider=name, status=exc.status, answered=True
                    )
                    codec = self._routes[name].codecs[progress.call.dialect]
                    return Reply(
                        exc.status,
                        codec.error_body(exc.status, exc.body),
                        "application/json",
                        progress.headers(name),
                        outcome="returned",
                    )
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

    async def _unary_attempt(self, route: ProviderRoute, call: Call, progress: Progress) -> Reply:
        adapter, codec = route.adapter, route.codecs[call.dialect]
        t = adapter.config.timeouts
        body = self._request_body(codec, call, adapter.name)
        wait, phase = _first_wait(t.first_byte_s, t.total_s)
        resp: UpstreamBody | None = None
        # One timeout, moved on from the first-byte limit to the total one.
        try:
            async with asyncio.timeout(wait) as limit:
                resp = await adapter.open(call, body)
                progress.first_byte()
                phase = "total"
                limit.reschedule(_when(limit) - wait + t.total_s)
                raw = await resp.body()
        except TimeoutError as exc:
            if resp is not None:
                resp.abort()
            raise UpstreamTimeoutError(adapter.name, phase) from exc
        except BaseException:
            if resp is not None:
                resp.abort()
            raise
        resp.release()
        unary = codec.unary(raw, call)
        progress.usage, progress.usage_estimated = unary.usage, unary.usage_estimated
        progress.repairs = unary.repairs
        return Reply(resp.status, unary.body, unary.content_type, progress.headers(adapter.name))

    async def _stream_attempt(
        self, route: ProviderRoute, call: Call, sink: StreamSink, progress: Progress
    ) -> Reply:
        adapter, codec = route.adapter, route.codecs[call.dialect]
        t = adapter.config.timeouts
        deadline = self._clock.monotonic() + t.total_s
        body = self._request_body(codec, call, adapter.name)
        opening = spawn(
            _open_head(adapter, call, body, codec.transcoder(call), t),
            name=f"head:{call.request_id}",
        )
        # Sent once the head is open: a long stream need not hold the body too.
        del body
        head = await self._with_pings(opening, sink, progress)
        progress.first_byte()
        try:
            await sink.commit(progress.headers(adapter.name))
            outcome = await self._pump(
                head, sink=sink, idle_s=t.idle_s, deadline=deadline, provider=adapter.name
            )
        except BaseException:
            head.resp.abort()
            raise
        finally:
            tc = head.transcoder
            progress.usage, progress.usage_estimated = tc.usage, tc.usage_estimated
            progress.repairs = tc.repairs
        if outcome is None:
            head.resp.release()
        else:
            head.resp.abort()
            progress.error = outcome
        await sink.finish()
        return Reply.streamed(outcome or "ok")

    def _request_body(self, codec: Codec, call: Call, provider: str) -> bytes:
        body, degraded = codec.request(call)
        if degraded:
            self._observer.degraded(call.request_id, provider, degraded)
        return body

    async def _pump(
        self,
        head: Head,
        *,
        sink: StreamSink,
        idle_s: float,
        deadline: float,
        provider: str,
    ) -> str | None:
        """Forward frames until the terminal one; return None, or why the stream failed.

        While the client hears nothing, it gets a keep-alive after
        keepalive.after_s and then every interval_s, as before the first
        byte: a backend that sends a long tool call only once it is whole
        (or holds back text the output filters are still deciding on) must
        not look like a dead stream to the client or to a proxy between.
        """
        tc = head.transcoder
        frames = head.frames
        clock, keepalive = self._clock, self._keepalive
        # When the client last got bytes, and how long it may then hear nothing.
        heard, quiet_s = clock.monotonic(), keepalive.after_s
        while True:
            if frames:
                await sink.write(b"".join(frames))
                heard, quiet_s = clock.monotonic(), keepalive.after_s
            if tc.upstream_error is not None:
                return f"upstream_error_event:{tc.upstream_error}"
            if tc.finished:
                return None
            now = clock.monotonic()
            # Gaps between chunks are limited from the wait's start; pings do not reset it.
            idle_at = now + idle_s
            limit, phase = (idle_at, "idle") if idle_at < deadline else (deadline, "total")
            try:
                while True:
                    ping_at = heard + quiet_s
                    try:
                        async with asyncio.timeout(max(0.0, min(limit, ping_at) - now)):
                            chunk = await head.resp.chunk()
                        break
                    except TimeoutError:
                        if ping_at >= limit:
                            raise
                    await sink.ping()
                    heard, quiet_s = clock.monotonic(), keepalive.interval_s
                    now = heard
                outs = tc.feed(chunk) if chunk else tc.end()
            except TimeoutError:
                return await _fail(sink, provider, f"timeout_{phase}")
            except UpstreamError as exc:
                return await _fail(sink, provider, f"{exc.reason}: {exc.detail}")
            frames = [o.raw for o in outs]
            if not chunk and not tc.finished:
                if frames:
                    await sink.write(b"".join(frames))
                return await _fail(sink, provider, f"stream ended without {tc.final_event}")

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


@dataclass(slots=True)
class Head:
    """The frames read up to the commit point, and what to continue reading with."""

    resp: UpstreamBody
    transcoder: Transcoder
    frames: list[bytes]


async def _open_head(
    adapter: Adapter, call: Call, body: bytes, tc: Transcoder, t: TimeoutsConfig
) -> Head:
    """Send the request and read until the first content frame, within first_byte_s
    (or total_s, when that is shorter).

    Anything failing here has sent nothing to the client: the engine may fall back.
    """
    resp: UpstreamBody | None = None
    wait, phase = _first_wait(t.first_byte_s, t.total_s)
    try:
        async with asyncio.timeout(wait):
            resp = await adapter.open(call, body)
            held: list[bytes] = []
            while True:
                chunk = await resp.chunk()
                outs = tc.feed(chunk) if chunk else tc.end()
                if tc.upstream_error is not None:
                    raise UpstreamProtocolError(
                        adapter.name, f"error event before content: {tc.upstream_error}"
                    )
                held.extend(o.raw for o in outs)
                if any(o.content for o in outs):
                    return Head(resp, tc, held)
                if not chunk:
                    raise UpstreamProtocolError(adapter.name, "stream ended before any content")
    except TimeoutError as exc:
        if resp is not None:
            resp.abort()
        raise UpstreamTimeoutError(adapter.name, phase) from exc
    except BaseException:
        if resp is not None:
            resp.abort()
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


def _first_wait(first_byte_s: float, total_s: float) -> tuple[float, str]:
    """How long an attempt may wait for its first byte, and which limit that is:
    total_s bounds the whole attempt, so a first_byte_s beyond it never applies."""
    if total_s < first_byte_s:
        return total_s, "total"
    return first_byte_s, "first_byte"


def _when(limit: asyncio.Timeout) -> float:
    when = limit.when()
    assert when is not None  # set on entry, from the first-byte wait
    return when
