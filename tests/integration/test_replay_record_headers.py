"""A replay record keeps a header the client sent on several lines whole, as
the provider got it: `coderouterd replay` re-sends what the client sent."""

from __future__ import annotations

import aiohttp
from multidict import CIMultiDict

from coderouterd.state.db import open_db
from coderouterd.state.replay import get_replay
from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.state.replay_sessions import settle

BODY = b'{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}'


async def test_the_record_keeps_every_anthropic_beta_line_the_provider_got(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    d = await start_daemon(chain_yaml(provider_yaml("a", fake_upstream.url)))
    # Claude Code may send its betas on two lines.
    headers = CIMultiDict(
        [
            ("content-type", "application/json"),
            ("anthropic-beta", "beta-one-2025"),
            ("anthropic-beta", "beta-two-2025"),
            ("x-api-key", "sk-client-secret"),
            ("x-request-id", "two-betas"),
        ]
    )
    async with (
        aiohttp.ClientSession() as http,
        http.post(d.url + "/v1/messages", data=BODY, headers=headers) as resp,
    ):
        assert resp.status == 200
    sent = fake_upstream.requests[-1].headers["anthropic-beta"]
    assert sent == "beta-one-2025, beta-two-2025"
    await settle(d)
    conn = await open_db(d.state.path, readonly=True)
    try:
        record = await get_replay(conn, "two-betas")
    finally:
        await conn.close()
    assert record is not None
    assert record.request_headers["anthropic-beta"] == sent
    assert "x-api-key" not in record.request_headers
