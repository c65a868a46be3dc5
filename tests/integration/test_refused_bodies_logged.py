"""A request refused while its body is read (over server.max_body_bytes, an
encoding that cannot be decoded, a client that leaves mid-upload) has one
summary like any refused request: one request.completed line, one row in the
request log and one requests_total sample, with the status and the words the
client was answered with (README: "A request refused before routing ... has
it too")."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
import anthropic
import openai
import pytest
from structlog.testing import capture_logs

from tests.conftest import RunningDaemon, StartDaemon, chain_yaml, provider_yaml, until
from tests.fakes.upstream import FakeUpstream
from tests.integration.clients import a_sdk, o_sdk

LIMIT = 2048
BIG = "x" * 5000


async def requests_total(d: RunningDaemon) -> dict[str, int]:
    """requests_total by status, over every dialect and profile."""
    async with aiohttp.ClientSession() as http, http.get(f"{d.url}/metrics") as resp:
        text = await resp.text()
    out: dict[str, int] = {}
    for line in text.splitlines():
        if line.startswith("coderouterd_requests_total{"):
            status = line.split('status="')[1].split('"')[0]
            out[status] = out.get(status, 0) + int(line.rsplit(" ", 1)[1])
    return out


async def rows(d: RunningDaemon) -> list[tuple[str, int, str, str | None]]:
    """(id, status, profile, error) of every stored request."""
    await d.state.writer.flush()
    con = sqlite3.connect(d.state.path)
    try:
        return list(con.execute("SELECT id, status, profile, error FROM requests"))
    finally:
        con.close()


async def disconnected(d: RunningDaemon) -> list[int]:
    await d.state.writer.flush()
    con = sqlite3.connect(d.state.path)
    try:
        return [r[0] for r in con.execute("SELECT client_disconnected FROM requests")]
    finally:
        con.close()


def completed(logs: Sequence[Mapping[str, Any]]) -> list[tuple[Any, Any, Any]]:
    return [
        (e["request_id"], e["status"], e.get("error"))
        for e in logs
        if e["event"] == "request.completed"
    ]


@pytest.mark.parametrize("dialect", ["anthropic", "openai"])
async def test_a_body_over_max_body_bytes_is_logged_counted_and_stored_as_413(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, dialect: str
) -> None:
    d = await start_daemon(
        chain_yaml(
            provider_yaml("a", fake_upstream.url), top=f"server: {{max_body_bytes: {LIMIT}}}\n"
        )
    )
    messages = [{"role": "user", "content": BIG}]
    with capture_logs() as logs:
        if dialect == "anthropic":
            with pytest.raises(anthropic.APIStatusError) as a_err:
                await a_sdk(d.url).messages.create(model="m", max_tokens=5, messages=messages)  # type: ignore[arg-type]
            status, body = a_err.value.status_code, a_err.value.body
            rid = a_err.value.response.headers["x-request-id"]
            said = body["error"]["message"]  # type: ignore[index]
        else:
            with pytest.raises(openai.APIStatusError) as o_err:
                await o_sdk(d.url).chat.completions.create(model="m", messages=messages)  # type: ignore[arg-type]
            status, body = o_err.value.status_code, o_err.value.body
            rid = o_err.value.response.headers["x-request-id"]
            said = body["message"]  # type: ignore[index]
    assert status == 413
    assert said.startswith(f"body: request body is larger than the limit of {LIMIT} bytes")
    # The log line and the row say what the client was told, once.
    assert completed(logs) == [(rid, 413, said)]
    assert await rows(d) == [(rid, 413, "", said)]
    assert (await requests_total(d)).get("413") == 1
    assert not fake_upstream.requests


async def test_a_body_whose_encoding_cannot_be_decoded_is_logged_counted_and_stored_as_400(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    d = await start_daemon(chain_yaml(provider_yaml("a", fake_upstream.url)))
    headers = {"content-encoding": "gzip", "content-type": "application/json"}
    with capture_logs() as logs:
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{d.url}/v1/messages", data=b"not gzip at all", headers=headers) as resp,
        ):
            assert resp.status == 400
            rid = resp.headers["x-request-id"]
            said = (await resp.json())["error"]["message"]
    assert said.startswith("body: cannot be read")
    assert completed(logs) == [(rid, 400, said)]
    assert await rows(d) == [(rid, 400, "", said)]
    assert (await requests_total(d)).get("400") == 1
    assert not fake_upstream.requests


async def test_a_client_leaving_while_its_body_uploads_is_logged_counted_and_stored_as_499(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    d = await start_daemon(chain_yaml(provider_yaml("a", fake_upstream.url)))
    host, port = d.daemon.listen.rsplit(":", 1)
    with capture_logs() as logs:
        _reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100000\r\n\r\n{"model":"m",'
        )
        await writer.drain()
        await until(lambda: len(d.daemon.inflight) == 1, timeout=5)
        [entry] = d.daemon.status().in_flight
        writer.close()
        await until(lambda: len(d.daemon.inflight) == 0, timeout=5)
        # Time for a second report, were there one.
        await asyncio.sleep(0.1)
    rid = entry.request_id
    assert completed(logs) == [(rid, 499, "client disconnected")]
    assert await rows(d) == [(rid, 499, "", "client disconnected")]
    assert await disconnected(d) == [1]
    assert await requests_total(d) == {"499": 1}
    assert not fake_upstream.requests
