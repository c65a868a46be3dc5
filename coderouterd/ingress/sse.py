"""The client side of a streamed answer, with a commit point.

Nothing is sent until either a provider commits (its first content frame is
ready) or a keep-alive is due. A keep-alive sends the response headers
early, without naming a provider; after that an error can only be an
in-stream error frame. The two dialects differ only in how a keep-alive and
an error are written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import msgspec
from aiohttp import web

from coderouterd.errors import ClientDisconnectedError
from coderouterd.ingress.keys import REQUEST_ID
from coderouterd.ingress.middleware import close_if_stopping
from coderouterd.state.replay import ResponseCapture
from coderouterd.wire.error_reply import error_event
from coderouterd.wire.errors import anthropic_error, openai_error
from coderouterd.wire.sse import encode_event

_encode = msgspec.json.Encoder().encode


class SSEWriter:
    keepalive_frame: bytes

    def __init__(self, request: web.Request, headers: Mapping[str, str]) -> None:
        self._request = request
        self._headers = dict(headers)
        self._resp: web.StreamResponse | None = None
        self._finished = False
        # Set once a write stopped waiting for the client to read.
        self._gave_up = False
        # Set when the request is recorded for replay: a copy of what is sent.
        self.capture: ResponseCapture | None = None

    @property
    def started(self) -> bool:
        return self._resp is not None

    @property
    def response(self) -> web.StreamResponse:
        # Unprepared only when the client left before anything was sent;
        # aiohttp then has no one to send this to.
        return self._resp if self._resp is not None else web.Response(status=499)

    def error_frame(self, error_type: str, message: str) -> bytes:
        raise NotImplementedError

    async def _start(self, headers: Mapping[str, str]) -> web.StreamResponse:
        resp = web.StreamResponse(
            status=200,
            headers={
                **self._headers,
                **headers,
                "content-type": "text/event-stream; charset=utf-8",
                "cache-control": "no-cache",
                "x-accel-buffering": "no",
            },
        )
        close_if_stopping(self._request, resp)
        try:
            await resp.prepare(self._request)
        except ConnectionError as exc:
            raise ClientDisconnectedError() from exc
        self._resp = resp
        return resp

    async def ping(self) -> None:
        await self.write(self.keepalive_frame)

    async def commit(self, headers: Mapping[str, str]) -> None:
        if self._resp is None:
            await self._start(headers)

    async def write(self, data: bytes) -> None:
        resp = self._resp or await self._start({})
        if self.capture is not None:
            self.capture.add(data)
        try:
            await resp.write(data)
        except ConnectionError as exc:
            raise ClientDisconnectedError() from exc
        except asyncio.CancelledError:
            # Cancelled waiting for the client to read (a deadline, the
            # shutdown): aiohttp's next wait on it would end at once, cancelled.
            self._gave_up = True
            raise

    async def fail(self, error_type: str, message: str) -> None:
        await self.write(self.error_frame(error_type, message))

    async def finish(self) -> None:
        """End the stream, waiting for the client to take it. A client a write
        gave up on that still has not read, or one given up on here, is cut
        off instead: it would not get the end, and aiohttp would wait on it."""
        if self._resp is None or self._finished:
            return
        self._finished = True
        transport = self._request.transport
        if self._gave_up and transport is not None and _unread(transport):
            transport.abort()
            return
        try:
            await self._resp.write_eof()
        except ConnectionError as exc:
            raise ClientDisconnectedError() from exc
        except asyncio.CancelledError:
            if transport is not None:
                transport.abort()
            raise


def _unread(transport: asyncio.Transport) -> bool:
    """Whether the client may still be too far behind to be written to at once:
    above the low-water mark, the transport may not have resumed writing."""
    return transport.get_write_buffer_size() > transport.get_write_buffer_limits()[0]


class AnthropicSSEWriter(SSEWriter):
    keepalive_frame = encode_event("ping", b'{"type": "ping"}')

    def error_frame(self, error_type: str, message: str) -> bytes:
        # As every Anthropic error the daemon writes, and as Anthropic's own
        # do: the id a user quotes when reporting a broken answer.
        body = anthropic_error(
            500, message, error_type=error_type, request_id=self._request.get(REQUEST_ID)
        )
        return error_event("anthropic", _encode(body))


class OpenAISSEWriter(SSEWriter):
    # A comment line: ignored by SSE parsers, enough to keep the connection warm.
    keepalive_frame = b": keep-alive\n\n"

    def error_frame(self, error_type: str, message: str) -> bytes:
        return error_event("openai", _encode(openai_error(500, message, error_type=error_type)))
