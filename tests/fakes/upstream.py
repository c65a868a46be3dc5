"""A scriptable fake LLM provider: a real aiohttp server on 127.0.0.1.

Tests queue `Reply` objects; each POST to a completion route pops one (FIFO)
and the server plays it back: status, headers, JSON or SSE events, with
pacing and faults (cut connection, malformed frame, missing terminator,
hang). Every request is recorded, and the server counts open TCP
connections and clients that went away before their reply finished, so
tests can assert that the daemon cancels and closes what it opened.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

import msgspec
import pytest_asyncio
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from multidict import CIMultiDict, CIMultiDictProxy

Dialect = Literal["anthropic", "openai"]

# POST routes served from the queue, matched by suffix so that base URLs with
# a prefix (`/openai/v1/chat/completions`) work as they do with real providers.
_SCRIPTED_SUFFIXES = ("/v1/messages", "/v1/messages/count_tokens", "/chat/completions")
_FIXED_GETS: dict[str, dict[str, Any]] = {
    "/v1/models": {
        "object": "list",
        "data": [{"id": "fake-model", "object": "model", "owned_by": "fake"}],
    },
    "/api/version": {"version": "0.0.0-fake"},
}

_MALFORMED_DATA = b"{this is not json"
_OPENAI_DONE = b"data: [DONE]\n\n"
# Sentinel in a frame plan: close the connection here instead of writing.
_CUT = None

# Long enough for a handler to notice cancellation, short enough that a
# fixture teardown never stalls a test run.
_SHUTDOWN_TIMEOUT = 0.5


@dataclass(frozen=True, kw_only=True)
class Reply:
    """One scripted answer; see the module docstring for how it is chosen."""

    status: int = 200
    # Streaming answer: (event name, data) pairs, in order. The name is
    # ignored for the OpenAI dialect, whose frames carry no `event:` line.
    events: list[tuple[str, dict[str, Any]]] | None = None
    json: dict[str, Any] | None = None
    raw_body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    dialect: Dialect = "anthropic"
    delay_before_headers: float = 0.0
    delay_before_first_event: float = 0.0
    delay_between_events: float = 0.0
    # Close the connection after this many events, before the stream ends.
    disconnect_after_events: int | None = None
    # After this many events, send one frame whose data is not JSON, then go on.
    malformed_after_events: int | None = None
    # Drop `message_stop` (Anthropic) or the `data: [DONE]` terminator (OpenAI).
    omit_message_stop: bool = False
    # Never answer; the request ends only when the client goes away.
    hang: bool = False
    # After this many frames, wait until the test sets `resume`: proves that
    # what came before reached the client while the upstream was still open.
    pause_after_frames: int | None = None
    resume: asyncio.Event | None = None
    # Non-streaming: send the headers and the first byte of the body, then
    # wait this long before the rest (a body that is slow after the headers).
    delay_within_body: float = 0.0
    # Streaming: the body's exact bytes instead of `events`, one write each
    # (paced by the delays above): frames split or joined where a test says.
    writes: list[bytes] | None = None


@dataclass(frozen=True)
class Recorded:
    """One request as the fake received it."""

    method: str
    path: str
    query_string: str
    headers: CIMultiDict[str]
    body: bytes
    json: Any  # the decoded body, or None when it was empty or not JSON
    # The client's end of the TCP connection the request came on: tells
    # which requests shared a pooled connection.
    peer_port: int | None = None


def sse_frame(dialect: Dialect, name: str, data: bytes) -> bytes:
    """Encode one SSE frame the way the dialect's real provider does."""
    if dialect == "openai":
        return b"data: " + data + b"\n\n"
    return b"event: " + name.encode() + b"\ndata: " + data + b"\n\n"


def plan_frames(reply: Reply) -> list[bytes | None]:
    """The bytes to write, one entry per write; `None` means cut the connection."""
    if reply.writes is not None:
        return list(reply.writes)
    events = list(reply.events or [])
    if reply.omit_message_stop and reply.dialect == "anthropic":
        events = [event for event in events if event[0] != "message_stop"]
    frames: list[bytes | None] = []
    for sent in range(len(events) + 1):
        if sent == reply.malformed_after_events:
            name = events[sent][0] if sent < len(events) else "content_block_delta"
            frames.append(sse_frame(reply.dialect, name, _MALFORMED_DATA))
        if sent == reply.disconnect_after_events:
            frames.append(_CUT)
            return frames
        if sent < len(events):
            name, data = events[sent]
            frames.append(sse_frame(reply.dialect, name, msgspec.json.encode(data)))
    if reply.dialect == "openai" and not reply.omit_message_stop:
        frames.append(_OPENAI_DONE)
    return frames


class _Waiters:
    """Futures resolved once a condition over the fake's counters holds.

    The counters change in sync callbacks (connection_lost), where an
    asyncio.Condition cannot be notified; so each change calls `wake()`.
    """

    def __init__(self) -> None:
        self._pending: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []

    def wake(self) -> None:
        pending = []
        for condition, future in self._pending:
            if future.done():
                continue
            if condition():
                future.set_result(None)
            else:
                pending.append((condition, future))
        self._pending = pending

    # Tests pass a bound on every wait: a forgotten one would stall until the
    # 60 s pytest timeout instead of failing at the wait that never came true.
    async def wait(self, condition: Callable[[], bool], timeout: float) -> None:  # noqa: ASYNC109
        if condition():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((condition, future))
        async with asyncio.timeout(timeout):
            await future


class _TrackingServer(web.Server):
    """Counts TCP connections as the transport reports them.

    The base class keeps a connection listed until its handler task ends,
    which lags the socket; tests want the socket's view.
    """

    def __init__(self, *args: Any, on_change: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.open_transports: dict[RequestHandler, asyncio.Transport] = {}
        self._on_change = on_change

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        self.open_transports[handler] = transport
        self._on_change()

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        super().connection_lost(handler, exc)
        self.open_transports.pop(handler, None)
        self._on_change()


class FakeUpstream:
    """The fake provider; start it, point the daemon at `url`, script replies."""

    def __init__(self, *, default: Reply | None = None) -> None:
        self.default = default
        # Chooses a reply from the request itself, for clients (like Claude Code)
        # whose requests cannot be scripted in order. Used when the queue is empty.
        self.responder: Callable[[Recorded], Reply] | None = None
        self.requests: list[Recorded] = []
        self._queue: deque[Reply] = deque()
        self._disconnects = 0
        self._waiters = _Waiters()
        self._server: _TrackingServer | None = None
        self._runner: web.ServerRunner | None = None
        self._port: int | None = None
        self._closing = False

    async def start(self) -> None:
        # handler_cancellation: a client going away cancels its handler, which
        # is how a hung or paced reply learns about the disconnect.
        self._server = _TrackingServer(
            self._handle, on_change=self._waiters.wake, handler_cancellation=True
        )
        self._runner = web.ServerRunner(self._server, shutdown_timeout=_SHUTDOWN_TIMEOUT)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]

    async def close(self) -> None:
        if self._runner is None or self._server is None:
            return
        self._closing = True
        # Aborting first cancels hung and paced handlers at once, instead of
        # the runner waiting out its shutdown timeout on each of them.
        for transport in list(self._server.open_transports.values()):
            transport.abort()
        await self._runner.cleanup()
        self._runner = None

    async def __aenter__(self) -> FakeUpstream:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def url(self) -> str:
        if self._port is None:
            raise RuntimeError("FakeUpstream.start() has not been awaited")
        return f"http://127.0.0.1:{self._port}"

    def script(self, *replies: Reply) -> None:
        self._queue.extend(replies)

    @property
    def pending(self) -> int:
        """Scripted replies not yet consumed."""
        return len(self._queue)

    @property
    def open_connections(self) -> int:
        return 0 if self._server is None else len(self._server.open_transports)

    @property
    def disconnects_seen(self) -> int:
        return self._disconnects

    async def wait_for_disconnect(self, timeout: float, count: int = 1) -> None:  # noqa: ASYNC109
        """Return once `count` clients in total went away mid-reply."""
        await self._waiters.wait(lambda: self._disconnects >= count, timeout)

    async def wait_for_open_connections(self, count: int, timeout: float) -> None:  # noqa: ASYNC109
        """Return once exactly `count` TCP connections are open."""
        await self._waiters.wait(lambda: self.open_connections == count, timeout)

    async def wait_for_requests(self, count: int, timeout: float) -> None:  # noqa: ASYNC109
        """Return once `count` requests in total have been received."""
        await self._waiters.wait(lambda: len(self.requests) >= count, timeout)

    def _note_disconnect(self) -> None:
        self._disconnects += 1
        self._waiters.wake()

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        body = await request.read()
        decoded = _decode_json(body)
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.requests.append(
            Recorded(
                method=request.method,
                path=request.path,
                query_string=request.query_string,
                headers=CIMultiDict(request.headers),
                body=body,
                json=decoded,
                peer_port=peer[1] if peer else None,
            )
        )
        self._waiters.wake()
        if request.method == "GET" and request.path in _FIXED_GETS:
            return _json_response(200, _FIXED_GETS[request.path])
        if request.method != "POST" or not request.path.endswith(_SCRIPTED_SUFFIXES):
            return _json_response(404, _error_body(f"fake upstream has no route {request.path}"))
        reply = self._next_reply(self.requests[-1])
        if reply is None:
            message = f"fake upstream: no scripted reply for POST {request.path} (queue empty)"
            return _json_response(500, _error_body(message))
        streaming = isinstance(decoded, dict) and decoded.get("stream") is True
        try:
            return await self._play(request, reply, streaming=streaming)
        except asyncio.CancelledError:
            # Our own close() cancels handlers too; only the client counts.
            if not self._closing:
                self._note_disconnect()
            raise

    def _next_reply(self, recorded: Recorded) -> Reply | None:
        if self._queue:
            return self._queue.popleft()
        if self.responder is not None:
            return self.responder(recorded)
        return self.default

    async def _play(
        self, request: web.BaseRequest, reply: Reply, *, streaming: bool
    ) -> web.StreamResponse:
        if reply.hang:
            await asyncio.get_running_loop().create_future()
        await asyncio.sleep(reply.delay_before_headers)
        if reply.raw_body is not None:
            return _body_response(reply.status, reply.raw_body, reply.headers)
        if reply.writes is not None or (
            reply.events is not None and (streaming or reply.json is None)
        ):
            return await self._stream(request, reply)
        body = b"" if reply.json is None else msgspec.json.encode(reply.json)
        if reply.delay_within_body and body:
            return await self._slow_body(request, reply, body)
        return _body_response(reply.status, body, reply.headers)

    async def _slow_body(
        self, request: web.BaseRequest, reply: Reply, body: bytes
    ) -> web.StreamResponse:
        headers = CIMultiDict({"Content-Type": "application/json"})
        headers.update(reply.headers)
        response = web.StreamResponse(status=reply.status, headers=headers)
        response.content_length = len(body)
        await response.prepare(request)
        await response.write(body[:1])
        await asyncio.sleep(reply.delay_within_body)
        await response.write(body[1:])
        await response.write_eof()
        return response

    async def _stream(self, request: web.BaseRequest, reply: Reply) -> web.StreamResponse:
        headers = CIMultiDict(
            {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
        )
        headers.update(reply.headers)
        response = web.StreamResponse(status=reply.status, headers=headers)
        await response.prepare(request)
        for written, frame in enumerate(plan_frames(reply)):
            if written == reply.pause_after_frames and reply.resume is not None:
                await reply.resume.wait()
            await asyncio.sleep(
                reply.delay_before_first_event if written == 0 else reply.delay_between_events
            )
            if frame is _CUT:
                # close() flushes what was written, so the client sees exactly
                # the planned events and then a chunked body that never ends.
                if request.transport is not None:
                    request.transport.close()
                return response
            try:
                # StreamResponse.write sends at once on an idle socket and
                # drains past 64 KiB; its drain() is deprecated.
                await response.write(frame)
            except ConnectionResetError:
                self._note_disconnect()
                return response
        return response


def _decode_json(body: bytes) -> Any:
    if not body:
        return None
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None


def _error_body(message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": "api_error", "message": message}}


def _json_response(status: int, data: dict[str, Any]) -> web.Response:
    return _body_response(status, msgspec.json.encode(data), {})


def _body_response(status: int, body: bytes, extra: dict[str, str]) -> web.Response:
    # One header map, so a scripted Content-Type replaces the default
    # instead of clashing with a content_type argument.
    headers = CIMultiDict({"Content-Type": "application/json"})
    headers.update(extra)
    return web.Response(status=status, body=body, headers=CIMultiDictProxy(headers))


@pytest_asyncio.fixture
async def fake_upstream() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as upstream:
        yield upstream
