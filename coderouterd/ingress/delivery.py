"""The client side of a whole (non-streaming) answer, sent within a deadline.

A client that has not taken its answer by then has stopped reading it: it
is cut off rather than waited for, so that the request's report (log line,
request row, spend) and its place among the requests in flight do not hang
on it for as long as it keeps its connection open.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Literal

from aiohttp import web

from coderouterd.routing.plan import Plan
from coderouterd.routing.progress import PROVIDER_HEADER, Progress, Reply
from coderouterd.routing.streams import LAST_WORD_S
from coderouterd.tasks import cancelled_by_shutdown
from coderouterd.telemetry import events
from coderouterd.telemetry.logging import get_logger

_log = get_logger()

# How much of a whole answer its client took.
Taken = Literal["all", "left", "stalled"]
# What the request log says of a client that stopped reading its answer;
# one that left is told by `client_disconnected` alone, as a stream's is.
CLIENT_STALLED = "client stopped reading the answer"


def response_of(reply: Reply, extra: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        status=reply.status,
        body=reply.body,
        headers={**reply.headers, **(extra or {}), "content-type": reply.content_type},
    )


def send_within(plan: Plan, reply: Reply, *, started: float, now: float) -> float:
    """How long the client may take to read `reply`: what is left of the
    answering provider's total_s (the longest of the chain's, for an answer
    of the daemon's own) since its attempt `started`, the attempt's own
    deadline, as total_s bounds the writes to a stream's client (the
    providers tried before, and a wait for a slot, take nothing of it); and
    at least a last word's time, as at the end of a stream."""
    provider = reply.headers.get(PROVIDER_HEADER)
    tried = (*plan.attempts, *plan.reserve)
    limits = [p.timeouts.total_s for p in tried if provider in (None, p.name)]
    return max(started + max(limits, default=0.0) - now, LAST_WORD_S)


async def deliver(
    request: web.Request,
    response: web.Response,
    *,
    wait_s: float,
    progress: Progress,
    record: Callable[[], None],
) -> None:
    """Send a whole answer within `wait_s`, then report the request (log
    line, request row, spend) and `record` it for replay, after the report,
    which names the provider that answered: the client does not wait for
    them. A client that did not take all of it is reported as one that left
    (499), or the request as abandoned at shutdown; its spend counts all the
    same: the provider did the work. Nothing of the report or the record may
    fail the request: an error is logged, and the rest still runs."""
    taken: Taken = "left"
    shutdown = False
    try:
        taken = await _send(request, response, wait_s)
    except asyncio.CancelledError as exc:
        shutdown = cancelled_by_shutdown(exc)
        raise
    finally:
        if taken != "all":
            stalled = CLIENT_STALLED if taken == "stalled" else None
            progress.interrupted(shutdown=shutdown, stalled=stalled)
        for step in (progress.report, record):
            try:
                step()
            except Exception as exc:
                _log.exception(events.REQUEST_BOOKKEEPING_FAILED, error=repr(exc))


async def _send(request: web.Request, response: web.Response, wait_s: float) -> Taken:
    """How much of the answer the client took: a client that stopped reading
    is cut off. A send cancelled (by the shutdown, or the client leaving)
    cuts it off too: aiohttp would otherwise go on waiting for a client that
    does not read to finish the answer, and the part sent is no answer."""
    try:
        async with asyncio.timeout(wait_s):
            await response.prepare(request)
            await response.write_eof()
    except ConnectionError:
        return "left"
    except TimeoutError:
        _cut(request)
        return "stalled"
    except asyncio.CancelledError:
        _cut(request)
        raise
    return "all"


def _cut(request: web.Request) -> None:
    if (transport := request.transport) is not None:
        transport.abort()
