"""Token estimates where no tokenizer is at hand (pure).

JSON-encoded English and code average close to four bytes per token; an
estimate is always marked as one wherever it is reported.

Media sent inline are not text: a screenshot's base64 is hundreds of
kilobytes that a backend counts as about a thousand tokens. Four bytes a
token would make it tens of thousands, and a prompt with one image would
look too long for a local model's window, or look cut when the backend
read it whole. So the base64 of an image or a document (an Anthropic
`source: {type: base64}`, an OpenAI `data:` URL) is left out of the
estimate; an image counts IMAGE_TOKENS instead, a document nothing (its
pages cannot be counted without reading it, so the estimate errs low, the
safe side for every use of it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sized
from dataclasses import dataclass

import msgspec

BYTES_PER_TOKEN = 4
# The most Anthropic counts for one image (about 1.15 megapixels / 750): a
# screenshot's cost, the common case for a coding agent.
IMAGE_TOKENS = 1600
# Shorter base64 strings stay in the estimate: too small to matter.
MIN_PAYLOAD = 1024
_PROMPT_FIELDS = ("system", "messages", "tools")
_MARK = b"base64"
_SPACE = b" \t\r\n"
_QUOTE = ord('"')
_SEMICOLON = ord(";")
_COMMA = ord(",")


@dataclass(frozen=True, slots=True)
class Payload:
    """A base64 string inside the messages' JSON."""

    at: int  # offset of its first byte
    size: int
    image: bool

    @property
    def end(self) -> int:
        return self.at + self.size


class MediaScan:
    """The inline media of one request's messages, found at most once per
    request however often its prompt is estimated.

    A turn continuing one already scanned (the same messages, then more;
    ingress/body.py) keeps what was found before the message it goes on
    from and scans only the bytes after it.
    """

    __slots__ = ("_found", "_scanned", "messages")

    def __init__(
        self, messages: msgspec.Raw, *, found: tuple[Payload, ...] = (), scanned: int = 0
    ) -> None:
        self.messages = messages
        self._found = found
        self._scanned = scanned

    def payloads(self) -> tuple[Payload, ...]:
        start, size = self._scanned, len(self.messages)
        if start < size:
            more = find_payloads(bytes(memoryview(self.messages)[start:]))
            if more:
                self._found += tuple(Payload(p.at + start, p.size, p.image) for p in more)
            self._scanned = size
        return self._found

    def going_on(self, messages: msgspec.Raw, cut: int) -> MediaScan:
        """The scan of a later turn's `messages`, the same bytes as these up
        to offset `cut` (the `,` after a message)."""
        upto = min(self._scanned, cut)
        found = tuple(p for p in self._found if p.end <= upto) if self._found else ()
        return MediaScan(messages, found=found, scanned=upto)


def find_payloads(buf: bytes) -> list[Payload]:
    """The base64 strings of at least MIN_PAYLOAD bytes in `buf` (JSON), each
    the `data` of an object whose `type` is `base64`, or a `data:` URL's."""
    out: list[Payload] = []
    i = buf.find(_MARK)
    while i != -1:
        found = _payload_at(buf, i)
        after = i + len(_MARK)
        # A second mark in the same object finds the same data: counted once.
        if found is not None and found.size >= MIN_PAYLOAD and (not out or found.at >= out[-1].end):
            out.append(found)
            # The data may come before its `type` (then the search goes on from the mark).
            after = max(after, found.end)
        i = buf.find(_MARK, after)
    return out


def _payload_at(buf: bytes, i: int) -> Payload | None:
    before = buf[i - 1] if i else -1
    after = buf[i + len(_MARK)] if i + len(_MARK) < len(buf) else -1
    if before == _SEMICOLON and after == _COMMA:
        return _data_url(buf, i)
    if before == _QUOTE and after == _QUOTE:
        return _source_data(buf, i)
    return None


def _data_url(buf: bytes, i: int) -> Payload | None:
    """`"data:image/png;base64,...`: the string goes on to its closing quote."""
    start = i + len(_MARK) + 1
    end = buf.find(b'"', start)
    scheme = buf.rfind(b'"data:', max(0, i - 128), i)
    if end == -1 or scheme == -1:
        return None
    return Payload(start, end - start, buf.startswith(b'"data:image/', scheme))


def _source_data(buf: bytes, i: int) -> Payload | None:
    """`"type":"base64"` in a source object: its `data`, before or after it
    (base64 and media types hold no braces, so the nearest ones bound it)."""
    opened = buf.rfind(b"{", 0, i)
    closed = buf.find(b"}", i)
    key = buf.find(b'"data"', opened, closed) if opened != -1 and closed != -1 else -1
    value = _string_after(buf, key + len(b'"data"'), closed) if key != -1 else None
    if value is None:
        return None
    start, end = value
    image = buf.find(b'"image/', opened, start) != -1 or buf.find(b'"image/', end, closed) != -1
    return Payload(start, end - start, image)


def _string_after(buf: bytes, at: int, limit: int) -> tuple[int, int] | None:
    """Where the string lies that follows a key ending at `at` (`: "...`)."""
    colon = _skip_space(buf, at, limit)
    if buf[colon : colon + 1] != b":":
        return None
    quote = _skip_space(buf, colon + 1, limit)
    if buf[quote : quote + 1] != b'"':
        return None
    end = buf.find(b'"', quote + 1, limit)
    return None if end == -1 else (quote + 1, end)


def _skip_space(buf: bytes, at: int, limit: int) -> int:
    while at < limit and buf[at] in _SPACE:
        at += 1
    return at


def estimate_prompt_tokens(fields: Mapping[str, Sized], media: MediaScan | None = None) -> int:
    """Tokens of a request's prompt (system, tools, messages) at four bytes
    a token, inline media counted as the module docstring says. `media`,
    when it is of these very messages, saves scanning them again."""
    counted = sum(len(fields[f]) for f in _PROMPT_FIELDS if f in fields)
    messages = fields.get("messages")
    if isinstance(messages, msgspec.Raw):
        if media is None or media.messages is not messages:
            media = MediaScan(messages)
        found = media.payloads()
        if found:
            counted -= sum(p.size for p in found)
            images = sum(1 for p in found if p.image)
            return max(1, math.ceil(counted / BYTES_PER_TOKEN) + images * IMAGE_TOKENS)
    return max(1, math.ceil(counted / BYTES_PER_TOKEN))


def estimate_text_tokens(chars: int) -> int:
    return math.ceil(chars / BYTES_PER_TOKEN)
