"""A stream through its commit point and after (the engine's streaming half).

Until the first content frame (the head) nothing is sent but keep-alive
pings, so another provider may still take over; after it, frames are
forwarded as they come, pings fill the client's silences, and a failure
ends the stream in-stream.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar, runtime_checkable

from coderouterd.clock import Clock
from coderouterd.config.model import TimeoutsConfig
from coderouterd.errors import (
    MEMORY_PRESSURE,
    ClientDisconnectedError,
    UpstreamError,
    UpstreamMemoryError,
    UpstreamProtocolError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)
from coderouterd.routing.call import Call
from coderouterd.routing.progress import Progress
from coderouterd.routing.shape import ReplyShape
from coderouterd.routing.upstream import Adapter, Out, Transcoder, UpstreamBody
from coderouterd.tasks import cancel_and_wait
from coderouterd.telemetry import events
from coderouterd.telemetry.logging import get_logger
from coderouterd.wire.errors import mentions_memory_pressure
from coderouterd.wire.overflow import overflow_in
from coderouterd.wire.sse import FrameTooLargeError

_T = TypeVar("_T")
_log = get_logger()

# How long a client may still take to read the end of a stream (its error
# frame, its last chunk) once the attempt's deadline has passed, or the
# daemon abandoned it at shutdown; one that has stopped reading is then cut
# off rather than waited for.
LAST_WORD_S = 0.5
# The error frame of a stream cut off because its client stopped reading.
STALLED = "stream cut off: the client had stopped reading it when timeouts.total_s ran out"


class StreamSink(Protocol):
    """The client side of a stream; implemented by the ingress SSE writer."""

    @property
    def started(self) -> bool: ...

    async def ping(self) -> None: ...

    async def commit(self, headers: Mapping[str, str]) -> None: ...

    async def write(self, data: bytes) -> None: ...

    async def fail(self, error_type: str, message: str) -> None: ...

    async def finish(self) -> None: ...


@runtime_checkable
class _Redacting(Protocol):
    """An upstream body that knows the credentials its request was sent with."""

    def redact(self, data: bytes) -> bytes: ...


def _redacted(resp: UpstreamBody, data: bytes) -> bytes:
    """`data`, an upstream's error event, without the credentials of the
    request `resp` answers, should the upstream quote them (some gateways
    quote the request's headers): it goes on to the client, the logs and
    the replay record. Only errors pay for the search."""
    return resp.redact(data) if isinstance(resp, _Redacting) else data


@dataclass(frozen=True, slots=True)
class KeepAlive:
    after_s: float
    interval_s: float


@dataclass(frozen=True, slots=True)
class Ending:
    """How a stream past its commit point ended: `reason` is None when whole,
    else one of the attempt reasons a failure before it has (a metric's
    label: a small fixed set, never the upstream's words), with `detail`
    the free text for operators; `error` is the error frame still owed to
    the client (an upstream error event was forwarded as it came, and owes
    none)."""

    reason: str | None = None
    error: str | None = None
    detail: str | None = None


def failed(provider: str, reason: str, detail: str | None = None) -> Ending:
    said = f"{reason} ({detail})" if detail else reason
    return Ending(reason, f"upstream provider {provider!r} failed mid-stream: {said}", detail)


@dataclass(slots=True)
class _Client:
    """A stream's client, and whether a write (a frame, a ping) waits on it to read."""

    sink: StreamSink
    waited_on: bool = False

    async def wait_on(self, write: Awaitable[None]) -> None:
        self.waited_on = True
        await write
        self.waited_on = False


async def pump(
    head: Head,
    *,
    clock: Clock,
    keepalive: KeepAlive,
    sink: StreamSink,
    idle_s: float,
    deadline: float,
    provider: str,
    shape: ReplyShape,
) -> Ending:
    """Forward frames until the terminal one, or until `deadline`.

    The deadline bounds the writes to the client as well as the reads: a
    client that stops reading must not hold the attempt (its provider's
    slot, its upstream connection) past total_s. One timer for the whole
    stream, so a write that completes at once pays for none. Passed while a
    write waits on it, that client is cut off as one that left: no failure.
    """
    client = _Client(sink)
    try:
        async with asyncio.timeout(max(0.0, deadline - clock.monotonic())):
            return await _forward(
                head,
                clock=clock,
                keepalive=keepalive,
                client=client,
                idle_s=idle_s,
                provider=provider,
                shape=shape,
            )
    except TimeoutError:
        if not client.waited_on:
            return failed(provider, "timeout_total")
    await end_stream(sink, STALLED, wait_s=LAST_WORD_S)
    raise ClientDisconnectedError(STALLED)


async def _forward(
    head: Head,
    *,
    clock: Clock,
    keepalive: KeepAlive,
    client: _Client,
    idle_s: float,
    provider: str,
    shape: ReplyShape,
) -> Ending:
    """Forward frames until the terminal one, with idle_s between chunks
    (`pump` holds the deadline).

    While the client hears nothing, it gets a keep-alive after
    keepalive.after_s and then every interval_s, as before the first
    byte: a backend that sends a long tool call only once it is whole
    (or holds back text the output filters are still deciding on) must
    not look like a dead stream to the client or to a proxy between.
    """
    tc = head.transcoder
    frames = head.frames
    # When the client last got bytes, and how long it may then hear nothing.
    heard, quiet_s = clock.monotonic(), keepalive.after_s
    while True:
        if frames:
            shape.frames(frames)
            await client.wait_on(client.sink.write(b"".join(frames)))
            heard, quiet_s = clock.monotonic(), keepalive.after_s
        if tc.upstream_error is not None:
            # The event's own words name memory, not the model's before it;
            # any other is a failure, as the same event before the commit point.
            memory = mentions_memory_pressure(tc.upstream_error_body)
            reason = MEMORY_PRESSURE if memory else UpstreamProtocolError.reason
            return Ending(reason, detail=f"error event mid-stream: {tc.upstream_error}")
        if tc.finished:
            return Ending()
        now = clock.monotonic()
        # Gaps between chunks are limited from the wait's start; pings do not reset it.
        idle_at = now + idle_s
        try:
            while True:
                ping_at = heard + quiet_s
                try:
                    async with asyncio.timeout(max(0.0, min(idle_at, ping_at) - now)):
                        chunk = await head.resp.chunk()
                    break
                except TimeoutError:
                    if ping_at >= idle_at:
                        raise
                await client.wait_on(client.sink.ping())
                heard, quiet_s = clock.monotonic(), keepalive.interval_s
                now = heard
            outs = read_frames(provider, tc, chunk)
        except TimeoutError:
            return failed(provider, "timeout_idle")
        except UpstreamError as exc:
            return failed(provider, exc.reason, exc.detail)
        frames = _for_client(head, outs)
        if not chunk and not tc.finished:
            if frames:
                shape.frames(frames)
                await client.wait_on(client.sink.write(b"".join(frames)))
            ended = f"stream ended without {tc.final_event}"
            return failed(provider, UpstreamProtocolError.reason, ended)


def _for_client(head: Head, outs: list[Out]) -> list[bytes]:
    """The frames to send; with an upstream's error event among them, without
    the credentials it may quote."""
    frames = [o.raw for o in outs]
    if head.transcoder.upstream_error is None:
        return frames
    return [_redacted(head.resp, f) for f in frames]


async def with_pings(
    task: asyncio.Task[_T],
    sink: StreamSink,
    progress: Progress,
    *,
    clock: Clock,
    keepalive: KeepAlive,
    drop: Callable[[_T], None],
) -> _T:
    """What `task` gives (a head opened, a provider's slot), the client pinged
    meanwhile (before the first byte). Given just as we were cancelled, it is
    handed to `drop` (a head's connection aborted, a slot given back)."""
    try:
        while True:
            delay = progress.next_ping_at(keepalive) - clock.monotonic()
            done, _ = await asyncio.wait({task}, timeout=max(0.0, delay))
            if done:
                return task.result()
            await sink.ping()
            progress.pinged()
    except BaseException:
        await cancel_and_wait(task)
        if task.done() and not task.cancelled() and task.exception() is None:
            drop(task.result())
        raise


def drop_head(head: Head) -> None:
    head.resp.abort()


@dataclass(slots=True)
class Head:
    """The frames read up to the commit point, and what to continue reading with."""

    resp: UpstreamBody
    transcoder: Transcoder
    frames: list[bytes]


async def open_head(
    adapter: Adapter, call: Call, body: bytes, tc: Transcoder, t: TimeoutsConfig
) -> Head:
    """Send the request and read until the first content frame, within first_byte_s
    (or total_s, when that is shorter).

    Anything failing here has sent nothing to the client: the engine may fall back.
    """
    wait, phase = first_wait(t.first_byte_s, t.total_s)
    with opening(adapter.name, phase) as opened:
        async with asyncio.timeout(wait):
            resp = opened.resp = await adapter.open(call, body)
            held: list[bytes] = []
            while True:
                chunk = await resp.chunk()
                outs = read_frames(adapter.name, tc, chunk)
                if tc.upstream_error is not None:
                    said = _redacted(resp, tc.upstream_error_body)
                    raise head_error(adapter.name, resp.status, tc.upstream_error, said)
                held.extend(o.raw for o in outs)
                if any(o.content for o in outs):
                    return Head(resp, tc, held)
                if not chunk:
                    raise UpstreamProtocolError(adapter.name, "stream ended before any content")


@contextlib.contextmanager
def reading(provider: str, what: str) -> Iterator[None]:
    """Whatever else than an upstream error reading a provider's `what` (its
    stream, its answer) raises, a shape of its bytes the code was not written
    for, fails it like a malformed one: the next provider is tried, or,
    after the commit point, the client gets its error frame, never a bare
    500 or a connection cut without one. Logged with the traceback."""
    try:
        yield
    except UpstreamError:
        raise
    except FrameTooLargeError as exc:
        # A cap the daemon keeps, not a shape it missed: no traceback.
        raise UpstreamProtocolError(provider, str(exc)) from exc
    except Exception as exc:
        _log.exception(events.PROVIDER_STREAM_UNREADABLE, provider=provider, error=repr(exc))
        raise UpstreamProtocolError(provider, f"unreadable {what} ({type(exc).__name__})") from exc


def read_frames(provider: str, tc: Transcoder, chunk: bytes) -> list[Out]:
    """The frames `chunk` completes (its end when empty); see `reading`."""
    with reading(provider, "stream"):
        return tc.feed(chunk) if chunk else tc.end()


def head_error(provider: str, status: int, kind: str, said: bytes) -> UpstreamError:
    """What an error event (of type `kind`, its data `said`) before the first
    content frame means, read from the event's own words only (text the
    filters held back, the model's, may come out with it): as an error
    status would, out of memory first (a window too large to allocate is
    that), then a prompt that does not fit (llama.cpp and sglang refuse a
    stream's prompt so, after a 200), else a failure."""
    if mentions_memory_pressure(said):
        return UpstreamMemoryError(provider, f"error event before content: {kind}")
    if (overflow := overflow_in(said)) is not None:
        # The status is the one the stream came with: the refusal was in it.
        return UpstreamStatusError(
            provider, status, said, "application/json", kind, overflow=overflow
        )
    return UpstreamProtocolError(provider, f"error event before content: {kind}")


@dataclass(slots=True)
class Opened:
    """The response an attempt opened, and which limit its timeout is now."""

    phase: str
    resp: UpstreamBody | None = None


@contextlib.contextmanager
def opening(provider: str, phase: str) -> Iterator[Opened]:
    """Around an attempt's request: on any failure the response it opened
    is aborted (its connection is not reused), and a timeout becomes the
    provider's timeout of the phase it was in."""
    opened = Opened(phase)
    try:
        yield opened
    except TimeoutError as exc:
        if opened.resp is not None:
            opened.resp.abort()
        raise UpstreamTimeoutError(provider, opened.phase) from exc
    except BaseException:
        if opened.resp is not None:
            opened.resp.abort()
        raise


async def tell_client_of_shutdown(sink: StreamSink) -> None:
    # The stream is being abandoned: end it with an error event rather than a cut.
    with contextlib.suppress(ClientDisconnectedError, ConnectionError):
        await end_stream(
            sink,
            "coderouterd is shutting down; the stream was cut short",
            error_type="overloaded_error",
            wait_s=LAST_WORD_S,
        )


async def end_stream(
    sink: StreamSink, error: str | None, *, error_type: str = "api_error", wait_s: float
) -> None:
    """Send the error frame owed, if any, and the end of the stream, within
    `wait_s`. A client that has not taken them by then has stopped reading,
    and the sink cuts it off (SSEWriter.finish) rather than wait for it."""
    try:
        async with asyncio.timeout(wait_s):
            if error is not None:
                await sink.fail(error_type, error)
            await sink.finish()
    except TimeoutError:
        await sink.finish()


def first_wait(first_byte_s: float, total_s: float) -> tuple[float, str]:
    """How long an attempt may wait for its first byte, and which limit that is:
    total_s bounds the whole attempt, so a first_byte_s beyond it never applies."""
    if total_s < first_byte_s:
        return total_s, "total"
    return first_byte_s, "first_byte"
