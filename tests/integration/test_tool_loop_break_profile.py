"""A request its profile refuses (a tool loop under `tool_loop_action: break`)
is logged, stored and counted under that profile; only one refused before
routing (here: an unknown profile) has none."""

from __future__ import annotations

import sqlite3

import anthropic
import pytest
from structlog.testing import capture_logs

from tests.conftest import StartDaemon, provider_yaml
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.test_metrics import at, scrape
from tests.integration.test_tool_loop import looping


async def test_a_loop_refused_under_break_is_the_profiles_in_log_row_and_metrics(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("again"))
    d = await start_daemon(
        f"providers:{provider_yaml('a', fake_upstream.url)}"
        "profiles:\n"
        "  - {name: default, providers: [a]}\n"
        "  - {name: agent, providers: [a], tool_loop_action: break, tool_loop_threshold: 3}\n"
    )
    async with anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0) as client:
        with capture_logs() as logs, pytest.raises(anthropic.BadRequestError) as looped:
            await client.messages.create(
                model="m",
                max_tokens=5,
                messages=looping(3),
                extra_headers={"x-coderouter-mode": "agent", "x-request-id": "looped"},
            )
        with pytest.raises(anthropic.BadRequestError):
            await client.messages.create(
                model="m",
                max_tokens=5,
                messages=[{"role": "user", "content": "hi"}],
                extra_headers={"x-coderouter-mode": "nope", "x-request-id": "unknown"},
            )
    assert "tool loop" in looped.value.message
    assert fake_upstream.requests == []
    [loop] = [e for e in logs if e["event"] == "request.tool_loop"]
    [done] = [e for e in logs if e["event"] == "request.completed"]
    assert (loop["profile"], done["profile"], done["status"]) == ("agent", "agent", 400)
    assert (done["provider"], done["attempts"]) == (None, [])

    await d.state.writer.flush()
    with sqlite3.connect(d.state.path) as db:
        rows = db.execute("SELECT id, profile, status FROM requests ORDER BY id").fetchall()
    assert rows == [("looped", "agent", 400), ("unknown", "", 400)]
    _, samples, _ = await scrape(d.url)
    assert at(samples, "requests_total", dialect="anthropic", profile="agent", status="400") == 1
    assert at(samples, "requests_total", dialect="anthropic", profile="", status="400") == 1
