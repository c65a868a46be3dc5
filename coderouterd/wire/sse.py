"""Incremental server-sent-events decoding and encoding (pure).

The decoder keeps each frame's raw bytes next to its parsed fields so a
proxy can forward a frame untouched after looking at its event name.
"""

from __future__ import annotations

import json
import re
from typing import NamedTuple

_FRAME_END = re.compile(rb"\r\n\r\n|\n\n|\r\r|\r\n\n|\n\r\n")
_LINE_SPLIT = re.compile(rb"\r\n|\n|\r")


class SSEEvent(NamedTuple):
    event: str
    data: bytes
    raw: bytes


# An incomplete frame past this is no event a model sends (a huge tool call
# is a few MB) but an upstream writing without end: held on, it would fill
# the daemon's memory until the attempt's total_s.
MAX_FRAME_BYTES = 64 * 1024 * 1024


class FrameTooLargeError(ValueError):
    """An incomplete frame grew past MAX_FRAME_BYTES."""

    def __init__(self) -> None:
        super().__init__(f"an SSE frame over the {MAX_FRAME_BYTES >> 20} MiB cap")


# Past this size an incomplete frame is kept as a list of chunks instead of
# one bytes object, so that each new chunk is not copied onto all of it.
_LIST_AT = 16 * 1024


class SSEDecoder:
    """Feed it chunks as they arrive; it returns the frames each chunk completed.

    A frame holding only comments or nothing is dropped (keep-alive lines).
    Whatever is left when the stream ends is an incomplete frame: `pending`
    tells a caller that the upstream cut a frame in half. One that grows
    past MAX_FRAME_BYTES raises FrameTooLargeError.

    The search for a frame end resumes where the last one stopped (three
    bytes back, where a terminator may begin), and a large incomplete frame
    is kept as the chunks it arrived in and joined once its end arrives, so
    a frame that arrives in many chunks costs time linear in its size.
    `scanned` counts the bytes copied and searched, for tests to check
    exactly that.
    """

    __slots__ = ("_buf", "_cr", "_held", "_parts", "scanned")

    def __init__(self) -> None:
        self._buf = b""  # the incomplete frame, while it is small
        self._parts: list[bytes] = []  # the incomplete frame, once it is large
        self._held = 0  # the bytes in _parts
        self._cr = False  # whether it holds a "\r" (then frames may end in "\r")
        self.scanned = 0

    @property
    def pending(self) -> bytes:
        return b"".join(self._parts) if self._parts else self._buf

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if not chunk:
            return []
        cr = self._cr or b"\r" in chunk
        if self._parts:
            joined = self._join_large(chunk, cr)
            if joined is None:
                return []
            buf, resume = joined
        elif held := self._buf:
            resume = len(held) - 3 if len(held) > 3 else 0
            buf = held + chunk
        else:
            resume, buf = 0, chunk
        # Bytes copied into buf, and bytes searched for a frame end.
        self.scanned += (0 if buf is chunk else len(buf)) + len(buf) - resume
        events: list[SSEEvent] = []
        start = 0
        # Most servers end frames with "\n\n"; the regex is only needed when a
        # "\r" is present.
        if not cr:
            while (end := buf.find(b"\n\n", resume)) != -1:
                self._append(events, buf[start : end + 2], buf[start:end])
                start = resume = end + 2
        else:
            for m in _FRAME_END.finditer(buf, resume):
                self._append(events, buf[start : m.end()], buf[start : m.start()])
                start = m.end()
        rest = buf[start:] if start else buf
        if len(rest) > _LIST_AT:
            if len(rest) > MAX_FRAME_BYTES:
                raise FrameTooLargeError
            self._buf, self._parts, self._held = b"", [rest], len(rest)
        else:
            self._buf = rest
        self._cr = cr and b"\r" in rest
        return events

    def _join_large(self, chunk: bytes, cr: bool) -> tuple[bytes, int] | None:
        """The large incomplete frame joined with `chunk` and where to resume
        searching, or None (chunk kept) while no frame end has arrived."""
        parts = self._parts
        # The frame's last three bytes, where a terminator ending in `chunk`
        # may begin: a part shorter than that (a lone "\r" chunk) takes them
        # from the parts before it; none is empty.
        last = parts[-1]
        tail = last[-3:] if len(last) >= 3 else b"".join(parts[-3:])[-3:]
        boundary = tail + chunk[:3]
        self.scanned += len(boundary)
        if cr:
            found = _FRAME_END.search(chunk) is not None or _FRAME_END.search(boundary) is not None
        else:
            found = b"\n\n" in chunk or b"\n\n" in boundary
        parts.append(chunk)
        if not found:
            self._held += len(chunk)
            if self._held > MAX_FRAME_BYTES:
                raise FrameTooLargeError
            self.scanned += len(chunk)
            self._cr = cr
            return None
        buf = b"".join(parts)
        self._parts = []
        return buf, len(buf) - len(chunk) - 3

    @staticmethod
    def _append(events: list[SSEEvent], raw: bytes, body: bytes) -> None:
        parsed = parse_frame(body)
        if parsed is not None:
            events.append(SSEEvent(parsed[0], parsed[1], raw))


def parse_frame(body: bytes) -> tuple[str, bytes] | None:
    """Parse one frame (without its blank-line terminator) into (event, data)."""
    event = "message"
    data: list[bytes] = []
    seen = False
    for line in _LINE_SPLIT.split(body) if b"\r" in body else body.split(b"\n"):
        if not line or line[0] == 58:  # ":" starts a comment
            continue
        name, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            data.append(value)
            seen = True
        elif name == b"error":
            # llama.cpp servers from before late 2025 send a stream's error as
            # a field of its own (`error: {...}`), which SSE would ignore: the
            # answer would look empty and whole. It reads as the data of an
            # OpenAI error chunk.
            inner = value.strip()
            if not inner.startswith(b"{"):
                inner = json.dumps(inner.decode("utf-8", "replace")).encode()
            data.append(b'{"error":' + inner + b"}")
            seen = True
        elif name == b"event":
            event = value.decode("utf-8", "replace")
            seen = True
    if not seen:
        return None
    return event, b"\n".join(data)


def encode_event(event: str, data: bytes) -> bytes:
    if b"\n" in data or b"\r" in data:
        lines = b"".join(b"data: " + line + b"\n" for line in _LINE_SPLIT.split(data))
        return b"event: " + event.encode() + b"\n" + lines + b"\n"
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"


def encode_data(data: bytes) -> bytes:
    """An OpenAI-style frame: no event name, only data."""
    return b"data: " + data + b"\n\n"
