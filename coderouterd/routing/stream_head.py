"""A stream up to its commit point: the request sent, frames read until the
first one for the client that is content (the head).

The first-byte limit waits for the upstream to start answering. Content
the output filters hold back (a call printed as text until it is whole,
reasoning until `</think>`) is an answer under way: from its first frame
the attempt is bounded by total_s and idle_s between chunks, as a stream
past its commit point is, while nothing has reached the client yet, so a
failure still falls through to the next provider.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from coderouterd.config.model import TimeoutsConfig
from coderouterd.errors import (
    UpstreamError,
    UpstreamMemoryError,
    UpstreamProtocolError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)
from coderouterd.routing.call import Call
from coderouterd.routing.upstream import Adapter, Holding, Out, Transcoder, UpstreamBody
from coderouterd.telemetry import events
from coderouterd.telemetry.logging import get_logger
from coderouterd.wire.errors import mentions_memory_pressure
from coderouterd.wire.overflow import overflow_in
from coderouterd.wire.sse import FrameTooLargeError

_log = get_logger()


@runtime_checkable
class _Redacting(Protocol):
    """An upstream body that knows the credentials its request was sent with."""

    def redact(self, data: bytes) -> bytes: ...


def redacted(resp: UpstreamBody, data: bytes) -> bytes:
    """`data`, an upstream's error event, without the credentials of the
    request `resp` answers, should the upstream quote them (some gateways
    quote the request's headers): it goes on to the client, the logs and
    the replay record. Only errors pay for the search."""
    return resp.redact(data) if isinstance(resp, _Redacting) else data


@dataclass(slots=True)
class Head:
    """The frames read up to the commit point, and what to continue reading with."""

    resp: UpstreamBody
    transcoder: Transcoder
    frames: list[bytes]


def drop_head(head: Head) -> None:
    head.resp.abort()


async def open_head(
    adapter: Adapter, call: Call, body: bytes, tc: Transcoder, t: TimeoutsConfig
) -> Head:
    """Send the request and read until the first content frame for the client.
    The upstream's own first content frame must come within first_byte_s (or
    total_s, when that is shorter); from it on, while the filters hold what
    follows, idle_s bounds each gap between chunks and total_s the attempt.

    Anything failing here has sent nothing to the client: the engine may fall back.
    """
    wait, phase = first_wait(t.first_byte_s, t.total_s)
    # Asked once: only a transcoder that may hold content back says so.
    holding = tc if isinstance(tc, Holding) else None
    loop = asyncio.get_running_loop()
    with opening(adapter.name, phase) as opened:
        async with asyncio.timeout(wait) as limit:
            resp = opened.resp = await adapter.open(call, body)
            held: list[bytes] = []
            # When total_s ends the attempt, once the upstream's content began.
            total_at: float | None = None
            while True:
                if total_at is not None:
                    idle_at = loop.time() + t.idle_s
                    opened.phase = "idle" if idle_at < total_at else "total"
                    limit.reschedule(min(idle_at, total_at))
                chunk = await resp.chunk()
                outs = read_frames(adapter.name, tc, chunk)
                if tc.upstream_error is not None:
                    said = redacted(resp, tc.upstream_error_body)
                    raise head_error(adapter.name, resp.status, tc.upstream_error, said)
                held.extend(o.raw for o in outs)
                if any(o.content for o in outs):
                    return Head(resp, tc, held)
                if not chunk:
                    raise UpstreamProtocolError(adapter.name, "stream ended before any content")
                if total_at is None and holding is not None and holding.produced:
                    total_at = _started(limit, wait) + t.total_s


def _started(limit: asyncio.Timeout, wait: float) -> float:
    when = limit.when()
    assert when is not None  # set on entry, from the first-byte wait
    return when - wait


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


def first_wait(first_byte_s: float, total_s: float) -> tuple[float, str]:
    """How long an attempt may wait for its first byte, and which limit that is:
    total_s bounds the whole attempt, so a first_byte_s beyond it never applies."""
    if total_s < first_byte_s:
        return total_s, "total"
    return first_byte_s, "first_byte"
