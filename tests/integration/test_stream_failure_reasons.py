"""A stream that fails after its commit point is recorded under one of the
attempt reasons a failure before it has (README "Response headers"), never
under the upstream's words: the reason labels `attempt_failures_total`, whose
series must stay few, and is what the request log's attempts are grouped by.
What went wrong in words reaches the client's error frame."""

from __future__ import annotations

from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from coderouterd.state import reads
from coderouterd.state.db import open_db
from coderouterd.state.records import RequestRow
from coderouterd.wire.sse import SSEDecoder
from tests.conftest import RunningDaemon, StartDaemon, chain_yaml, provider_yaml, until
from tests.fakes.transcripts import anthropic_stream_error, anthropic_text_stream
from tests.fakes.upstream import FakeUpstream, Reply

BODY: dict[str, Any] = {
    "model": "m",
    "max_tokens": 10,
    "stream": True,
    "messages": [{"role": "user", "content": "hi"}],
}
STREAM = anthropic_text_stream(["one ", "two"])
# message_start, content_block_start, the first delta: past the commit point.
COMMITTED = 3


async def failure_counts(d: RunningDaemon) -> dict[str, float]:
    """`attempt_failures_total` of provider `a`, by reason."""
    async with aiohttp.ClientSession() as http, http.get(f"{d.url}/metrics") as resp:
        text = await resp.text()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "coderouterd_attempt_failures_total" and s.labels["provider"] == "a":
                out[s.labels["reason"]] = s.value
    return out


async def ask(d: RunningDaemon) -> tuple[str, bytes]:
    """The request's id and its last event's data, once the daemon is done with it."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{d.url}/v1/messages", json=BODY) as resp,
    ):
        assert resp.status == 200
        rid, raw = resp.headers["x-request-id"], await resp.read()
    await until(lambda: len(d.daemon.inflight) == 0)
    return rid, SSEDecoder().feed(raw)[-1].data


async def logged(d: RunningDaemon, rid: str) -> RequestRow:
    await d.state.writer.flush()
    conn = await open_db(d.state.path, readonly=True)
    try:
        row = await reads.request(conn, rid)
    finally:
        await conn.close()
    assert row is not None
    return row


async def test_a_connection_cut_after_the_commit_point_is_a_protocol_error(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Reply(events=STREAM, disconnect_after_events=COMMITTED))
    d = await start_daemon(chain_yaml(provider_yaml("a", fake_upstream.url)))
    rid, error = await ask(d)
    assert b"failed mid-stream: protocol_error (connection lost" in error
    assert await failure_counts(d) == {"protocol_error": 1}
    row = await logged(d, rid)
    [attempt] = row.attempts
    assert (attempt.outcome, attempt.reason) == ("failed", "protocol_error")
    # The words stay with the attempt and the request, for the operator.
    assert attempt.detail is not None and attempt.detail.startswith("connection lost")
    assert row.error is not None and row.error.startswith("protocol_error: connection lost")


async def test_a_stream_that_ends_without_message_stop_is_a_protocol_error(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Reply(events=STREAM, omit_message_stop=True))
    d = await start_daemon(chain_yaml(provider_yaml("a", fake_upstream.url)))
    rid, error = await ask(d)
    assert b"protocol_error (stream ended without message_stop)" in error
    assert await failure_counts(d) == {"protocol_error": 1}
    [attempt] = (await logged(d, rid)).attempts
    assert attempt.reason == "protocol_error"


async def test_upstream_error_events_of_any_type_count_under_one_reason(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    # Each type an upstream invents would otherwise be a series of its own;
    # one saying the backend ran out of memory is that, as before the commit point.
    fake_upstream.script(
        *(
            Reply(events=[*STREAM[:COMMITTED], anthropic_stream_error(f"weird_{i}", "boom")])
            for i in range(3)
        ),
        Reply(events=[*STREAM[:COMMITTED], anthropic_stream_error("weird", "CUDA out of memory")]),
    )
    d = await start_daemon(chain_yaml(provider_yaml("a", fake_upstream.url)))
    asked = [await ask(d) for _ in range(4)]
    # The upstream's own error events are what the client gets.
    assert [error for _, error in asked] == [
        *(
            f'{{"type":"error","error":{{"type":"weird_{i}","message":"boom"}}}}'.encode()
            for i in range(3)
        ),
        b'{"type":"error","error":{"type":"weird","message":"CUDA out of memory"}}',
    ]
    assert await failure_counts(d) == {"protocol_error": 3, "memory_pressure": 1}
    rows = [await logged(d, rid) for rid, _ in asked]
    assert [[a.reason for a in row.attempts] for row in rows] == [["protocol_error"]] * 3 + [
        ["memory_pressure"]
    ]
