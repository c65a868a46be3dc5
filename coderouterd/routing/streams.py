"""A stream through its commit point and after (the engine's streaming half).

Until the first content frame (the head, read by stream_head.py) nothing
is sent but keep-alive pings, so another provider may still take over;
after it, frames are forwarded as they come, pings fill the client's
silences, and a failure ends the stream in-stream.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

from coderouterd.clock import Clock
from coderouterd.errors import (
    MEMORY_PRESSURE,
    ClientDisconnectedError,
    UpstreamError,
    UpstreamProtocolError,
)
from coderouterd.routing.progress import Progress
from coderouterd.routing.shape import ReplyShape
from coderouterd.routing.stream_head import (
    Head,
    drop_head,
    first_wait,
    open_head,
    opening,
    read_frames,
    reading,
    redacted,
)
from coderouterd.routing.upstream import Out
from coderouterd.tasks import cancel_and_wait
from coderouterd.wire.errors import mentions_memory_pressure

# The head's names too: the engine takes the whole stream from here.
__all__ = [
    "LAST_WORD_S",
    "STALLED",
    "Ending",
    "Head",
    "KeepAlive",
    "StreamSink",
    "drop_head",
    "end_stream",
    "failed",
    "first_wait",
    "open_head",
    "opening",
    "pump",
    "read_frames",
    "reading",
    "tell_client_of_shutdown",
    "with_pings",
]

_T = TypeVar("_T")

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
    return [redacted(head.resp, f) for f in frames]


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
