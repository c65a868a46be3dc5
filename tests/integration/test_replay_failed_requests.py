"""A routed request that no provider answered is recorded for replay with the
error the client got; one refused before routing is not."""

from __future__ import annotations

import sqlite3

import aiohttp
import msgspec
import pytest

from coderouterd.state.replay import decompress
from tests.conftest import chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_error, anthropic_message, anthropic_text_stream
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.process import ServeProcess, StartServe, child_env, run_cli
from tests.integration.state.test_state_process import cli_args, wait_committed

MESSAGES = [{"role": "user", "content": "hi"}]
_PATHS = {"anthropic": "/v1/messages", "openai": "/v1/chat/completions"}


async def _send(d: ServeProcess, dialect: str, body: dict) -> tuple[int, bytes, str]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(d.url + _PATHS[dialect], json=body) as resp,
    ):
        return resp.status, await resp.read(), resp.headers["x-request-id"]


def _recorded(d: ServeProcess, rid: str) -> tuple[bytes, str | None]:
    with sqlite3.connect(d.state_dir / "coderouterd.db") as db:
        [(body, provider)] = db.execute(
            "SELECT response_body, provider FROM replays WHERE request_id = ?", (rid,)
        ).fetchall()
    return decompress(body), provider


@pytest.mark.parametrize(
    ("dialect", "stream"),
    [("anthropic", False), ("anthropic", True), ("openai", False), ("openai", True)],
    ids=["anthropic-unary", "anthropic-stream", "openai-unary", "openai-stream"],
)
async def test_a_request_every_provider_failed_is_recorded_with_the_error_it_got(
    serve_process: StartServe, fake_upstream: FakeUpstream, dialect: str, stream: bool
) -> None:
    fake_upstream.default = anthropic_error(500, "api_error", "backend crashed")
    d = await serve_process(chain_yaml(provider_yaml("a", fake_upstream.url)))
    body = {"model": "m", "max_tokens": 5, "messages": MESSAGES, "stream": stream}
    status, answer, rid = await _send(d, dialect, body)
    assert status == 503
    await wait_committed(d, 2)
    env = child_env(d.root)
    listing = await run_cli("replay", "list", "--json", *cli_args(d), env=env)
    assert listing.returncode == 0, listing.stderr
    assert [r["request_id"] for r in msgspec.json.decode(listing.stdout)] == [rid]
    assert _recorded(d, rid) == (answer, None)
    shown = await run_cli("requests", rid, "--json", *cli_args(d), env=env)
    assert msgspec.json.decode(shown.stdout)["status"] == 503
    # The backend is back: the replay is answered, and the diff says the error went.
    fake_upstream.default = (
        Reply(events=anthropic_text_stream(["fine now"]))
        if stream
        else Reply(json=anthropic_message("fine now"))
    )
    run = await run_cli(
        "replay", rid, "--diff", "--json", "--socket", str(d.socket_path), *cli_args(d), env=env
    )
    assert run.returncode == 0, run.stderr
    reply = msgspec.json.decode(run.stdout)
    assert reply["status"] == 200 and reply["response"]["text"] == "fine now", reply
    [error] = [c for c in reply["changes"] if c["field"] == "error"]
    assert "a: http_500" in error["before"] and error["after"] is None


async def test_a_request_refused_before_routing_is_not_recorded(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    d = await serve_process(chain_yaml(provider_yaml("a", fake_upstream.url)))
    status, _, rid = await _send(d, "anthropic", {"model": "m", "max_tokens": 5})
    assert status == 400
    await wait_committed(d, 1)
    env = child_env(d.root)
    shown = await run_cli("requests", rid, "--json", *cli_args(d), env=env)
    assert msgspec.json.decode(shown.stdout)["status"] == 400
    listing = await run_cli("replay", "list", "--json", *cli_args(d), env=env)
    assert msgspec.json.decode(listing.stdout) == []
