"""The completion routes: POST /v1/messages (Anthropic) and /v1/chat/completions (OpenAI).

Both run the same steps; only the client dialect, and so the codecs, the
stream writer and the error envelope, differ.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping

import msgspec
from aiohttp import web

from coderouterd.errors import (
    CoderouterError,
    NoProviderAvailableError,
    RequestError,
)
from coderouterd.ingress.amend import amended
from coderouterd.ingress.body import RequestBody, parse_body
from coderouterd.ingress.decode import read_body
from coderouterd.ingress.delivery import deliver, response_of, send_within
from coderouterd.ingress.errors import error_response, status_of
from coderouterd.ingress.keys import DAEMON, REQUEST_ID
from coderouterd.ingress.middleware import (
    REQUEST_ID_HEADER,
    SHUTTING_DOWN,
    close_if_stopping,
    plain_error,
)
from coderouterd.ingress.recording import ReplayRecording
from coderouterd.ingress.sse import AnthropicSSEWriter, OpenAISSEWriter, SSEWriter
from coderouterd.ingress.turn import read_turn
from coderouterd.routing.auto import AutoRouter, fence_ratio
from coderouterd.routing.call import Call
from coderouterd.routing.engine import Engine
from coderouterd.routing.plan import (
    MODE_HEADER,
    PROFILE_HEADER,
    Plan,
    Route,
    choose_route,
    plan_attempts,
)
from coderouterd.routing.progress import CLIENT_CLOSED_STATUS, SHUTDOWN_STATUS, Progress
from coderouterd.scrub import TEXT_CHARS, clip
from coderouterd.tasks import ABANDONED_AT_SHUTDOWN, cancelled_by_shutdown
from coderouterd.telemetry import events
from coderouterd.telemetry.logging import get_logger
from coderouterd.translate.capabilities import ModelCapabilities
from coderouterd.translate.estimate import (
    BYTES_PER_TOKEN,
    MediaScan,
    SentPrompt,
    estimate_prompt_tokens,
)

# Client headers an adapter may need; the rest never leave this process.
_CLIENT_HEADERS = ("anthropic-version", "anthropic-beta", "x-api-key", "authorization")


# Lists: HTTP reads two lines of one as one line joined by commas.
_LIST_HEADERS = frozenset({"anthropic-beta"})


def _client_headers(request: web.Request) -> dict[str, str]:
    """The client's headers that go on to Anthropic providers."""
    got = request.headers
    return {
        h: ", ".join(got.getall(h)) if h in _LIST_HEADERS else got[h]
        for h in _CLIENT_HEADERS
        if h in got
    }


_WRITERS: dict[str, type[SSEWriter]] = {"anthropic": AnthropicSSEWriter, "openai": OpenAISSEWriter}

_encode = msgspec.json.Encoder().encode
_log = get_logger()

# What the request log says of a request whose client left before its body was in.
_CLIENT_LEFT = "client disconnected"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def completion_handler(dialect: str) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        return await _complete(request, dialect)

    return handle


async def _complete(request: web.Request, dialect: str) -> web.StreamResponse:
    daemon = request.app[DAEMON]
    rid = request[REQUEST_ID]
    started = daemon.clock.monotonic()
    # In flight from its first byte: shutdown waits for a body still on its
    # way as it does for an answer.
    daemon.inflight.add(rid, dialect=dialect, profile="", stream=False)
    try:
        try:
            raw = await read_body(request)
        except asyncio.CancelledError as exc:
            shutdown = cancelled_by_shutdown(exc)
            daemon.rejected(
                rid,
                dialect=dialect,
                status=SHUTDOWN_STATUS if shutdown else CLIENT_CLOSED_STATUS,
                error=ABANDONED_AT_SHUTDOWN if shutdown else _CLIENT_LEFT,
                model=None,
                stream=False,
                started=started,
                client_disconnected=not shutdown,
            )
            if not shutdown:
                raise
            # The rest of the body is not read: the connection goes after the answer.
            request.protocol.close()
            return plain_error(dialect, SHUTDOWN_STATUS, SHUTTING_DOWN, rid)
        except RequestError as exc:
            # Too large, or not readable: refused before routing like a bad body.
            daemon.rejected(
                rid,
                dialect=dialect,
                status=exc.status,
                error=clip(str(exc), TEXT_CHARS),
                model=None,
                stream=False,
                started=started,
            )
            raise
        return await _route(request, dialect, raw, started)
    finally:
        daemon.inflight.remove(rid)


async def _route(
    request: web.Request, dialect: str, raw: bytes, started: float
) -> web.StreamResponse:
    daemon = request.app[DAEMON]
    runtime = daemon.holder.current
    rid = request[REQUEST_ID]
    parsed: RequestBody | None = None
    # The profile's name once it is known to exist: a refusal by its policy
    # (a tool loop under `break`) is the profile's, not one before routing.
    chosen = ""
    try:
        parsed = daemon.bodies.parse(raw)
        route = choose_route(
            runtime.config,
            header=request.headers.get(MODE_HEADER),
            profile_header=request.headers.get(PROFILE_HEADER),
            body_profile=parsed.profile,
            model=parsed.model,
        )
        if route.auto and runtime.auto_router is not None:
            route = _auto_route(runtime.auto_router, parsed, daemon.auto_matches)
        # None for an unknown profile: plan_attempts says which.
        profile = runtime.config.profile(route.profile)
        chosen = "" if profile is None else profile.name
        # Windows and the prompt's estimate matter only to a profile that skips by them.
        fit = "off" if profile is None else profile.context_action
        windows = (
            {}
            if fit == "off"
            else daemon.windows.limits(runtime.context_windows if fit == "skip" else {})
        )
        # What the providers are sent, the profile's system text included: the
        # prompt windows are judged by, and the request log records.
        fields = amended(profile, parsed, dialect)
        plan = plan_attempts(
            runtime.config,
            route,
            unavailable=daemon.unavailable(runtime, dialect),
            excluded=daemon.healing.book.excluded(),
            cooling=daemon.healing.book.cooling(),
            drift=daemon.drift.flagged,
            drift_demoted=daemon.drift.demoted(),
            slow=daemon.pace.demoted(),
            # Measured only for a provider with a window, as it is sent the prompt.
            prompt_tokens=_sent_estimate(runtime.capabilities, fields, parsed.media),
            windows=windows,
        )
    except CoderouterError as exc:
        # Refused before any provider was chosen: still one log line and one row.
        status = status_of(exc)
        daemon.rejected(
            rid,
            dialect=dialect,
            profile=chosen,
            status=status,
            error=clip(str(exc), TEXT_CHARS),
            model=clip(parsed.model) if parsed else None,
            stream=parsed.stream if parsed else False,
            started=started,
        )
        raise
    call = Call(
        request_id=rid,
        dialect=dialect,
        fields=parsed.fields,
        headers=_client_headers(request),
        stream=parsed.stream,
        requested_model=parsed.model,
        profile=plan.profile,
        created=int(daemon.clock.wall()),
        history=parsed.history,
        media=parsed.media,
        conversation=parsed.conversation,
        body=parsed.raw,
        turn=parsed.turn,
        shared=parsed.shared,
    )
    # The record keeps what the client sent; a hint goes to the providers only.
    routed = (
        call if fields is parsed.fields else dataclasses.replace(call, fields=fields, body=None)
    )
    capture = daemon.replay_capture(plan.profile)
    with daemon.track(call) as entry:
        replay = ReplayRecording(daemon, call, request.headers, capture, entry)
        if parsed.stream:
            return await _stream(request, runtime.engine, routed, plan, replay)
        return await _unary(request, runtime.engine, routed, plan, replay)


async def _unary(
    request: web.Request,
    engine: Engine,
    routed: Call,
    plan: Plan,
    replay: ReplayRecording,
) -> web.StreamResponse:
    rid = routed.request_id
    handed: list[Progress] = []
    try:
        reply = await engine.unary(routed, plan, after=handed.append)
    except (NoProviderAvailableError, RequestError) as exc:
        return _unanswered(routed, replay, exc)
    except asyncio.CancelledError as exc:
        if not cancelled_by_shutdown(exc):
            # Its client left: recorded, with no answer.
            replay.done()
            raise
        # Logged as abandoned at shutdown by the engine: the client is
        # told so, and the connection goes after the answer.
        request.protocol.close()
        told = plain_error(routed.dialect, 503, SHUTTING_DOWN, rid)
        replay.done(told.body if isinstance(told.body, bytes) else b"")
        return told
    unary = response_of(reply, {REQUEST_ID_HEADER: rid})
    close_if_stopping(request, unary)
    now = request.app[DAEMON].clock.monotonic()
    progress = handed[0]
    await deliver(
        request,
        unary,
        wait_s=send_within(plan, reply, started=progress.attempt_started, now=now),
        progress=progress,
        record=functools.partial(replay.done, reply.body),
    )
    return unary


async def _stream(
    request: web.Request, engine: Engine, routed: Call, plan: Plan, replay: ReplayRecording
) -> web.StreamResponse:
    sink = _WRITERS[routed.dialect](request, {REQUEST_ID_HEADER: routed.request_id})
    sink.capture = replay.capture
    # None: the stream went to the client; otherwise a whole reply
    # (an error before anything was streamed) is still to be sent.
    try:
        unsent = await engine.stream(routed, plan, sink)
    except (NoProviderAvailableError, RequestError) as exc:
        return _unanswered(routed, replay, exc)
    except asyncio.CancelledError:
        # Its client left, or the shutdown cut it: recorded with what was sent.
        replay.done()
        raise
    if unsent is None:
        replay.done()
        return sink.response
    replay.done(unsent.body)
    return response_of(unsent)


def _unanswered(
    call: Call, replay: ReplayRecording, exc: NoProviderAvailableError | RequestError
) -> web.Response:
    """The error response to a routed request no provider answered (all
    failed, or it could not be written for one), recorded for replay as the
    client gets it. The engine has made its report already."""
    response = error_response(call.dialect, exc, call.request_id)
    if isinstance(body := response.body, bytes):
        replay.done(body)
    return response


def _sent_estimate(
    capabilities: Mapping[str, ModelCapabilities],
    fields: Mapping[str, msgspec.Raw],
    media: MediaScan | None,
) -> Callable[[str], int]:
    """The prompt's estimate as a provider is sent it: without its tools to
    one whose model cannot call them, as windows are learned (progress.py)."""
    prompt = SentPrompt(fields, media)

    def sent_to(provider: str) -> int:
        caps = capabilities.get(provider)
        return prompt.size(bare=caps is not None and not caps.tools).tokens

    return sent_to


def _auto_route(router: AutoRouter, parsed: RequestBody, counts: Counter[tuple[str, str]]) -> Route:
    """The profile the auto router picks for a request that chose none,
    counted by rule ("" for none) and profile."""
    turn = read_turn(parsed)
    choice = router.choose(turn)
    counts[(choice.rule or "", choice.profile)] += 1
    if not _log.is_enabled_for(logging.DEBUG):
        # The fence ratio is a regular expression over the user's text.
        return Route(choice.profile)
    _log.debug(
        events.ROUTING_AUTO,
        rule=choice.rule,
        profile=choice.profile,
        has_image=turn.has_image,
        code_fence_ratio=round(fence_ratio(turn.text), 3),
        content_len=len(turn.text),
        model=clip(turn.model),
        estimated_tokens=turn.estimated_tokens,
    )
    return Route(choice.profile)


async def count_tokens(request: web.Request) -> web.Response:
    daemon, rid = request.app[DAEMON], request[REQUEST_ID]
    # In flight while its body arrives: a shutdown gives it its grace period
    # as it does a completion's.
    daemon.inflight.add(rid, dialect="anthropic", profile="", stream=False)
    try:
        raw = await read_body(request)
    finally:
        daemon.inflight.remove(rid)
    parsed = parse_body(raw)
    estimate = estimate_prompt_tokens(parsed.fields, parsed.media)
    return web.Response(
        body=_encode({"input_tokens": estimate}),
        content_type="application/json",
        headers={"x-coderouter-estimate": f"bytes/{BYTES_PER_TOKEN}"},
    )
