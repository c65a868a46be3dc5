"""Prompt estimates: inline media left out of the four-bytes-a-token count."""

from __future__ import annotations

import base64
import io
import itertools
import json
import math
import os
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
    MediaScan,
    PromptSize,
    estimate_prompt_tokens,
    find_payloads,
    measure_prompt,
)
from coderouterd.translate.images import IMAGE_TOKENS

PNG = base64.b64encode(os.urandom(60_000)).decode()  # ~80 KB of base64, as a screenshot's
PDF = base64.b64encode(os.urandom(30_000)).decode()


def image_block(data: str = PNG, *, data_first: bool = False) -> dict[str, Any]:
    source = {"type": "base64", "media_type": "image/png", "data": data}
    if data_first:
        source = {"data": data, "media_type": "image/png", "type": "base64"}
    return {"type": "image", "source": source}


def document_block() -> dict[str, Any]:
    return {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
    }


def openai_image(data: str = PNG) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{data}"}}


def body_of(messages: list[dict[str, Any]], *, compact: bool = True) -> bytes:
    body = {"model": "m", "max_tokens": 10, "system": "be brief", "messages": messages}
    if compact:
        return json.dumps(body, separators=(",", ":")).encode()
    return json.dumps(body).encode()  # the Python SDKs' spacing


def naive(body: bytes) -> int:
    fields = msgspec.json.decode(body, type=dict[str, msgspec.Raw])
    return math.ceil(sum(len(fields[f]) for f in ("system", "messages")) / BYTES_PER_TOKEN)


def text_only(messages: list[dict[str, Any]], compact: bool = True) -> int:
    """The estimate with every base64 string emptied."""
    emptied = json.loads(json.dumps(messages).replace(PNG, "").replace(PDF, ""))
    return naive(body_of(emptied, compact=compact))


@pytest.mark.parametrize("compact", [True, False])
@pytest.mark.parametrize(
    "content",
    [
        [{"type": "text", "text": "what is on this screen?"}, image_block()],
        [image_block(data_first=True), {"type": "text", "text": "and this?"}],
        [{"type": "text", "text": "describe"}, openai_image()],
        [
            {
                "type": "tool_result",
                "tool_use_id": "toolu_1",
                "content": [image_block(), {"type": "text", "text": "screenshot taken"}],
            }
        ],
    ],
    ids=["anthropic", "data-key-first", "openai-data-url", "in-a-tool-result"],
)
def test_an_image_counts_as_image_tokens_not_its_base64(
    content: list[dict[str, Any]], compact: bool
) -> None:
    messages = [{"role": "user", "content": content}]
    parsed = parse_body(body_of(messages, compact=compact))
    estimate = estimate_prompt_tokens(parsed.fields, parsed.media)
    assert naive(body_of(messages, compact=compact)) > 20_000  # what four bytes a token made of it
    assert estimate == text_only(messages, compact) + IMAGE_TOKENS


def real_image(width: int, height: int, fmt: str) -> str:
    out = io.BytesIO()
    Image.new("RGB", (width, height), "white").save(out, format=fmt)
    # Padded past MIN_PAYLOAD as a camera's metadata would: only the header is read.
    return base64.b64encode(out.getvalue() + bytes(2000)).decode()


@pytest.mark.parametrize(
    ("block", "tokens"),
    [
        (image_block(real_image(200, 200, "PNG")), 54),
        (openai_image(real_image(1000, 1000, "JPEG")), 1334),
        (image_block(real_image(3840, 2160, "PNG"), data_first=True), IMAGE_TOKENS),
    ],
    ids=["small-png", "openai-jpeg", "4k-screenshot"],
)
def test_an_image_counts_what_its_pixels_cost(block: dict[str, Any], tokens: int) -> None:
    messages = [{"role": "user", "content": [block, {"type": "text", "text": "what is it?"}]}]
    parsed = parse_body(body_of(messages))
    size = measure_prompt(parsed.fields, parsed.media)
    data = block["source"]["data"] if "source" in block else block["image_url"]["url"]
    emptied = json.loads(json.dumps(messages).replace(data.split(",")[-1], ""))
    assert size == PromptSize(naive(body_of(emptied)) + tokens, 1, tokens)


def test_a_document_counts_nothing_but_its_text() -> None:
    messages = [{"role": "user", "content": [document_block(), {"type": "text", "text": "sum up"}]}]
    parsed = parse_body(body_of(messages))
    assert estimate_prompt_tokens(parsed.fields) == text_only(messages)


def test_text_that_merely_mentions_base64_is_counted_whole() -> None:
    text = 'decode it with base64, then "base64" again; data:x;base64,' + "A" * 5000
    messages = [{"role": "user", "content": text}]
    parsed = parse_body(body_of(messages))
    assert estimate_prompt_tokens(parsed.fields) == naive(body_of(messages))


def test_a_payload_marked_twice_is_counted_once() -> None:
    buf = b'{"source":{"data":"' + PNG.encode() + b'","type":"base64","type":"base64"}}'
    assert len(find_payloads(buf)) == 1


def test_an_object_shaped_like_a_source_elsewhere_is_text() -> None:
    """A tool call's input is JSON the backend reads as text."""
    source = {"type": "base64", "media_type": "image/png", "data": PNG}
    call = {"type": "tool_use", "id": "toolu_1", "name": "upload", "input": source}
    messages = [{"role": "assistant", "content": [call]}]
    parsed = parse_body(body_of(messages))
    assert estimate_prompt_tokens(parsed.fields) == naive(body_of(messages))


@pytest.mark.parametrize(
    "text",
    [
        f'<img src="data:image/png;base64,{PNG}">',  # a page a tool read: its text
        f'{{"type": "base64", "media_type": "image/png", "data": "{PNG}"}}',  # JSON as text
        "body { background: url(data:image/png;base64,AAAA) } " * 2000,
    ],
    ids=["html", "json-text", "css-many-marks"],
)
def test_base64_quoted_in_a_files_text_is_text(text: str) -> None:
    messages = [
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": text}]}
    ]
    parsed = parse_body(body_of(messages))
    assert estimate_prompt_tokens(parsed.fields) == naive(body_of(messages))


def test_short_base64_stays_in_the_estimate() -> None:
    small = base64.b64encode(b"x" * 40).decode()
    assert len(small) < MIN_PAYLOAD
    messages = [{"role": "user", "content": [image_block(small)]}]
    assert find_payloads(body_of(messages)) == []


def test_a_small_icon_counts_its_pixels() -> None:
    # A flat 200 x 200 icon compresses to a few hundred bytes of base64.
    out = io.BytesIO()
    Image.new("RGB", (200, 200), (32, 96, 160)).save(out, "PNG")
    icon = base64.b64encode(out.getvalue()).decode()
    assert len(icon) < 1024
    [found] = find_payloads(body_of([{"role": "user", "content": [image_block(icon)]}]))
    assert found.tokens == 54


def test_each_payload_is_found_once_with_its_bounds() -> None:
    buf = body_of([{"role": "user", "content": [image_block(), document_block(), openai_image()]}])
    found = find_payloads(buf)
    assert [(buf[p.at : p.end].decode(), p.image) for p in found] == [
        (PNG, True),
        (PDF, False),
        (PNG, True),
    ]


def turns() -> list[bytes]:
    history: list[dict[str, Any]] = [
        {"role": "user", "content": [{"type": "text", "text": "look"}, image_block()]}
    ]
    bodies = [body_of(history)]
    for k in range(3):
        history = [
            *history,
            {"role": "assistant", "content": f"answer {k}"},
            {"role": "user", "content": [openai_image()] if k == 1 else f"question {k}"},
        ]
        bodies.append(body_of(history))
    return bodies


def test_a_continued_turn_keeps_what_was_found_and_scans_only_its_new_messages() -> None:
    memo = BodyMemo()
    expected = [estimate_prompt_tokens(parse_body(b).fields) for b in turns()]
    got = []
    for body in turns():
        parsed = memo.parse(body)
        got.append(estimate_prompt_tokens(parsed.fields, parsed.media))
    assert memo.reused == 3  # the later turns were read through the first
    assert got == expected
    assert [e - naive(b) for e, b in zip(expected, turns(), strict=True)][-1] < -30_000


def test_a_scan_carried_over_counts_nothing_it_did_not_see_again() -> None:
    messages = msgspec.Raw(body_of([{"role": "user", "content": [image_block()]}]))
    scan = MediaScan(messages)
    assert len(scan.payloads()) == 1
    # Going on from before the image: it is found again by scanning, not carried.
    later = scan.going_on(messages, 0)
    assert len(later.payloads()) == 1
    assert len(scan.going_on(messages, len(messages)).payloads()) == 1


def test_a_scan_of_other_messages_is_not_used() -> None:
    with_image = parse_body(body_of([{"role": "user", "content": [image_block()]}]))
    plain = parse_body(body_of([{"role": "user", "content": "hi"}]))
    assert estimate_prompt_tokens(plain.fields, with_image.media) == naive(
        body_of([{"role": "user", "content": "hi"}])
    )


_PIECES = [
    b'"source":',
    b'"url":',
    b'"type":"base64"',
    b'"type": "base64"',
    b'"data":"',
    b'"data": "',
    b'"media_type":"image/png"',
    b'"url":"data:image/png;base64,',
    b";base64,",
    b"base64",
    b'"',
    b"{",
    b"}",
    b":",
    b",",
    b" ",
    b"A" * 1500,
    b"QUJD" * 300,
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=30))
def test_any_bytes_give_payloads_inside_them_and_never_an_error(pieces: list[bytes]) -> None:
    buf = b"".join(pieces)
    found = find_payloads(buf)
    for p in found:
        assert p.at >= 0 and p.end <= len(buf) and p.size >= MIN_PAYLOAD
        assert b'"' not in buf[p.at : p.end]
    # Each lies after the last: no byte is left out of the estimate twice.
    assert all(a.end <= b.at for a, b in itertools.pairwise(found))


def test_legacy_functions_count_as_tools_do() -> None:
    """An OpenAI client's tools declared the legacy way are part of its prompt."""
    declared = msgspec.Raw(
        json.dumps([{"name": "Read", "parameters": {"type": "object"}}]).encode()
    )
    messages = msgspec.Raw(b'[{"role": "user", "content": "hi"}]')
    as_tools = estimate_prompt_tokens({"messages": messages, "tools": declared})
    as_functions = estimate_prompt_tokens({"messages": messages, "functions": declared})
    assert as_functions == as_tools > estimate_prompt_tokens({"messages": messages})
