"""Images an OpenAI client sends reach an `anthropic` provider as Claude
takes them: a tool's screenshot inside its tool_result, and an inline image
with the media type its bytes are, whatever the client labelled it."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.conftest import StartDaemon
from tests.fakes.upstream import FakeUpstream
from tests.integration.clients import claude, dropped, post_chat
from tests.integration.clients import o_sdk as sdk

# A 1 x 1 PNG and the first bytes of a JPEG, as an OpenAI client inlines them.
PNG_BYTES = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
    )
).decode()
JPEG_BYTES = base64.b64encode(
    bytes.fromhex("ffd8ffe000104a46494600010100000100010000ffd9")
).decode()
SCREENSHOT_CALL = {
    "role": "assistant",
    "content": None,
    "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "screenshot", "arguments": "{}"}}
    ],
}
TOOLS = [{"type": "function", "function": {"name": "screenshot"}}]


async def test_a_screenshot_a_tool_returned_reaches_claude_inside_its_tool_result(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """A browser tool of an OpenAI agent (Cline, Roo, an SDK app) answers with
    text and an `image_url` part: Claude gets both, in order, inside the
    tool_result (Anthropic takes image blocks there), the image's prompt-cache
    marker with it, and nothing is recorded as lost."""
    url = await claude(start_daemon, fake_upstream)
    marker = {"type": "ephemeral"}
    result = {
        "role": "tool",
        "tool_call_id": "call_1",
        "content": [
            {"type": "text", "text": "here is the page"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_BYTES}"}},
            {"type": "text", "text": " "},
            {
                "type": "image_url",
                "image_url": {"url": "https://example.com/page.png"},
                "cache_control": marker,
            },
        ],
    }
    messages = [{"role": "user", "content": "take a screenshot"}, SCREENSHOT_CALL, result]
    with capture_logs() as logs:
        status, answer = await post_chat(url, {"model": "x", "messages": messages, "tools": TOOLS})
    assert status == 200, answer
    sent = fake_upstream.requests[0].json["messages"]
    [tool_result] = [b for m in sent for b in m["content"] if b["type"] == "tool_result"]
    assert tool_result == {
        "type": "tool_result",
        "tool_use_id": "call_1",
        "content": [
            {"type": "text", "text": "here is the page"},
            {
                "type": "image",
                "source": {"type": "base64", "media_type": "image/png", "data": PNG_BYTES},
            },
            {
                "type": "image",
                "source": {"type": "url", "url": "https://example.com/page.png"},
                "cache_control": marker,
            },
        ],
    }
    assert dropped(logs) == []


async def test_a_tool_message_of_text_parts_alone_still_reaches_claude_as_text(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """Parts Anthropic has no block for (audio) are left out and recorded;
    the text is sent."""
    url = await claude(start_daemon, fake_upstream)
    audio = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
    result = {
        "role": "tool",
        "tool_call_id": "call_1",
        "content": [{"type": "text", "text": "recorded"}, audio],
    }
    messages = [{"role": "user", "content": "record"}, SCREENSHOT_CALL, result]
    with capture_logs() as logs:
        status, answer = await post_chat(url, {"model": "x", "messages": messages, "tools": TOOLS})
    assert status == 200, answer
    sent = fake_upstream.requests[0].json["messages"]
    [tool_result] = [b for m in sent for b in m["content"] if b["type"] == "tool_result"]
    assert tool_result["content"] == [{"type": "text", "text": "recorded"}]
    assert [x.split(":")[0] for x in dropped(logs)] == ["content.input_audio"]


@pytest.mark.parametrize(
    ("label", "data", "media_type"),
    [
        ("image/jpg", JPEG_BYTES, "image/jpeg"),
        ("image/jpeg", PNG_BYTES, "image/png"),  # a PNG screenshot labelled as a JPEG
        ("image/JPG", "bm90IGFuIGltYWdl", "image/jpeg"),  # bytes of no format Claude reads
    ],
)
async def test_an_inline_image_reaches_claude_with_the_media_type_of_its_bytes(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, label: str, data: str, media_type: str
) -> None:
    """OpenAI reads an image's bytes, so clients label images loosely
    (`image/jpg`); Claude takes only image/jpeg, png, gif and webp, and only
    the type the bytes are."""
    url = await claude(start_daemon, fake_upstream)
    parts: Any = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": f"data:{label};base64,{data}"}},
    ]
    async with sdk(url) as client:
        completion = await client.chat.completions.create(
            model="x", messages=[{"role": "user", "content": parts}]
        )
    assert completion.choices[0].message.content == "ok"
    [image] = [
        b for b in fake_upstream.requests[0].json["messages"][0]["content"] if b["type"] == "image"
    ]
    assert image["source"] == {"type": "base64", "media_type": media_type, "data": data}
