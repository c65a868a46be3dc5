"""Incremental server-sent-events decoding and encoding (pure).

The decoder keeps each frame's raw bytes next to its parsed fields so a
proxy can forward a frame untouched after looking at its event name.
"""

from __future__ import annotations

import re
from typing import NamedTuple

_FRAME_END = re.compile(rb"\r\n\r\n|\n\n|\r\r|\r\n\n|\n\r\n")
_LINE_SPLIT = re.compile(rb"\r\n|\n|\r")


class SSEEvent(NamedTuple):
    event: str
    data: bytes
    raw: bytes


class SSEDecoder:
    """Feed it chunks as they arrive; it returns the frames each chunk completed.

    A frame holding only comments or nothing is dropped (keep-alive lines).
    Whatever is left when the stream ends is an incomplete frame: `pending`
    tells a caller that the upstream cut a frame in half.
    """

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    @property
    def pending(self) -> bytes:
        return self._buf

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buf = self._buf + chunk if self._buf else chunk
        events: list[SSEEvent] = []
        start = 0
        # Most servers end frames with "\n\n"; the regex is only needed when a
        # "\r" is present somewhere in the buffer.
        if b"\r" not in buf:
            while (end := buf.find(b"\n\n", start)) != -1:
                self._append(events, buf[start : end + 2], buf[start:end])
                start = end + 2
        else:
            for m in _FRAME_END.finditer(buf, start):
                self._append(events, buf[start : m.end()], buf[start : m.start()])
                start = m.end()
        self._buf = buf[start:]
        return events

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
