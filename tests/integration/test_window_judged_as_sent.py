"""A provider's context window, learned or declared, is judged against the
prompt as that provider is sent it: one whose model cannot call tools
(`capabilities: {tools: false}`) is sent none of the tool list, so the
tools do not count against its window."""

from __future__ import annotations

import anthropic
import openai

from tests.conftest import StartDaemon, chain_yaml, provider_yaml, until
from tests.fakes.transcripts import anthropic_error, anthropic_message, openai_completion
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.test_learned_window_sent_tools import TOOLS, body, estimate, post

NO_TOOLS = "capabilities: {{tools: false}}"


async def test_a_short_turn_fits_the_window_learned_of_a_provider_sent_no_tools(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """`notools` refused a prompt of about 1000 estimated tokens without the
    tools: its limit is 90% of that. A later turn of ten tokens of messages,
    with the same tools it is never sent, fits it: compared with the
    estimate with the tools, it would be skipped as context_too_small."""
    config = chain_yaml(
        provider_yaml("notools", "{url}", extra=NO_TOOLS), provider_yaml("local", "{url}")
    ).format(url=fake_upstream.url)
    first, second = body("y" * 4000), body("y" * 20)
    bare = estimate(first, tools=False)
    said = f"prompt is too long: {bare} tokens > {int(bare * 0.9)} maximum"
    fake_upstream.script(
        anthropic_error(400, "invalid_request_error", said),
        Reply(json=anthropic_message("from local")),
    )
    d = await start_daemon(config)
    assert await post(d, first) == (200, "local", "notools=context_exceeded")
    await until(lambda: d.daemon.windows.learned("notools") is not None, timeout=5)
    learned = d.daemon.windows.learned("notools")
    assert learned is not None
    assert estimate(second, tools=False) < learned[0].limit < estimate(second)

    fake_upstream.script(Reply(json=anthropic_message("from notools")))
    assert await post(d, second) == (200, "notools", "")


def declared(kind: str, url: str) -> str:
    """Two providers that declare the same window, one of them sent no
    tools, then one of no declared window; tried in that order by a profile
    that skips by declared windows."""
    window = "max_context_tokens: 600"
    return chain_yaml(
        provider_yaml("tooled", url, kind=kind, extra=f"capabilities: {{{window}}}"),
        provider_yaml("notools", url, kind=kind, extra=f"capabilities: {{tools: false, {window}}}"),
        provider_yaml("big", url, kind=kind),
        profiles="  - {name: default, providers: [tooled, notools, big], context_action: skip}\n",
    )


# About 1000 estimated tokens with the tools, under 100 without.
TURN = body("y" * 200)


async def test_a_declared_window_is_judged_against_what_each_provider_is_sent_anthropic(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    assert estimate(TURN, tools=False) < 600 < estimate(TURN)
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    d = await start_daemon(declared("anthropic", fake_upstream.url))
    async with anthropic.AsyncAnthropic(
        base_url=d.url, api_key="k", max_retries=0, timeout=10
    ) as client:
        raw = await client.messages.with_raw_response.create(**TURN)
    assert raw.headers["x-coderouter-provider"] == "notools"
    assert raw.headers["x-coderouter-fallback-reason"] == "tooled=context_too_small"
    assert "tools" not in fake_upstream.requests[0].json


async def test_a_declared_window_is_judged_against_what_each_provider_is_sent_openai(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    tools = [
        {
            "type": "function",
            "function": {"name": t["name"], "description": t["description"]},
        }
        for t in TOOLS
    ]
    turn = {**TURN, "tools": tools}
    assert estimate(turn, tools=False) < 600 < estimate(turn)
    fake_upstream.default = Reply(dialect="openai", json=openai_completion("ok"))
    d = await start_daemon(declared("openai_compat", fake_upstream.url))
    async with openai.AsyncOpenAI(
        base_url=f"{d.url}/v1", api_key="k", max_retries=0, timeout=10
    ) as client:
        raw = await client.chat.completions.with_raw_response.create(**turn)
    assert raw.headers["x-coderouter-provider"] == "notools"
    assert raw.headers["x-coderouter-fallback-reason"] == "tooled=context_too_small"
    assert "tools" not in fake_upstream.requests[0].json
