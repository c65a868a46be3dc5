"""`ctl status` shows the daemon's memory: resident size and the memos of recent conversations."""

from __future__ import annotations

import sys

import anthropic

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply


async def test_status_counts_the_conversations_each_memo_holds(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    d = await start_daemon(chain_yaml(provider_yaml("a", fake_upstream.url)))
    before = {m.name: m for m in d.daemon.status().memory.memos}
    async with anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0) as client:
        for n in range(3):
            history = [{"role": "user", "content": f"conversation {n}: " + "x" * 2000}]
            await client.messages.create(model="m", max_tokens=5, messages=history)
    await d.state.replays.drain()

    memory = d.daemon.status().memory
    memos = {m.name: m for m in memory.memos}

    assert set(memos) == {"request bodies", "replay pieces", "replay last records"}
    assert before["request bodies"].conversations == 0
    assert memos["request bodies"].conversations == 3
    assert memos["request bodies"].bytes > 3 * 2000
    assert memos["replay last records"].conversations == 3
    assert memory.peak_rss_bytes >= 10 * 1024 * 1024
    if sys.platform.startswith("linux"):
        assert memory.rss_bytes is not None
        assert 10 * 1024 * 1024 <= memory.rss_bytes <= memory.peak_rss_bytes
