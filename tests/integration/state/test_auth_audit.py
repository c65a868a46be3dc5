"""A provider rejecting our key is audited once, and once more when it accepts it again."""

from __future__ import annotations

import anthropic
import pytest

from coderouterd.state.audit import tail
from coderouterd.state.db import open_db
from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_error, anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply

MESSAGES = [{"role": "user", "content": "hi"}]


async def test_rejected_key_is_audited_on_change_only(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    rejected = anthropic_error(401, "authentication_error", "invalid x-api-key")
    fake_upstream.script(
        rejected,
        rejected,
        Reply(json=anthropic_message("ok")),
        anthropic_error(403, "permission_error", "no"),
    )
    d = await start_daemon(chain_yaml(provider_yaml("cloud", fake_upstream.url)))
    async with anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0) as client:
        for expected in (401, 401, 200, 403):
            try:
                await client.messages.create(model="m", max_tokens=5, messages=MESSAGES)
                status = 200
            except anthropic.APIStatusError as exc:
                status = exc.status_code
            assert status == expected
    [cloud] = d.daemon.status().providers
    assert cloud.auth_rejected and cloud.last_status == 403
    await d.state.writer.flush()
    conn = await open_db(d.state.path, readonly=True)
    try:
        rows = [r for r in await tail(conn, 50) if r.event.startswith("provider.auth")]
    finally:
        await conn.close()
    assert [(r.event, r.fields.get("status")) for r in rows] == [
        ("provider.auth_rejected", 401),
        ("provider.auth_accepted", None),
        ("provider.auth_rejected", 403),
    ]
    assert all(r.fields["provider"] == "cloud" for r in rows)


@pytest.mark.parametrize("status", [400, 404, 429, 500])
async def test_other_errors_are_not_auth_failures(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, status: int
) -> None:
    fake_upstream.default = anthropic_error(status, "api_error", "no")
    d = await start_daemon(chain_yaml(provider_yaml("cloud", fake_upstream.url)))
    async with anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0) as client:
        with pytest.raises(anthropic.APIStatusError):
            await client.messages.create(model="m", max_tokens=5, messages=MESSAGES)
    assert not d.daemon.status().providers[0].auth_rejected
