"""A window learned from a refusal is measured on the prompt the refusing
provider was sent, tools and all, not on the prompt the provider that
answered was sent (without the tools, when it cannot call them): live, and
as a restarted daemon reads it back from the request log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import msgspec

from coderouterd.state import reads
from coderouterd.state.db import open_db
from coderouterd.translate.estimate import estimate_prompt_tokens
from tests.conftest import RunningDaemon, StartDaemon, chain_yaml, provider_yaml, until
from tests.fakes.transcripts import anthropic_error, anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply

# A tool schema of about 1000 estimated tokens: a coding agent's tools are
# most of a short conversation's prompt.
TOOLS = [
    {
        "name": "Bash",
        "description": "Runs a shell command. " + "x" * 4000,
        "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
    }
]
# `local` is sent the tools; `notools` cannot call them, and is sent none.
CONFIG = chain_yaml(
    provider_yaml("local", "{url}"),
    provider_yaml("notools", "{url}", extra="capabilities: {{tools: false}}"),
)


def body(text: str) -> dict[str, Any]:
    return {
        "model": "m",
        "max_tokens": 10,
        "tools": TOOLS,
        "messages": [{"role": "user", "content": text}],
    }


def estimate(b: dict[str, Any], *, tools: bool = True) -> int:
    """The daemon's estimate of `b` sent compact, with its tools or without."""
    fields = {k: msgspec.Raw(msgspec.json.encode(v)) for k, v in b.items()}
    if not tools:
        del fields["tools"]
    return estimate_prompt_tokens(fields, None)


# The first prompt, and one about 300 estimated tokens shorter that fits the
# window `local` names for the first.
FIRST, SECOND = body("y" * 1200), body("y" * 20)


def refusal_of_first() -> Reply:
    """`local`'s refusal of FIRST: its backend counts 1.1 tokens for each
    estimated one, and its window holds a prompt of about 150 estimated
    tokens fewer (the tools are most of it)."""
    full = estimate(FIRST)
    tokens, window = int(full * 1.1), int((full - 150) * 1.1)
    said = f"prompt is too long: {tokens} tokens > {window} maximum"
    return anthropic_error(400, "invalid_request_error", said)


async def post(d: RunningDaemon, b: dict[str, Any]) -> tuple[int, str, str]:
    """The status, the provider that answered and the fallback reasons."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as http,
        http.post(
            f"{d.url}/v1/messages",
            # Compact, as `estimate` measures it.
            data=msgspec.json.encode(b),
            headers={"content-type": "application/json"},
        ) as r,
    ):
        await r.read()
        return (
            r.status,
            r.headers.get("x-coderouter-provider", ""),
            r.headers.get("x-coderouter-fallback-reason", ""),
        )


async def refused_then_answered_without_tools(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, **kw: Any
) -> RunningDaemon:
    """A daemon to which `local` refused FIRST as too long, and `notools` answered it."""
    fake_upstream.script(refusal_of_first(), Reply(json=anthropic_message("from notools")))
    d = await start_daemon(CONFIG.format(url=fake_upstream.url), **kw)
    assert await post(d, FIRST) == (200, "notools", "local=context_exceeded")
    await until(lambda: d.daemon.windows.learned("local") is not None, timeout=5)
    return d


async def test_a_refusal_answered_by_a_provider_sent_no_tools_teaches_the_window_with_the_tools(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """Measured on the prompt `notools` got (no tools), the limit would come
    out far too low, and every prompt with the tools would be skipped past
    `local` as context_too_small for ten minutes: the coding agent handed to
    a model that cannot call its tools, though its own backend would have
    taken the prompt."""
    d = await refused_then_answered_without_tools(start_daemon, fake_upstream)
    learned = d.daemon.windows.learned("local")
    assert learned is not None
    # About the prompt `local` was sent, less what its window has no room for.
    assert estimate(FIRST) - 200 < learned[0].limit < estimate(FIRST) - 100

    fake_upstream.script(Reply(json=anthropic_message("from local")))
    assert await post(d, SECOND) == (200, "local", "")


async def test_each_attempt_row_keeps_the_prompt_as_its_provider_was_sent_it(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    d = await refused_then_answered_without_tools(start_daemon, fake_upstream)
    await d.state.writer.flush()
    conn = await open_db(d.state.path, readonly=True)
    try:
        rows = await reads.recent_requests(conn, since=None, provider=None, limit=1)
    finally:
        await conn.close()
    without_tools = estimate(FIRST, tools=False)
    assert rows[0].prompt_estimate == without_tools
    assert [(a.provider, a.prompt_estimate) for a in rows[0].attempts] == [
        ("local", estimate(FIRST)),
        ("notools", without_tools),
    ]


async def test_a_restarted_daemon_reads_the_window_back_as_measured_with_the_tools(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    state_dir = tmp_path / "state"
    d = await refused_then_answered_without_tools(start_daemon, fake_upstream, state_dir=state_dir)
    await d.state.writer.flush()
    again = await start_daemon(CONFIG.format(url=fake_upstream.url), state_dir=state_dir)
    before, after = d.daemon.windows.learned("local"), again.daemon.windows.learned("local")
    assert before is not None and after is not None
    assert (after[0].limit, after[0].window) == (before[0].limit, before[0].window)

    fake_upstream.script(Reply(json=anthropic_message("from local")))
    assert await post(again, SECOND) == (200, "local", "")
