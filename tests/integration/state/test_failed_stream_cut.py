"""`requests --failed` and the FAILED column of `usage` count every request
whose client got an error: a stream cut mid-answer, told by an in-stream
error event after its 200, as much as an error status."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_text_stream
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.state.daemon_cli import cli_json

BODY = {
    "model": "m",
    "max_tokens": 5,
    "stream": True,
    "messages": [{"role": "user", "content": "hi"}],
}


async def stream(url: str) -> tuple[str, str]:
    """The stream as its client read it, and its request id."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{url}/v1/messages", json=BODY) as resp,
    ):
        assert resp.status == 200
        return await resp.text(), resp.headers["x-request-id"]


async def test_a_stream_cut_mid_answer_is_listed_and_counted_as_failed(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    fake_upstream.script(
        Reply(events=anthropic_text_stream(["a", "b", "c", "d"]), disconnect_after_events=4),
        Reply(events=anthropic_text_stream(["whole"])),
    )
    d = await start_daemon(chain_yaml(provider_yaml("cloud", fake_upstream.url)))
    cut_text, cut = await stream(d.url)
    whole_text, whole = await stream(d.url)
    # The first client was told its answer failed; the second got all of it.
    assert "event: error" in cut_text and "message_stop" not in cut_text
    assert "event: error" not in whole_text and "message_stop" in whole_text

    rows = {r["id"]: r for r in await cli_json(d, tmp_path, "requests")}
    assert (rows[cut]["status"], rows[whole]["status"]) == (200, 200)
    assert rows[cut]["error"] and rows[whole]["error"] is None
    failed = await cli_json(d, tmp_path, "requests", "--failed")
    assert [r["id"] for r in failed] == [cut]
    [group] = await cli_json(d, tmp_path, "usage")
    assert (group["key"], group["requests"], group["failed"]) == ("cloud", 2, 1)
