"""Clients of the bench: aiohttp for latency and streams, a raw one for volume.

Latency and per-chunk figures use aiohttp's ClientSession, one keep-alive
connection per system, timed with perf_counter_ns / monotonic_ns. The
throughput, memory and drift phases push tens of thousands of requests; there
the client must cost much less than the system under test or it, not the
system, sets the rate, so they use `RawClient`: pre-built HTTP/1.1 request
bytes on an asyncio.Protocol, reading only as much of each response as it
takes to find its end.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import secrets
import time
from dataclasses import dataclass

import aiohttp

from bodies import ROUND_MARK

STAMP = re.compile(rb"@(\d{6,}) tok")
_MARK = ROUND_MARK.encode()
# Conversation passes of this process: each gets its own token.
_passes = itertools.count(1)
# One key per run for every system: LiteLLM refuses to start without a master
# key; coderouterd (forward_client_key off) and the mock ignore it.
BENCH_KEY = "sk-bench-" + secrets.token_hex(24)
HEADERS = {
    "content-type": "application/json",
    "anthropic-version": "2023-06-01",
    "x-api-key": BENCH_KEY,
}


@dataclass
class StreamSample:
    status: int
    ttft_ns: int  # request start to the first text delta
    chunk_delays_ns: list[int]  # arrival minus the mock's stamp, per delta
    complete: bool


class AioClient:
    def __init__(self, *, connections: int = 1) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=connections, force_close=False),
            timeout=aiohttp.ClientTimeout(total=120),
            skip_auto_headers=("User-Agent",),
        )

    async def close(self) -> None:
        await self.session.close()

    async def unary(self, url: str, body: bytes) -> tuple[int, int, bytes]:
        """(latency ns, status, body)"""
        t0 = time.perf_counter_ns()
        async with self.session.post(url, data=body, headers=HEADERS) as r:
            data = await r.read()
        return time.perf_counter_ns() - t0, r.status, data

    async def stream(self, url: str, body: bytes) -> StreamSample:
        t0 = time.monotonic_ns()
        ttft = -1
        delays: list[int] = []
        tail = b""
        async with self.session.post(url, data=body, headers=HEADERS) as r:
            if r.status != 200:
                await r.read()
                return StreamSample(r.status, -1, [], False)
            async for data in r.content.iter_any():
                now = time.monotonic_ns()
                stamps = STAMP.findall(data)
                if stamps and ttft < 0:
                    ttft = now - t0
                delays.extend(now - int(s) for s in stamps)
                tail = (tail + data)[-200:]
        complete = b"message_stop" in tail or b"[DONE]" in tail
        return StreamSample(r.status, ttft, delays, complete)


class _Conn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.fut: asyncio.Future[int] | None = None
        self.status = 0
        self.body_start = -1
        self.length = -1  # content-length, or -1 for chunked
        self.pos = 0  # next chunk header, for chunked bodies
        self.first_byte_ns = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.fut is not None and not self.fut.done():
            self.fut.set_exception(ConnectionError(f"connection lost: {exc}"))

    def send(self, request: bytes) -> asyncio.Future[int]:
        self.fut = asyncio.get_running_loop().create_future()
        self.buf.clear()
        self.body_start = -1
        self.first_byte_ns = 0
        assert self.transport is not None
        self.transport.write(request)
        return self.fut

    def data_received(self, data: bytes) -> None:
        if not self.first_byte_ns:
            self.first_byte_ns = time.monotonic_ns()
        self.buf += data
        if self.body_start < 0:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).lower()
            self.status = int(head[9:12])
            self.body_start = self.pos = end + 4
            m = re.search(rb"\r\ncontent-length:\s*(\d+)", head)
            self.length = int(m.group(1)) if m else -1
        if self.length >= 0:
            if len(self.buf) - self.body_start >= self.length:
                self._done()
            return
        while True:
            eol = self.buf.find(b"\r\n", self.pos)
            if eol < 0:
                return
            size = int(bytes(self.buf[self.pos : eol]).split(b";")[0], 16)
            nxt = eol + 2 + size + 2
            if len(self.buf) < nxt:
                return
            self.pos = nxt
            if size == 0:
                self._done()
                return

    def _done(self) -> None:
        if self.fut is not None and not self.fut.done():
            self.fut.set_result(self.status)


def build_request(url: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    rest = url.split("://", 1)[1]
    host, _, path = rest.partition("/")
    lines = [f"POST /{path} HTTP/1.1", f"host: {host}", f"content-length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in (headers or HEADERS).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class RawClient:
    def __init__(self, url: str, connections: int) -> None:
        rest = url.split("://", 1)[1].split("/", 1)[0]
        self.host, port = rest.rsplit(":", 1)
        self.port = int(port)
        self.connections = connections
        self.conns: list[_Conn] = []

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(self.connections - len(self.conns)):
            _, proto = await loop.create_connection(_Conn, self.host, self.port)
            self.conns.append(proto)

    def close(self) -> None:
        for c in self.conns:
            if c.transport is not None:
                c.transport.close()
        self.conns.clear()

    async def run(
        self, requests: list[bytes] | list[list[bytes]], count: int, *, deadline: float
    ) -> tuple[int, int, float]:
        """Send `count` requests over all connections, cycling through `requests`.

        `requests` may instead be conversations (lists of successive bodies):
        connection i then sends conversation i's turns in order, as one agent
        session per connection would. After the last turn it starts over as a
        new conversation: every message's ROUND_MARK gets a token never sent
        before, so nothing a router stored from an earlier pass comes back.
        Returns (ok, failed, seconds). Stops early at `deadline` (time.monotonic()).
        """
        await self.open()
        issued = 0
        ok = failed = 0
        nested = bool(requests) and isinstance(requests[0], list)
        sequences: list[list[bytes]] = [
            requests[i % len(requests)] if nested else requests  # type: ignore[misc]
            for i in range(len(self.conns))
        ]

        async def worker(i: int, conn: _Conn) -> None:
            nonlocal issued, ok, failed
            mine, turn = sequences[i], 0 if nested else i
            token = b""
            while issued < count and time.monotonic() < deadline:
                req = mine[turn % len(mine)]
                if nested:
                    if turn % len(mine) == 0:
                        token = b"%08x" % next(_passes)
                    req = req.replace(_MARK, token)
                turn += 1
                issued += 1
                try:
                    status = await asyncio.wait_for(conn.send(req), 60)
                except (ConnectionError, TimeoutError):
                    failed += 1
                    return
                if status == 200:
                    ok += 1
                else:
                    failed += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(i, c) for i, c in enumerate(self.conns)))
        return ok, failed, time.perf_counter() - t0
