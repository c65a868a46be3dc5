"""Continuous probes leave a provider alone while it answers a request."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.conftest import StartDaemon, provider_yaml, until
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply

MESSAGES = [{"role": "user", "content": "hello"}]


def probes(requests: list[Any]) -> int:
    return sum(1 for r in requests if (r.json or {}).get("max_tokens") == 1)


async def test_a_provider_busy_answering_a_long_request_is_not_probed_meanwhile(
    start_daemon: StartDaemon,
) -> None:
    """A request that takes 1.5 s, on a provider probed after 0.2 s without
    attempts: no probe goes to it while it answers (on a one-slot server it
    would wait behind the answer and time out), and probes resume one
    interval after the answer."""
    slow = Reply(json=anthropic_message("long answer"), delay_before_headers=1.5)
    async with FakeUpstream(default=Reply(json=anthropic_message("pong"))) as a:
        yaml = (
            "self_healing: {continuous_probe_interval_s: 0.2, probe_timeout_s: 2}\n"
            f"providers:{provider_yaml('a', a.url)}"
            "profiles:\n  - {name: default, providers: [a]}\n"
        )
        d = await start_daemon(yaml)
        # Just after a probe: the next one is an interval away.
        await until(lambda: probes(a.requests) > 0, timeout=5)
        a.script(slow)
        before = probes(a.requests)
        body = {"model": "m", "max_tokens": 10, "messages": MESSAGES}
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{d.url}/v1/messages", json=body) as resp,
        ):
            assert resp.status == 200
            await resp.read()

        assert probes(a.requests) == before
        await until(lambda: probes(a.requests) > before, timeout=2)
        assert d.daemon.healing.book.health("a").streak == 0
