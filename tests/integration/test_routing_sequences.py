"""Routing under failure over time: every slot given back whatever an
attempt did, clients leaving their lines, errors in the client's envelope
when every provider is out."""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
from typing import Any

import aiohttp
import openai
import pytest

from coderouterd.status import status_of
from tests.conftest import RunningDaemon, StartDaemon, chain_yaml, provider_yaml, until
from tests.fakes.transcripts import (
    anthropic_error,
    anthropic_message,
    anthropic_text_stream,
)
from tests.fakes.upstream import FakeUpstream, Reply

MESSAGES = [{"role": "user", "content": "hello"}]
BODY = {"model": "m", "max_tokens": 10, "messages": MESSAGES}
FAST_PINGS = "server: {keepalive_after_s: 0.1, keepalive_interval_s: 0.1}\n"


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def slots(d: RunningDaemon, name: str) -> tuple[int, int]:
    p = next(p for p in status_of(d.daemon).providers if p.name == name)
    assert p.slots is not None
    return p.slots.in_use, p.slots.waiting


async def post(url: str, path: str, body: dict[str, Any], headers: dict[str, str] | None = None):
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{url}{path}",
            json=body,
            headers=headers or {},
            timeout=aiohttp.ClientTimeout(total=15),
        ) as resp,
    ):
        raw = await resp.read()
        return resp.status, dict(resp.headers), raw


async def test_all_manually_excluded_openai_client_gets_503_in_openai_envelope(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    d = await start_daemon(
        chain_yaml(provider_yaml("a", fake_upstream.url), provider_yaml("b", fake_upstream.url))
    )
    await d.daemon.provider_action("exclude", "a", 1000)
    await d.daemon.provider_action("exclude", "b", 1000)
    async with openai.AsyncOpenAI(base_url=f"{d.url}/v1", api_key="k", max_retries=0) as c:
        with pytest.raises(openai.APIStatusError) as info:
            await c.chat.completions.create(model="any", messages=MESSAGES)  # type: ignore[arg-type]
    assert info.value.status_code == 503
    body: Any = info.value.body
    assert body["type"] == "server_error", body
    assert [a["reason"] for a in body["attempts"]] == ["excluded_manual", "excluded_manual"]
    assert fake_upstream.requests == []
    # Restore one: it answers again.
    fake_upstream.script(Reply(json=anthropic_message("back")))
    await d.daemon.provider_action("restore", "b", 1000)
    async with openai.AsyncOpenAI(base_url=f"{d.url}/v1", api_key="k", max_retries=0) as c:
        raw = await c.chat.completions.with_raw_response.create(model="any", messages=MESSAGES)  # type: ignore[arg-type]
    assert raw.headers["x-coderouter-provider"] == "b"
    assert raw.headers["x-coderouter-fallback-reason"] == "a=excluded_manual"


async def test_anthropic_401_to_openai_client_is_openai_envelope(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(anthropic_error(401, "authentication_error", "invalid x-api-key"))
    d = await start_daemon(
        chain_yaml(provider_yaml("a", fake_upstream.url), provider_yaml("b", fake_upstream.url))
    )
    status, headers, raw = await post(
        d.url, "/v1/chat/completions", {"model": "m", "messages": MESSAGES}
    )
    body = json.loads(raw)
    assert status == 401
    assert headers["x-coderouter-provider"] == "a"
    assert set(body) == {"error"}
    assert body["error"]["message"] == "invalid x-api-key"
    assert body["error"]["type"] == "authentication_error"
    # Not counted as a failure.
    assert d.daemon.healing.book.health("a").streak == 0


@pytest.mark.parametrize(
    "failure",
    [
        Reply(events=anthropic_text_stream(["late"]), delay_before_first_event=3),
        anthropic_error(500, "api_error", "boom"),
        anthropic_error(
            400, "invalid_request_error", "prompt is too long: 50000 tokens > 4096 maximum"
        ),
        anthropic_error(404, "not_found_error", "nope"),
        Reply(events=anthropic_text_stream(["cut", "more"]), disconnect_after_events=3),
        Reply(
            events=anthropic_text_stream(["idle", "more"]),
            pause_after_frames=3,
            resume=asyncio.Event(),
        ),
    ],
    ids=["first_byte", "500", "too_long", "404", "cut_mid", "idle_mid"],
)
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "unary"])
async def test_a_slot_is_given_back_whatever_the_attempt_did(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, failure: Reply, stream: bool
) -> None:
    d = await start_daemon(
        chain_yaml(
            provider_yaml(
                "local",
                fake_upstream.url,
                extra="max_concurrent: 1\ntimeouts: {first_byte_s: 0.3, idle_s: 0.3}",
            ),
            provider_yaml("cloud", fake_upstream.url),
            top=FAST_PINGS,
        )
    )
    fake_upstream.script(
        failure, Reply(events=anthropic_text_stream(["c"]), json=anthropic_message("c"))
    )
    await post(d.url, "/v1/messages", {**BODY, "stream": stream})
    assert slots(d, "local") == (0, 0)
    fake_upstream.script(Reply(events=anthropic_text_stream(["l"]), json=anthropic_message("l")))
    status, headers, _ = await post(d.url, "/v1/messages", {**BODY, "stream": stream})
    assert status == 200
    if "too long" not in json.dumps(failure.json or {}):
        assert headers.get("x-coderouter-provider", "local") == "local"
    assert slots(d, "local") == (0, 0)


async def test_unary_client_leaving_two_lines_frees_both(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    resumes = [asyncio.Event(), asyncio.Event()]
    fake_upstream.script(
        *(
            Reply(events=anthropic_text_stream([n]), pause_after_frames=3, resume=r)
            for n, r in zip(("one", "two"), resumes, strict=True)
        ),
    )
    d = await start_daemon(
        chain_yaml(
            provider_yaml("local", fake_upstream.url, extra="max_concurrent: 1"),
            provider_yaml("local2", fake_upstream.url, extra="max_concurrent: 1"),
            top=FAST_PINGS,
        )
    )
    s = {**BODY, "stream": True}
    first = asyncio.create_task(post(d.url, "/v1/messages", s))
    await until(lambda: len(fake_upstream.requests) == 1)
    second = asyncio.create_task(post(d.url, "/v1/messages", s))
    await until(lambda: len(fake_upstream.requests) == 2)
    third = asyncio.create_task(post(d.url, "/v1/messages", BODY))
    await until(lambda: slots(d, "local") == (1, 1) and slots(d, "local2") == (1, 1))
    third.cancel()
    await until(lambda: slots(d, "local") == (1, 0) and slots(d, "local2") == (1, 0))
    for r in resumes:
        r.set()
    await asyncio.gather(first, second)
    assert slots(d, "local") == (0, 0) and slots(d, "local2") == (0, 0)
    await until(lambda: len(d.daemon.inflight) == 0)
    fake_upstream.script(Reply(json=anthropic_message("4")), Reply(json=anthropic_message("5")))
    st, h, _ = await post(d.url, "/v1/messages", BODY)
    assert (st, h["x-coderouter-provider"]) == (200, "local")
    await d.state.writer.flush()
    with sqlite3.connect(d.state.path) as db:
        rows = db.execute("SELECT status, client_disconnected FROM requests ORDER BY ts").fetchall()
    assert (499, 1) in rows
