"""One request writes log lines of a bounded size, whatever the size of the
names it chose: journald splits a line past its LineMax (48 KiB by
default) into pieces that are no longer JSON, and any local process could
otherwise flood the log at the size of its request bodies."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.conftest import chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message, openai_completion
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.process import StartServe

pytestmark = pytest.mark.timeout(30)

# Well under server.max_body_bytes and the test reader's 1 MiB line limit.
HUGE = "M" * 300_000
# A line for one request stays far below journald's LineMax.
LINE_BOUND = 16 * 1024
HI = [{"role": "user", "content": "hi"}]


def tool_loop(name: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"role": "user", "content": "fix it"}]
    for i in range(4):
        out += [
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": f"t{i}", "name": name, "input": {}}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": f"t{i}", "content": "same"}],
            },
        ]
    return out


# (route, body, provider kind, profile's extra settings)
CASES: dict[str, tuple[str, dict[str, Any], str, str]] = {
    "model": ("/v1/messages", {"model": HUGE, "max_tokens": 5, "messages": HI}, "anthropic", ""),
    "unknown profile": (
        "/v1/messages",
        {"model": "m", "profile": HUGE, "max_tokens": 5, "messages": HI},
        "anthropic",
        "",
    ),
    "looping tool": (
        "/v1/messages",
        {"model": "m", "max_tokens": 5, "messages": tool_loop(HUGE)},
        "anthropic",
        "",
    ),
    "looping tool refused": (
        "/v1/messages",
        {"model": "m", "max_tokens": 5, "messages": tool_loop(HUGE)},
        "anthropic",
        "tool_loop_action: break",
    ),
    "role a translator refuses": (
        "/v1/chat/completions",
        {"model": "m", "max_tokens": 5, "messages": [{"role": HUGE, "content": "hi"}]},
        "anthropic",
        "",
    ),
    "block type a translator drops": (
        "/v1/messages",
        {
            "model": "m",
            "max_tokens": 5,
            "messages": [
                {"role": "user", "content": [{"type": HUGE}, {"type": "text", "text": "hi"}]}
            ],
        },
        "openai_compat",
        "",
    ),
    "many block types a translator drops": (
        "/v1/messages",
        {
            "model": "m",
            "max_tokens": 5,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        *({"type": f"kind{i}"} for i in range(2000)),
                        {"type": "text", "text": "hi"},
                    ],
                }
            ],
        },
        "openai_compat",
        "",
    ),
}
# What each case's lines say of the value cut: by default, how much of it.
CUT = {"many block types a translator drops": "...: 1968 more"}


@pytest.mark.parametrize("case", list(CASES))
async def test_a_huge_name_in_a_request_writes_no_huge_log_line(
    serve_process: StartServe, fake_upstream: FakeUpstream, case: str
) -> None:
    path, body, kind, profile_extra = CASES[case]
    fake_upstream.default = (
        Reply(json=openai_completion("ok"), dialect="openai")
        if kind == "openai_compat"
        else Reply(json=anthropic_message("ok"))
    )
    url = fake_upstream.url + ("/v1" if kind == "openai_compat" else "")
    profiles = f"  - name: default\n    providers: [a]\n    {profile_extra}\n"
    d = await serve_process(chain_yaml(provider_yaml("a", url, kind=kind), profiles=profiles))
    since = d.mark()
    async with aiohttp.ClientSession() as http, http.post(f"{d.url}{path}", json=body) as resp:
        await resp.read()
    line = await d.wait_for_event("request.completed", since=since)
    assert len(line.get("requested_model") or "") < 1024
    lines = d.stderr_lines[since:]
    longest = max(len(text) for text in lines)
    assert longest < LINE_BOUND, f"a {longest}-byte log line for one request"
    # The name is logged all the same, cut, saying by how much.
    assert any(CUT.get(case, "more characters)") in text for text in lines)
