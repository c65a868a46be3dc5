"""A stream whose error is sent in-stream, because keep-alive pings had
already sent the HTTP 200, is stored and counted with the status the error
would have had as a response: a failure whether or not a ping went out."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from coderouterd.state import reads
from coderouterd.state.db import open_db
from coderouterd.state.records import RequestRow
from tests.conftest import RunningDaemon, StartDaemon, chain_yaml, provider_yaml, until
from tests.fakes.transcripts import anthropic_error_body
from tests.fakes.upstream import FakeUpstream, Reply

FAST_PINGS = "server: {keepalive_after_s: 0.05, keepalive_interval_s: 0.05}\n"
STREAM = b'{"model":"m","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"hi"}]}'


async def failed_rows(d: RunningDaemon) -> list[RequestRow]:
    """What `coderouterd requests --failed` lists."""
    await d.state.writer.flush()
    conn = await open_db(d.state.path, readonly=True)
    try:
        return await reads.recent_requests(conn, since=None, provider=None, limit=100, failed=True)
    finally:
        await conn.close()


async def stream(d: RunningDaemon, path: str, body: bytes) -> tuple[str, str]:
    """The stream's text as the client read it, and the request id, once the
    daemon has finished with the request."""
    headers = {"content-type": "application/json"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{d.url}{path}", data=body, headers=headers) as resp,
    ):
        assert resp.status == 200
        text, rid = await resp.text(), resp.headers["x-request-id"]
    await until(lambda: len(d.daemon.inflight) == 0)
    return text, rid


async def requests_total(d: RunningDaemon, dialect: str, status: str) -> float:
    async with aiohttp.ClientSession() as http, http.get(f"{d.url}/metrics") as resp:
        text = await resp.text()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "coderouterd_requests_total" and s.labels == {
                "dialect": dialect,
                "profile": "default",
                "status": status,
            }:
                return s.value
    return 0.0


def slow_error(status: int, error_type: str) -> Reply:
    # Answers after the first keep-alive ping went out.
    return Reply(
        status=status, json=anthropic_error_body(error_type, "busy"), delay_before_headers=0.3
    )


async def test_a_stream_every_provider_failed_after_pings_is_stored_and_counted_as_a_503(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(slow_error(503, "overloaded_error"))
    d = await start_daemon(chain_yaml(provider_yaml("a", fake_upstream.url), top=FAST_PINGS))
    text, rid = await stream(d, "/v1/messages", STREAM)
    # The client got pings, then the all-failed error in-stream, and no content.
    assert "event: ping" in text and "overloaded_error" in text
    assert "content_block" not in text
    [row] = await failed_rows(d)
    assert (row.id, row.status, row.provider) == (rid, 503, None)
    assert row.error is not None and "could serve the request" in row.error
    assert await requests_total(d, "anthropic", "503") == 1
    assert await requests_total(d, "anthropic", "200") == 0


async def test_a_stream_every_provider_rate_limited_after_pings_is_stored_as_a_429(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(slow_error(429, "rate_limit_error"))
    d = await start_daemon(chain_yaml(provider_yaml("a", fake_upstream.url), top=FAST_PINGS))
    text, rid = await stream(d, "/v1/messages", STREAM)
    assert "event: ping" in text and "event: error" in text
    # The in-stream error says what the status would have: rate-limited.
    assert '"type":"rate_limit_error"' in text.split("event: error", 1)[1]
    [row] = await failed_rows(d)
    assert (row.id, row.status, row.provider) == (rid, 429, None)


async def test_a_request_refused_for_the_next_provider_after_pings_is_stored_as_a_400(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    # The OpenAI provider takes the body as it is (and fails, slowly); the
    # Anthropic one cannot be written a message that is no valid UTF-8.
    fake_upstream.script(slow_error(503, "overloaded_error"))
    d = await start_daemon(
        chain_yaml(
            provider_yaml("a", fake_upstream.url + "/v1", kind="openai_compat"),
            provider_yaml("b", fake_upstream.url),
            top=FAST_PINGS,
        )
    )
    body = b'{"model":"m","stream":true,"messages":[{"role":"user","content":"hi \xff\xfe"}]}'
    text, rid = await stream(d, "/v1/chat/completions", body)
    assert ": keep-alive" in text and "invalid_request_error" in text
    [row] = await failed_rows(d)
    assert (row.id, row.status, row.provider) == (rid, 400, None)
    assert [(a.provider, a.outcome) for a in row.attempts] == [("a", "failed"), ("b", "refused")]
    assert await requests_total(d, "openai", "400") == 1
