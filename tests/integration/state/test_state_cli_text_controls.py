"""The text forms of `usage` and `requests ID`: a name a client chose is
shown on one line, its control characters escaped, so it can neither forge
a row of the table nor drive the terminal."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.state.daemon_cli import cli

BODY = {"max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
# Any string naming no profile is routed to the default one, and stored as sent.
FORGER = "x\ntotal   999   999   999"


async def post(url: str, model: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{url}/v1/messages", json={**BODY, "model": model}) as resp,
    ):
        await resp.read()
        return resp.status, resp.headers["x-request-id"]


async def test_a_model_name_cannot_forge_rows_of_the_usage_table(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    d = await start_daemon(chain_yaml(provider_yaml("cloud", fake_upstream.url)))
    for model in ("m", FORGER):
        assert (await post(d.url, model))[0] == 200
    code, out, err = await cli(d, tmp_path, "usage", "--by", "model")
    assert code == 0, err
    head, *groups, total = out.splitlines()
    assert head.split()[:2] == ["MODEL", "REQUESTS"]
    assert sorted(g.split()[0] for g in groups) == ["m", "x\\ntotal"]
    assert total.split()[:3] == ["total", "2", "0"]


async def test_one_request_whole_keeps_its_model_name_on_its_line(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    d = await start_daemon(chain_yaml(provider_yaml("cloud", fake_upstream.url)))
    status, rid = await post(d.url, "m\n  provider   forged\r\x1b[2J\x9b2J")
    assert status == 200
    code, out, err = await cli(d, tmp_path, "requests", rid)
    assert code == 0, err
    lines = out.splitlines()
    fields = [line.split()[0] for line in lines if line.startswith("  ") and line[2] != " "]
    assert fields == [
        "time", "client", "profile", "provider", "status", "timing", "usage", "prompt", "cost",
        "answer", "attempts", "replay",
    ]  # fmt: skip
    assert "model m\\n  provider   forged\\r\\x1b[2J\\x9b2J" in out
    assert "  provider   cloud" in lines
    assert not any(c in out for c in "\x1b\x9b\r")
