"""Input that only a deeper read finds wrong: a 400 in the client's dialect naming
the field, recorded as that 400, never a 500 and never sent upstream."""

from __future__ import annotations

import asyncio
import gzip
import sqlite3
from typing import Any

import aiohttp
import msgspec
import pytest
from structlog.testing import capture_logs

from tests.conftest import RunningDaemon, StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message, openai_completion
from tests.fakes.upstream import FakeUpstream, Reply

PATHS = {"anthropic": "/v1/messages", "openai": "/v1/chat/completions"}
HI = b'[{"role":"user","content":"hi"}]'


async def send(
    url: str, dialect: str, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            url + PATHS[dialect],
            data=body,
            headers={"content-type": "application/json", **(headers or {})},
        ) as resp,
    ):
        return resp.status, await resp.json(content_type=None)


def field_of(dialect: str, error: dict[str, Any]) -> str:
    """The field a 400 names, checked to be in the dialect's envelope."""
    if dialect == "anthropic":
        assert error["type"] == "error"
        assert error["error"]["type"] == "invalid_request_error"
        return str(error["error"]["field"])
    assert error["error"]["type"] == "invalid_request_error"
    return str(error["error"]["param"])


async def daemon(start_daemon: StartDaemon, fake: FakeUpstream, kind: str) -> RunningDaemon:
    fake.default = (
        Reply(json=anthropic_message("ok"))
        if kind == "anthropic"
        else Reply(json=openai_completion("ok"), dialect="openai")
    )
    url = fake.url if kind == "anthropic" else fake.url + "/v1"
    return await start_daemon(chain_yaml(provider_yaml("p", url, kind=kind)))


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# (dialect of the client, body, field named). Each is read by the first pass
# (the top-level keys) without complaint, or not read at all.
FIRST_READ = [
    ("anthropic", b'{"model":"m\xff\xfe","max_tokens":5,"messages":' + HI + b"}", "model"),
    ("openai", b'{"model":"m\xff\xfe","messages":' + HI + b"}", "model"),
    (
        "anthropic",
        b'{"model":"m","max_tokens":5,"messages":[{"role":"user","content":'
        + nested(10_000)
        + b"}]}",
        "body",
    ),
    ("openai", b'{"model":"m","messages":' + HI + b',"metadata":' + nested(10_000) + b"}", "body"),
]


@pytest.mark.parametrize(("dialect", "body", "field"), FIRST_READ)
async def test_what_the_first_read_finds_is_a_400_naming_the_field(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, dialect: str, body: bytes, field: str
) -> None:
    d = await daemon(start_daemon, fake_upstream, "anthropic")
    status, error = await send(d.url, dialect, body)
    assert (status, field_of(dialect, error)) == (400, field)
    assert fake_upstream.requests == []


async def test_a_body_whose_encoding_is_corrupt_is_a_400(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    d = await daemon(start_daemon, fake_upstream, "anthropic")
    # A gzip header, then no deflate stream.
    corrupt = gzip.compress(b"")[:4] + b"garbagegarbage"
    for dialect in PATHS:
        status, error = await send(d.url, dialect, corrupt, {"content-encoding": "gzip"})
        assert (status, field_of(dialect, error)) == (400, "body")
    assert fake_upstream.requests == []
    # The connection is closed after the answer, not read on: aiohttp would
    # fail on the rest of the body again and log a bare traceback.
    await asyncio.sleep(0.2)
    assert [r.getMessage() for r in caplog.records if r.name.startswith("aiohttp")] == []


# What only translation reads: (provider kind, client dialect, body, field).
TRANSLATED = [
    (
        "openai_compat",
        "anthropic",
        b'{"model":"m","max_tokens":5,"messages":' + HI + b',"temperature":"hot"}',
        "temperature",
    ),
    ("anthropic", "openai", b'{"model":"m","messages":' + HI + b',"top_p":"high"}', "top_p"),
    (
        "openai_compat",
        "anthropic",
        b'{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi \xff\xfe"}]}',
        "messages[0]",
    ),
    (
        "openai_compat",
        "anthropic",
        b'{"model":"m","max_tokens":5,"messages":' + HI + b',"metadata":{"user_id":"\xc3("}}',
        "metadata",
    ),
    (
        "anthropic",
        "openai",
        b'{"model":"m","messages":[{"role":"user","content":"hi \xff\xfe"}]}',
        "messages",
    ),
    (
        "anthropic",
        "openai",
        b'{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"assistant",'
        b'"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"'
        + b'{\\"a\\":' * 990
        + b"1"
        + b"}" * 990
        + b'"}}]},{"role":"tool","tool_call_id":"c1","content":"x"}]}',
        "messages[1].tool_calls[0].function.arguments",
    ),
]


@pytest.mark.parametrize("case", TRANSLATED)
async def test_what_only_translation_reads_is_a_400_recorded_as_such(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, case: tuple[str, str, bytes, str]
) -> None:
    kind, dialect, body, field = case
    d = await daemon(start_daemon, fake_upstream, kind)
    with capture_logs() as logs:
        status, error = await send(d.url, dialect, body)
    assert (status, field_of(dialect, error)) == (400, field)
    assert fake_upstream.requests == []
    # The log line and the request row say what the client got.
    (done,) = [e for e in logs if e["event"] == "request.completed"]
    assert done["status"] == 400 and done["error"].startswith(f"{field}: ")
    assert [(a["outcome"], a["reason"]) for a in done["attempts"]] == [
        ("refused", "invalid_request")
    ]
    await d.state.writer.flush()
    with sqlite3.connect(d.state.path) as db:
        assert db.execute("SELECT status FROM requests").fetchall() == [(400,)]
    # The client's error says nothing about the provider's health.
    assert d.daemon.board.get("p").state != "failing"


async def test_calls_too_deep_to_compare_are_not_a_loop_and_not_a_500(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    # A runaway model's arguments, sent back in the history: the loop check
    # cannot decode them to compare, so they are different calls.
    d = await daemon(start_daemon, fake_upstream, "openai_compat")

    def call(i: int) -> dict[str, Any]:
        deep = '{"a":' * 5000 + str(i) + "}" * 5000
        return {"id": f"c{i}", "type": "function", "function": {"name": "f", "arguments": deep}}

    history = [{"role": "user", "content": "go"}]
    history.append({"role": "assistant", "content": None, "tool_calls": [call(1), call(2)]})
    history += [{"role": "tool", "tool_call_id": f"c{i}", "content": "x"} for i in (1, 2)]
    body = msgspec.json.encode({"model": "m", "messages": history})
    status, answer = await send(d.url, "openai", body)
    assert status == 200, answer
    assert answer["choices"][0]["message"]["content"] == "ok"
