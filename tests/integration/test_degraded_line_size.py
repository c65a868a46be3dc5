"""What a translator leaves out, as `capability.degraded` tells it: each
name of the client's choosing (a block type, a content part's, a tool's)
cut to 256 characters wherever it is quoted, and the whole list to a size
one log line can carry. Past journald's LineMax (48 KiB by default) a line
is cut into pieces that are no longer JSON, so one request could otherwise
break the log, or flood it."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.conftest import chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message, openai_completion
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.process import ServeProcess, StartServe

pytestmark = pytest.mark.timeout(30)

JOURNALD_LINE_MAX = 48 * 1024
# A name in a non-Latin script: three bytes a character in UTF-8.
NAME = "\u6f22" * 1500
KINDS = [f"{i:02d}{NAME}" for i in range(40)]


async def degraded_line(d: ServeProcess, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """The request's `capability.degraded` event, once the request is done,
    and its longest log line in bytes (as `line_bytes`)."""
    since = d.mark()
    async with aiohttp.ClientSession() as http, http.post(f"{d.url}{path}", json=body) as resp:
        assert resp.status == 200, await resp.text()
    await d.wait_for_event("request.completed", since=since)
    degraded = await d.wait_for_event("capability.degraded", since=since)
    line = max(len(text.encode()) for text in d.stderr_lines[since:])
    return {**degraded, "line_bytes": line}


def assert_cut(degraded: dict[str, Any]) -> None:
    assert degraded["line_bytes"] < JOURNALD_LINE_MAX, f"a {degraded['line_bytes']}-byte line"
    # An entry names its kind twice (field, reason): each time cut to 256 characters.
    quoted = max(entry.count(NAME[0]) for entry in degraded["dropped"])
    assert quoted <= 2 * 256, f"a dropped entry quoting {quoted} characters of a client's name"
    assert degraded["dropped"][-1].startswith("...: ")  # the rest counted


async def test_block_types_an_openai_backend_has_no_equivalent_for_are_logged_cut(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=openai_completion("ok"), dialect="openai")
    d = await serve_process(
        chain_yaml(provider_yaml("a", fake_upstream.url + "/v1", kind="openai_compat"))
    )
    content: list[dict[str, Any]] = [{"type": kind} for kind in KINDS]
    content.append({"type": "text", "text": "hi"})
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": content}]}
    assert_cut(await degraded_line(d, "/v1/messages", body))


async def test_content_part_types_an_anthropic_backend_has_no_equivalent_for_are_logged_cut(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    d = await serve_process(chain_yaml(provider_yaml("a", fake_upstream.url)))
    content: list[dict[str, Any]] = [{"type": kind} for kind in KINDS]
    content.append({"type": "text", "text": "hi"})
    body = {"model": "m", "messages": [{"role": "user", "content": content}]}
    assert_cut(await degraded_line(d, "/v1/chat/completions", body))


async def test_tool_types_an_anthropic_backend_has_no_equivalent_for_are_logged_cut(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    d = await serve_process(chain_yaml(provider_yaml("a", fake_upstream.url)))
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": kind} for kind in KINDS],
    }
    assert_cut(await degraded_line(d, "/v1/chat/completions", body))
