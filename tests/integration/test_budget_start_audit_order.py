"""The thresholds a start audits (a budget lowered under the month's spend
while the daemon was stopped) are filed once the daemon serves: after its
`daemon.started`, and not at all by a start that cannot bind its port, which
never enforced them."""

from __future__ import annotations

import signal
import socket

import aiohttp
import pytest

from coderouterd.state.audit import tail
from coderouterd.state.db import DB_FILENAME, open_db
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.process import ServeProcess, StartServe
from tests.integration.test_budget_restart_audit import config

pytestmark = pytest.mark.timeout(60)

BODY = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
STARTED, THRESHOLD = "daemon.started", "budget.threshold_crossed"


async def audited(d: ServeProcess) -> list[str]:
    conn = await open_db(d.root / "state" / DB_FILENAME, readonly=True)
    try:
        rows = await tail(conn, 100)
    finally:
        await conn.close()
    return [r.event for r in rows if r.event in {STARTED, THRESHOLD}]


async def stop(d: ServeProcess) -> None:
    d.send_signal(signal.SIGTERM)
    assert await d.wait(10) == 0


async def test_a_lowered_budget_is_audited_after_daemon_started_and_not_by_a_failed_bind(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    first = await serve_process(config(fake_upstream.url, 1000))
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"http://{first.listen}/v1/messages", json=BODY) as resp,
    ):
        assert resp.headers["x-coderouter-provider"] == "cloud"
    await stop(first)
    assert await audited(first) == [STARTED]

    # The port is taken: this start fails before it serves, and files nothing.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(AssertionError, match="exited"):
            await serve_process(
                config(fake_upstream.url, 10),
                state_root=first.root,
                server={"port": taken.getsockname()[1]},
                timeout=5,
            )
    assert await audited(first) == [STARTED]

    second = await serve_process(config(fake_upstream.url, 10), state_root=first.root)
    await stop(second)
    assert await audited(second) == [STARTED, STARTED, THRESHOLD, THRESHOLD]
