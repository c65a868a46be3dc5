"""Every shape of inline media an OpenAI client may send is measured as
media, not as four bytes of text a token: an image by its pixels, a
document or a sound not at all (translate/estimate.py)."""

from __future__ import annotations

import base64
import io
import itertools
import json
import math
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from coderouterd.ingress.body import BodyMemo, parse_body
from coderouterd.translate.estimate import (
    BYTES_PER_TOKEN,
    MIN_PAYLOAD,
    PromptSize,
    find_payloads,
    measure_prompt,
)

# A PDF's bytes, padded to a contract's weight: about 200 KB of base64.
PDF = base64.b64encode(b"%PDF-1.4\n" + bytes(150_000)).decode()
WAV = base64.b64encode(b"RIFF" + bytes(100_000)).decode()


def png(width: int, height: int) -> str:
    out = io.BytesIO()
    Image.new("RGB", (width, height), "white").save(out, format="PNG")
    # Padded as a screenshot's weight would be: only the header is read.
    return base64.b64encode(out.getvalue() + bytes(300_000)).decode()


ICON = png(200, 200)  # Anthropic counts a 200 x 200 image 54 tokens
ICON_TOKENS = 54


def file_part(data: str) -> dict[str, Any]:
    return {"type": "file", "file": {"filename": "contract.pdf", "file_data": data}}


def audio_part() -> dict[str, Any]:
    return {"type": "input_audio", "input_audio": {"data": WAV, "format": "wav"}}


def body_of(content: list[dict[str, Any]], *, compact: bool) -> bytes:
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "what does it say?"}, *content]},
    ]
    body = {"model": "gpt-4o", "messages": messages}
    if compact:
        return json.dumps(body, separators=(",", ":")).encode()
    return json.dumps(body).encode()  # the openai SDK's spacing


def naive(body: bytes) -> int:
    fields = msgspec.json.decode(body, type=dict[str, msgspec.Raw])
    return math.ceil(len(fields["messages"]) / BYTES_PER_TOKEN)


def measured(body: bytes) -> PromptSize:
    parsed = parse_body(body)
    return measure_prompt(parsed.fields, parsed.media)


def without(body: bytes, *payloads: str) -> int:
    """The estimate of `body` with these base64 strings emptied: its text."""
    for payload in payloads:
        body = body.replace(payload.encode(), b"")
    return naive(body)


@pytest.mark.parametrize("compact", [True, False], ids=["compact", "spaced"])
@pytest.mark.parametrize(
    ("part", "payload"),
    [
        (file_part(f"data:application/pdf;base64,{PDF}"), PDF),
        (file_part(PDF), PDF),  # bare base64, which OpenAI reads too (o2a_parts)
        (audio_part(), WAV),
    ],
    ids=["file-data-url", "file-bare-base64", "input-audio"],
)
def test_a_document_or_a_sound_counts_nothing_but_the_text_around_it(
    part: dict[str, Any], payload: str, *, compact: bool
) -> None:
    body = body_of([part], compact=compact)
    assert naive(body) > 25_000  # what four bytes a token made of it
    assert measured(body) == PromptSize(without(body, payload))


@pytest.mark.parametrize("compact", [True, False], ids=["compact", "spaced"])
@pytest.mark.parametrize(
    "part",
    [
        # The URL as the part's `image_url` itself (o2a_parts.image takes it).
        {"type": "image_url", "image_url": f"data:image/png;base64,{ICON}"},
        # The Responses API's shape, which ingress/turn.py reads as an image.
        {"type": "input_image", "image_url": f"data:image/png;base64,{ICON}"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{ICON}"}},
    ],
    ids=["image-url-string", "input-image", "image-url-object"],
)
def test_an_image_url_in_any_shape_counts_its_pixels(
    part: dict[str, Any], *, compact: bool
) -> None:
    body = body_of([part], compact=compact)
    assert measured(body) == PromptSize(without(body, ICON) + ICON_TOKENS, 1, ICON_TOKENS)


def test_each_payload_of_every_shape_is_found_once_with_its_bounds() -> None:
    anthropic = {"type": "base64", "media_type": "image/png", "data": ICON}
    parts = [
        {"type": "image", "source": anthropic},
        file_part(f"data:application/pdf;base64,{PDF}"),
        {"type": "image_url", "image_url": f"data:image/png;base64,{ICON}"},
        file_part(PDF),
        audio_part(),
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{ICON}"}},
    ]
    buf = body_of(parts, compact=True)
    found = find_payloads(buf)
    assert [(buf[p.at : p.end].decode(), p.image, p.tokens) for p in found] == [
        (ICON, True, ICON_TOKENS),
        (PDF, False, 0),
        (ICON, True, ICON_TOKENS),
        (PDF, False, 0),
        (WAV, False, 0),
        (ICON, True, ICON_TOKENS),
    ]


@pytest.mark.parametrize(
    "value",
    [
        # An Anthropic tool call's input is JSON the backend reads as text.
        {"type": "tool_use", "id": "toolu_1", "name": "upload", "input": {"file_data": PDF}},
        {"type": "tool_use", "id": "toolu_1", "name": "play", "input": {"data": WAV}},
        # A `file` part's other keys, and a `data` key in any other object.
        {"type": "file", "file": {"filename": "a.pdf", "notes": PDF}},
        {"type": "text", "text": "hi", "metadata": {"data": WAV}},
    ],
    ids=["file-data-in-a-tool-input", "data-in-a-tool-input", "other-file-key", "other-data"],
)
def test_base64_under_such_a_key_elsewhere_is_text(value: dict[str, Any]) -> None:
    body = json.dumps({"model": "m", "messages": [{"role": "assistant", "content": [value]}]})
    assert measured(body.encode()) == PromptSize(naive(body.encode()))


def test_a_continued_conversation_keeps_its_documents_out_of_the_estimate() -> None:
    """Through BodyMemo, each turn scans only its new messages."""
    history: list[dict[str, Any]] = [
        {"role": "user", "content": [{"type": "text", "text": "read"}, file_part(PDF)]}
    ]
    memo = BodyMemo()
    for k in range(3):
        history += [
            {"role": "assistant", "content": f"answer {k}"},
            {"role": "user", "content": [audio_part()] if k == 1 else f"question {k}"},
        ]
        fields = {"model": "m", "messages": history, "user": "session-1"}
        body = json.dumps(fields, separators=(",", ":")).encode()
        parsed = memo.parse(body)
        assert measure_prompt(parsed.fields, parsed.media).tokens == without(body, PDF, WAV)
    assert memo.reused == 2


_PIECES = [
    b'"file":{',
    b'"file": {',
    b'"file_data":"',
    b'"file_data": "',
    b'"input_audio":{',
    b'"data":"',
    b'"image_url":"data:image/png;base64,',
    b'"file_data":"data:application/pdf;base64,',
    b'"source":',
    b'"type":"base64"',
    b"base64",
    b'data"',
    b'"',
    b"{",
    b"}",
    b":",
    b",",
    b"A" * 1500,
    b"QUJD" * 300,
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=30))
def test_any_bytes_give_payloads_in_order_inside_them(pieces: list[bytes]) -> None:
    buf = b"".join(pieces)
    found = find_payloads(buf)
    for p in found:
        assert p.at >= 0 and p.end <= len(buf) and p.size >= MIN_PAYLOAD
        assert b'"' not in buf[p.at : p.end]
    # Each lies after the last: no byte is left out of the estimate twice.
    assert all(a.end <= b.at for a, b in itertools.pairwise(found))
