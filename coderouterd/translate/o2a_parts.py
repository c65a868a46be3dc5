"""An OpenAI message's content parts as Anthropic content blocks (pure):
text parts as text blocks, `image_url` parts as image blocks, `file` parts
holding a PDF inline (`file_data`, as the openai SDK sends one) as document
blocks, for the user messages and the tool results request_o2a builds.

An inline image's `media_type` is what its bytes are, when they are one of
the formats Anthropic takes: Anthropic refuses any other type and an image
whose bytes are of another format than its label says, where OpenAI reads
the bytes, so clients label images loosely (`image/jpg`, a PNG screenshot
labelled `image/jpeg`). Bytes of no known format keep the label, with
`image/jpg`, the commonest such label, as `image/jpeg`.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Mapping
from typing import Any

from coderouterd.errors import InvalidRequestError
from coderouterd.scrub import clip
from coderouterd.translate.cache_o2a import CacheMarks
from coderouterd.translate.types import Notes

_DATA_URL = re.compile(r"^data:([^;,]+)(?:;[^;,]*)*;base64,(.*)$", re.DOTALL)
# Base64 characters decoded to tell the format: 16 hold 12 bytes, a WebP's
# "RIFF", its size and "WEBP".
_HEAD = 16
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg"}
_PDF = b"%PDF-"
_NOT_PDF = "file content parts other than an inline PDF have no Anthropic equivalent"


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def parts(raw: object, path: str) -> list[Mapping[str, Any]]:
    """Content as a list of parts: a string is one text part, null is none."""
    if raw is None:
        return []
    if isinstance(raw, str):
        return [{"type": "text", "text": raw}]
    if not isinstance(raw, list):
        raise InvalidRequestError("must be a string or a list of content parts", field=path)
    for j, part in enumerate(raw):
        if not isinstance(part, Mapping) or not isinstance(part.get("type"), str):
            raise InvalidRequestError("must be a content part with a 'type'", field=f"{path}[{j}]")
    return raw


def part_text(part: Mapping[str, Any], path: str) -> str:
    value = part.get("text")
    if not isinstance(value, str):
        raise InvalidRequestError("must be a string", field=f"{path}.text")
    return value


def text_blocks(
    content: list[Mapping[str, Any]], path: str, marks: CacheMarks
) -> list[dict[str, Any]]:
    """The non-blank text parts as text blocks, an assistant's refusal parts
    among them (their words are the turn's text); other parts are skipped."""
    blocks = []
    for j, part in enumerate(content):
        if part["type"] == "text" and (value := part_text(part, f"{path}[{j}]")).strip():
            blocks.append(marks.copy(part, text(value)))
        elif (
            part["type"] == "refusal"
            and isinstance(said := part.get("refusal"), str)
            and said.strip()
        ):
            blocks.append(marks.copy(part, text(said)))
        else:
            marks.lost(part)
    return blocks


def content_blocks(
    content: list[Mapping[str, Any]], path: str, notes: Notes, marks: CacheMarks
) -> list[dict[str, Any]]:
    """The non-blank text parts, the image parts and the inline PDF files as
    blocks; a part of another kind (audio, another file) has no Anthropic
    block and is left out."""
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        where, kind = f"{path}[{j}]", part["type"]
        if kind == "text" and part_text(part, where).strip():
            blocks.append(marks.copy(part, text(part["text"])))
        elif kind == "image_url":
            blocks.append(marks.copy(part, image(part.get("image_url"), f"{where}.image_url")))
        elif kind == "file" and (pdf := _pdf(part.get("file"))) is not None:
            blocks.append(marks.copy(part, pdf))
        else:
            if kind == "file":
                notes.add("content.file", _NOT_PDF)
            elif kind != "text":
                # The client's to choose, and logged: named cut to a sane length.
                named = clip(str(kind))
                notes.add(f"content.{named}", f"{named} content parts have no Anthropic equivalent")
            marks.lost(part)
    return blocks


def image(raw: object, path: str) -> dict[str, Any]:
    url = raw.get("url") if isinstance(raw, Mapping) else raw
    if not isinstance(url, str):
        raise InvalidRequestError("must be an object with a string 'url'", field=path)
    if match := _DATA_URL.match(url):
        media_type = _media_type(match[1], match[2])
        source = {"type": "base64", "media_type": media_type, "data": match[2]}
        return {"type": "image", "source": source}
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    problem = "must be a base64 data: URL or an http(s) URL"
    raise InvalidRequestError(problem, field=f"{path}.url" if isinstance(raw, Mapping) else path)


def _pdf(raw: object) -> dict[str, Any] | None:
    """A `file` part's `file` as a document block, when it holds a PDF
    inline: a base64 `data:` URL (or bare base64, which OpenAI also reads)
    whose bytes are one, whatever its label. None for any other file, and
    for one named by `file_id` (uploaded to OpenAI, out of Anthropic's reach)."""
    data = raw.get("file_data") if isinstance(raw, Mapping) else None
    if not isinstance(data, str):
        return None
    b64 = match[2] if (match := _DATA_URL.match(data)) else data
    if not _head(b64).startswith(_PDF):
        return None
    source = {"type": "base64", "media_type": "application/pdf", "data": b64}
    return {"type": "document", "source": source}


def _head(b64: str) -> bytes:
    """The first bytes of base64 data (up to 12), or none when it is not base64."""
    chars = "".join(b64[: 4 * _HEAD].split())[:_HEAD]  # base64 wrapped in lines too
    try:
        return binascii.a2b_base64(chars[: len(chars) - len(chars) % 4])
    except ValueError:  # not base64 (binascii.Error), or not ASCII
        return b""


def _media_type(label: str, b64: str) -> str:
    """The format the image's first bytes say, else its label (normalised)."""
    head = _head(b64)
    for signature, media_type in _SIGNATURES:
        if head.startswith(signature):
            return media_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    label = label.strip().lower()
    return _ALIASES.get(label, label)
