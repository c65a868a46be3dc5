"""A fast mock upstream for the bench: Anthropic and OpenAI, streaming and not.

A raw asyncio.Protocol HTTP/1.1 responder with keep-alive, so that it costs
far less than any system under test. It listens on 127.0.0.1 only and prints
`PORT <n>` on stdout once it is ready.

Routes (any path prefix is allowed before them):

    POST .../v1/messages          Anthropic Messages
    POST .../chat/completions     OpenAI Chat Completions
    GET  /healthz

The request body is never decoded: `"stream": true` anywhere at the top of
the body selects a streamed answer. Pacing comes from the path, so a proxy
whose upstream URL is fixed (a provider's base_url) can still choose it:

    /pace/<microseconds>/n/<deltas>/v1/messages

Each text delta carries `@<time.monotonic_ns()>` taken just before the write,
so a client on the same machine (CLOCK_MONOTONIC is shared by all processes)
can measure how long each chunk took to reach it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import re
import signal
import sys
import time

_STREAM_TRUE = re.compile(rb'"stream"\s*:\s*true')
_DEFAULT_DELTAS = 20
_MAX_HEADER = 64 * 1024

_ANTHROPIC_MESSAGE = json.dumps(
    {
        "id": "msg_bench",
        "type": "message",
        "role": "assistant",
        "model": "mock-model",
        "content": [{"type": "text", "text": "ok " * 40}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        # All four counts, as Anthropic sends them (a router completes missing ones).
        "usage": {
            "input_tokens": 20000,
            "output_tokens": 40,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 18000,
        },
    },
    separators=(",", ":"),
).encode()

_OPENAI_COMPLETION = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "mock-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "ok " * 40},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 20000, "completion_tokens": 40, "total_tokens": 20040},
    },
    separators=(",", ":"),
).encode()


def _sse(event: str, data: str) -> bytes:
    return f"event: {event}\ndata: {data}\n\n".encode()


_A_HEAD = (
    _sse(
        "message_start",
        '{"type":"message_start","message":{"id":"msg_bench","type":"message",'
        '"role":"assistant","model":"mock-model","content":[],"stop_reason":null,'
        '"stop_sequence":null,"usage":{"input_tokens":20000,"output_tokens":1,'
        '"cache_creation_input_tokens":0,"cache_read_input_tokens":18000}}}',
    )
    + _sse(
        "content_block_start",
        '{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}',
    )
    + _sse("ping", '{"type": "ping"}')
)


def _a_delta(stamp: int) -> bytes:
    return (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":"@' + str(stamp).encode() + b' tok"}}\n\n'
    )


def _a_tail(deltas: int) -> bytes:
    return (
        _sse("content_block_stop", '{"type":"content_block_stop","index":0}')
        + _sse(
            "message_delta",
            '{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},'
            f'"usage":{{"output_tokens":{deltas}}}}}',
        )
        + _sse("message_stop", '{"type":"message_stop"}')
    )


_O_HEAD = (
    b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,'
    b'"model":"mock-model","choices":[{"index":0,"delta":{"role":"assistant","content":""},'
    b'"finish_reason":null}]}\n\n'
)


def _o_delta(stamp: int) -> bytes:
    return (
        b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,'
        b'"model":"mock-model","choices":[{"index":0,"delta":{"content":"@'
        + str(stamp).encode()
        + b' tok"},"finish_reason":null}]}\n\n'
    )


def _o_tail(deltas: int) -> bytes:
    return (
        b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,'
        b'"model":"mock-model","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
        b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,'
        b'"model":"mock-model","choices":[],"usage":{"prompt_tokens":20000,'
        b'"completion_tokens":' + str(deltas).encode() + b',"total_tokens":20020}}\n\n'
        b"data: [DONE]\n\n"
    )


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


_STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)


def _plain(status: int, body: bytes, ctype: bytes = b"application/json") -> bytes:
    return (
        b"HTTP/1.1 %d OK\r\ncontent-type: %s\r\ncontent-length: %d\r\n\r\n"
        % (status, ctype, len(body))
        + body
    )


def _pacing(path: str) -> tuple[float, int]:
    """(seconds between deltas, number of deltas) from /pace/<us>/n/<count>/..."""
    parts = path.split("/")
    pace_us, deltas = 0, _DEFAULT_DELTAS
    for i, part in enumerate(parts[:-1]):
        if part == "pace":
            pace_us = int(parts[i + 1])
        elif part == "n":
            deltas = int(parts[i + 1])
    return pace_us / 1e6, deltas


class Upstream(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.busy = False  # a paced stream is being written
        self.continued = False  # "100 Continue" sent for the request being read
        self.task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.task is not None:
            self.task.cancel()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.busy:
            self._serve()

    def _serve(self) -> None:
        while not self.busy:
            req = self._take_request()
            if req is None:
                return
            self._respond(*req)

    def _take_request(self) -> tuple[str, str, bytes, bool] | None:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buf) > _MAX_HEADER:
                self.transport.close()  # type: ignore[union-attr]
            return None
        head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
        method, path, _ = head[0].split(" ", 2)
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        start = end + 4
        if headers.get("transfer-encoding", "").lower() == "chunked":
            parsed = _dechunk(self.buf, start)
            if parsed is None:
                return None
            body, consumed = parsed
        else:
            length = int(headers.get("content-length", "0"))
            if len(self.buf) - start < length:
                if headers.get("expect", "").lower() == "100-continue" and not self.continued:
                    self.continued = True
                    self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # type: ignore[union-attr]
                return None
            body = bytes(self.buf[start : start + length])
            consumed = start + length
        del self.buf[:consumed]
        self.continued = False
        close = headers.get("connection", "").lower() == "close"
        return method, path, body, close

    def _respond(self, method: str, path: str, body: bytes, close: bool) -> None:
        t = self.transport
        assert t is not None
        if method == "GET":
            t.write(_plain(200, b'{"status":"ok"}'))
        elif method != "POST":
            t.write(_plain(405, b'{"error":"method"}'))
        else:
            openai = path.endswith("/chat/completions")
            if not openai and not path.endswith("/messages"):
                t.write(_plain(404, b'{"error":"not found"}'))
            elif _STREAM_TRUE.search(body, 0, 4096) or _STREAM_TRUE.search(body):
                pace, deltas = _pacing(path)
                if pace > 0:
                    self.busy = True
                    self.task = asyncio.ensure_future(self._paced(openai, pace, deltas, close))
                    return
                self._burst(openai, deltas)
            else:
                t.write(_plain(200, _OPENAI_COMPLETION if openai else _ANTHROPIC_MESSAGE))
        if close:
            t.close()

    def _burst(self, openai: bool, deltas: int) -> None:
        now = time.monotonic_ns()
        head, delta, tail = (_O_HEAD, _o_delta, _o_tail) if openai else (_A_HEAD, _a_delta, _a_tail)
        body = head + b"".join(delta(now) for _ in range(deltas)) + tail(deltas)
        self.transport.write(_STREAM_HEAD + _chunk(body) + b"0\r\n\r\n")  # type: ignore[union-attr]

    async def _paced(self, openai: bool, pace: float, deltas: int, close: bool) -> None:
        t = self.transport
        assert t is not None
        head, delta, tail = (_O_HEAD, _o_delta, _o_tail) if openai else (_A_HEAD, _a_delta, _a_tail)
        try:
            t.write(_STREAM_HEAD + _chunk(head))
            for i in range(deltas):
                await asyncio.sleep(pace)
                if t.is_closing():
                    return
                data = delta(time.monotonic_ns())
                if i == deltas - 1:
                    data += tail(deltas)
                t.write(_chunk(data))
            t.write(b"0\r\n\r\n")
            if close:
                t.close()
        except asyncio.CancelledError:
            return
        finally:
            self.task = None
            self.busy = False
        if not t.is_closing() and self.buf:
            self._serve()


def _dechunk(buf: bytearray, pos: int) -> tuple[bytes, int] | None:
    out = bytearray()
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(bytes(buf[pos:eol]).split(b";")[0], 16)
        pos = eol + 2
        if len(buf) < pos + size + 2:
            return None
        if size == 0:
            end = buf.find(b"\r\n", pos)  # trailers end with an empty line
            return (bytes(out), end + 2) if end >= 0 else None
        out += buf[pos : pos + size]
        pos += size + 2


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--max-seconds", type=float, default=1800, help="exit after this long")
    args = ap.parse_args()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Upstream, "127.0.0.1", args.port, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    gc.freeze()
    print(f"PORT {port}", flush=True)
    try:
        await asyncio.wait_for(stop.wait(), args.max_seconds)
    except TimeoutError:
        print("mock_upstream: --max-seconds reached, exiting", file=sys.stderr)
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
