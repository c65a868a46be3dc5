"""Token estimates where no tokenizer is at hand (pure).

JSON-encoded English and code average close to four bytes per token; an
estimate is always marked as one wherever it is reported.

Media sent inline are not text: a screenshot's base64 is hundreds of
kilobytes that a backend counts as about a thousand tokens. Four bytes a
token would make it tens of thousands, and a prompt with one image would
look too long for a local model's window, or look cut when the backend
read it whole. So the base64 of every inline medium the daemon takes is
left out of the estimate: an Anthropic `source: {type: base64}`; an
OpenAI `data:` URL (an image part's `url`, or its `image_url` given as the
URL itself, o2a_parts.image); a `file` part's `file_data`, a data URL or
bare base64 (o2a_parts); an `input_audio` part's `data`. An image counts
what its pixels cost (translate/images.py), a document or a sound nothing
(what they cost cannot be told without reading them, so the estimate errs
low, the safe side for every use of it).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sized
from dataclasses import dataclass
from typing import NamedTuple

import msgspec

from coderouterd.translate.images import base64_image_tokens

BYTES_PER_TOKEN = 4
# Shorter base64 strings stay in the estimate: too small to hold an image
# header. (A flat 200 x 200 icon is a few hundred bytes of base64.)
MIN_PAYLOAD = 64
# `functions`: an OpenAI client's tools declared the legacy way.
_PROMPT_FIELDS = ("system", "messages", "tools", "functions")
# How far from its mark the rest of a source object (or a data URL's
# scheme) may lie.
NEAR = 512
_MARK = b"base64"
_SPACE = b" \t\r\n"
_QUOTE = ord('"')
_SEMICOLON = ord(";")
_COMMA = ord(",")
# A key's own bytes, just before its value (`"type": "base64"`): a key, so
# not text inside a string (where its quotes would be escaped).
_TYPE_KEY = re.compile(rb'"type"\s*:\s*\Z')
_DATA_KEY = re.compile(rb'"data"\s*:\s*\Z')
# The keys whose string an OpenAI data URL is (the module docstring).
_URL_KEY = re.compile(rb'"(?:url|image_url|file_data)"\s*:\s*\Z')
_SOURCE_KEY = re.compile(rb'"source"\s*:\s*\Z')
# Inline media without a `base64` mark end a key so: `"file_data"` and the
# `"data"` of an `input_audio` (Anthropic's sources end so too, and carry a mark).
_BARE_MARK = b'data"'
_FILE_DATA = b'"file_'
_FILE_KEY = re.compile(rb'"file"\s*:\s*\Z')
_AUDIO_KEY = re.compile(rb'"input_audio"\s*:\s*\Z')
# The end of a base64 string followed by the next key of its object.
_BASE64_END = re.compile(rb'[A-Za-z0-9+/]{16}={0,2}"(?=\s*,)')


@dataclass(frozen=True, slots=True)
class Payload:
    """A base64 string inside the messages' JSON."""

    at: int  # offset of its first byte
    size: int
    image: bool
    # What the image costs (translate/images.py); 0 for a document.
    tokens: int = 0

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
                self._found += tuple(Payload(p.at + start, p.size, p.image, p.tokens) for p in more)
            self._scanned = size
        return self._found

    def going_on(self, messages: msgspec.Raw, cut: int) -> MediaScan:
        """The scan of a later turn's `messages`, the same bytes as these up
        to offset `cut` (the `,` after a message)."""
        upto = min(self._scanned, cut)
        found = tuple(p for p in self._found if p.end <= upto) if self._found else ()
        return MediaScan(messages, found=found, scanned=upto)


def find_payloads(buf: bytes) -> list[Payload]:
    """The base64 strings of at least MIN_PAYLOAD bytes in `buf` (JSON), in
    order: each the `data` of an object whose `type` is `base64`, a `data:`
    URL's, or an OpenAI file's or sound's (`file_data`, `input_audio`).

    Only JSON's own structure counts (a base64 URL quoted in a file's text
    is text), and each mark is looked at within NEAR bytes of it, plus the
    string it finds, which the search then goes on after: the scan stays
    linear whatever the text holds.
    """
    out = _marked_payloads(buf)
    bare = _bare_payloads(buf)
    if not bare:
        return out
    merged: list[Payload] = []
    for found in sorted(out + bare, key=lambda p: p.at):
        if not merged or found.at >= merged[-1].end:
            merged.append(found)
    return merged


def _marked_payloads(buf: bytes) -> list[Payload]:
    """The payloads a `base64` mark shows: a source's `type`, a data URL's scheme."""
    out: list[Payload] = []
    i = buf.find(_MARK)
    while i != -1:
        found = _payload_at(buf, i)
        after = i + len(_MARK)
        if found is not None:
            # A second mark in the same object finds the same data: counted once.
            if found.size >= MIN_PAYLOAD and (not out or found.at >= out[-1].end):
                if found.image:
                    data = memoryview(buf)[found.at : found.end]
                    found = Payload(found.at, found.size, True, base64_image_tokens(data))
                out.append(found)
            # The data may come before its `type` (then the search goes on from the mark).
            after = max(after, found.end)
        i = buf.find(_MARK, after)
    return out


def _bare_payloads(buf: bytes) -> list[Payload]:
    """An OpenAI `file` part's `file_data` held as bare base64 (as a data URL
    it has a mark), and an `input_audio` part's `data`: both count nothing."""
    out: list[Payload] = []
    i = buf.find(_BARE_MARK)
    while i != -1:
        found = _bare_at(buf, i)
        after = i + len(_BARE_MARK)
        if found is not None:
            if found.size >= MIN_PAYLOAD:
                out.append(found)
            after = max(after, found.end)
        i = buf.find(_BARE_MARK, after)
    return out


def _bare_at(buf: bytes, i: int) -> Payload | None:
    if buf.endswith(_FILE_DATA, 0, i):
        key, holder = i - len(_FILE_DATA), _FILE_KEY
    elif i and buf[i - 1] == _QUOTE:
        key, holder = i - 1, _AUDIO_KEY
    else:
        return None
    if not _held_by(buf, key, holder):
        return None
    value = _string_after(buf, i + len(_BARE_MARK))
    if value is None:
        return None
    start, end = value
    if holder is _FILE_KEY and buf.startswith(b"data:", start):
        return None  # a data URL: found by its mark
    return Payload(start, end - start, False)


def _payload_at(buf: bytes, i: int) -> Payload | None:
    before = buf[i - 1] if i else -1
    after = buf[i + len(_MARK)] if i + len(_MARK) < len(buf) else -1
    if before == _SEMICOLON and after == _COMMA:
        return _data_url(buf, i)
    if before == _QUOTE and after == _QUOTE and _TYPE_KEY.search(buf, max(0, i - 24), i - 1):
        found = _data_after(buf, i) or _data_before(buf, i)
        if found is not None and _is_source(buf, min(i, found.at)):
            return found
    return None


def _data_url(buf: bytes, i: int) -> Payload | None:
    """`"url":"data:image/png;base64,...` (or `"image_url":`, `"file_data":`):
    the string goes on to its closing quote."""
    scheme = buf.rfind(b'"data:', max(0, i - NEAR), i)
    if scheme == -1 or buf.find(b'"', scheme + 1, i) != -1:
        return None
    if not _URL_KEY.search(buf, max(0, scheme - 24), scheme):
        return None
    start = i + len(_MARK) + 1
    end = buf.find(b'"', start)
    if end == -1:
        return None
    return Payload(start, end - start, buf.startswith(b'"data:image/', scheme))


def _data_after(buf: bytes, i: int) -> Payload | None:
    """`{"type":"base64","media_type":"image/png","data":"..."}`: the order
    clients send (the key within NEAR bytes, in the same object)."""
    key = buf.find(b'"data"', i, i + NEAR)
    if key == -1 or _brace_between(buf, i, key):
        return None
    value = _string_after(buf, key + len(b'"data"'))
    if value is None:
        return None
    start, end = value
    return Payload(start, end - start, _says_image(buf, start, end))


def _data_before(buf: bytes, i: int) -> Payload | None:
    """`{"data":"...","media_type":"image/png","type":"base64"}`: a base64
    string ending within NEAR bytes before the mark, in the same object."""
    lo = max(0, i - NEAR)
    ends = [m.end() - 1 for m in _BASE64_END.finditer(buf, lo, i - 1)]
    if not ends or _brace_between(buf, ends[-1], i):
        return None
    end = ends[-1]
    start = buf.rfind(b'"', 0, end) + 1
    if not start or not _DATA_KEY.search(buf, max(0, start - 24), start - 1):
        return None
    return Payload(start, end - start, _says_image(buf, start, end))


def _says_image(buf: bytes, start: int, end: int) -> bool:
    """Whether the object around the string `buf[start:end]` names an image's
    media type (looked for within NEAR bytes on either side)."""
    opened = buf.rfind(b"{", max(0, start - NEAR), start)
    closed = buf.find(b"}", end, end + NEAR)
    lo = opened if opened != -1 else max(0, start - NEAR)
    hi = closed if closed != -1 else end + NEAR
    return buf.find(b'"image/', lo, start) != -1 or buf.find(b'"image/', end, hi) != -1


def _brace_between(buf: bytes, lo: int, hi: int) -> bool:
    return buf.find(b"{", lo, hi) != -1 or buf.find(b"}", lo, hi) != -1


def _is_source(buf: bytes, first: int) -> bool:
    """Whether the object holding `buf[first]` (its first key or its data)
    is a content block's `source`, not, say, a tool call's input."""
    return _held_by(buf, first, _SOURCE_KEY)


def _held_by(buf: bytes, first: int, key: re.Pattern[bytes]) -> bool:
    """Whether the object holding `buf[first]` is the value of `key`."""
    opened = buf.rfind(b"{", max(0, first - NEAR), first)
    return (
        opened != -1
        and buf.find(b"}", opened, first) == -1
        and key.search(buf, max(0, opened - 24), opened) is not None
    )


def _string_after(buf: bytes, at: int) -> tuple[int, int] | None:
    """Where the string lies that follows a key ending at `at` (`: "...`)."""
    colon = _skip_space(buf, at)
    if buf[colon : colon + 1] != b":":
        return None
    quote = _skip_space(buf, colon + 1)
    if buf[quote : quote + 1] != b'"':
        return None
    end = buf.find(b'"', quote + 1)
    return None if end == -1 else (quote + 1, end)


def _skip_space(buf: bytes, at: int) -> int:
    while at < len(buf) and buf[at] in _SPACE:
        at += 1
    return at


class PromptSize(NamedTuple):
    """A prompt's estimate in tokens, and what its inline images account for in it."""

    tokens: int
    images: int = 0
    image_tokens: int = 0


def estimate_prompt_tokens(fields: Mapping[str, Sized], media: MediaScan | None = None) -> int:
    """Tokens of a request's prompt (system, tools, messages) at four bytes
    a token, inline media counted as the module docstring says. `media`,
    when it is of these very messages, saves scanning them again."""
    return measure_prompt(fields, media).tokens


def measure_prompt(fields: Mapping[str, Sized], media: MediaScan | None = None) -> PromptSize:
    """The prompt's estimate (estimate_prompt_tokens), how many inline images
    it holds and how many of its tokens they are."""
    counted = sum(len(fields[f]) for f in _PROMPT_FIELDS if f in fields)
    messages = fields.get("messages")
    if isinstance(messages, msgspec.Raw):
        if media is None or media.messages is not messages:
            media = MediaScan(messages)
        found = media.payloads()
        if found:
            counted -= sum(p.size for p in found)
            images = sum(1 for p in found if p.image)
            pictured = sum(p.tokens for p in found)
            text = math.ceil(counted / BYTES_PER_TOKEN)
            return PromptSize(max(1, text + pictured), images, pictured)
    return PromptSize(max(1, math.ceil(counted / BYTES_PER_TOKEN)))


# What declares tools, and what picks among them: none of it reaches a
# provider whose model cannot call tools (every translation drops it).
TOOL_FIELDS = frozenset({"tools", "tool_choice", "functions", "function_call"})


class SentPrompt:
    """A request's prompt as a provider is sent it: whole, or `bare` (without
    its TOOL_FIELDS, to a model that cannot call tools); each way measured
    once, when first asked. A window a provider has is a limit on what it is
    sent, so that is what the prompt is judged by against it."""

    __slots__ = ("_fields", "_media", "_sizes")

    def __init__(self, fields: Mapping[str, msgspec.Raw], media: MediaScan | None) -> None:
        self._fields = fields
        self._media = media
        self._sizes: dict[bool, PromptSize] = {}

    def fields(self, *, bare: bool) -> Mapping[str, msgspec.Raw]:
        if bare:
            return {k: v for k, v in self._fields.items() if k not in TOOL_FIELDS}
        return self._fields

    def size(self, *, bare: bool) -> PromptSize:
        size = self._sizes.get(bare)
        if size is None:
            size = self._sizes[bare] = measure_prompt(self.fields(bare=bare), self._media)
        return size


def estimate_text_tokens(chars: int) -> int:
    return math.ceil(chars / BYTES_PER_TOKEN)
