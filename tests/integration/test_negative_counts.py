"""Token counts no backend can mean: negative ones, and a size_t that
underflowed (2**64 - 1). The client gets the answer as sent; what
coderouterd counts from it (/metrics, the spend, the request log) reads
them as 0 and as a sane maximum, so that no Prometheus counter goes down
and no batch of the state writer is lost to a count SQLite cannot hold."""

from __future__ import annotations

import aiohttp
import anthropic
from prometheus_client.parser import text_string_to_metric_families

from coderouterd.state import reads
from coderouterd.state.db import open_db
from coderouterd.state.records import RequestRow
from coderouterd.wire.usage import MAX_COUNT
from tests.conftest import RunningDaemon, StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply

ASK = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
PRICED = "cost: {input_tokens_per_million: 1.0, output_tokens_per_million: 2.0}"
# A count computed as 0 - 1 in an unsigned 64-bit integer.
UNDERFLOWED = 2**64 - 1

Counters = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def counters(url: str) -> Counters:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as resp:
        text = await resp.text()
    out = {}
    for family in text_string_to_metric_families(text):
        if family.type == "counter":
            for s in family.samples:
                out[s.name, tuple(sorted(s.labels.items()))] = s.value
    return out


async def stored_rows(d: RunningDaemon) -> list[RequestRow]:
    await d.state.writer.flush()
    conn = await open_db(d.state.path, readonly=True)
    try:
        ids = await conn.execute_fetchall("SELECT id FROM requests ORDER BY ts")
        rows = [await reads.request(conn, rid) for (rid,) in ids]
    finally:
        await conn.close()
    return [r for r in rows if r is not None]


async def test_a_backend_reporting_negative_counts_makes_no_counter_go_down(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """Prometheus reads a counter that goes down as a restart: rate() and
    increase() would count its whole value again, and the savings shown
    would be negative."""
    sane = anthropic_message("one", input_tokens=10, output_tokens=5)
    odd = anthropic_message("two", input_tokens=10, output_tokens=5)
    odd["usage"]["output_tokens"] = -50
    odd["usage"]["cache_read_input_tokens"] = -1000
    fake_upstream.script(Reply(json=sane), Reply(json=odd))
    d = await start_daemon(chain_yaml(provider_yaml("a", fake_upstream.url, extra=PRICED)))
    async with anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0) as client:
        await client.messages.create(**ASK)  # type: ignore[call-overload]
        before = await counters(d.url)
        answer = await client.messages.create(**ASK)  # type: ignore[call-overload]
        after = await counters(d.url)
    assert answer.usage.output_tokens == -50  # the client's answer is the backend's
    went_down = {
        key: (before.get(key, 0.0), value)
        for key, value in after.items()
        if value < before.get(key, 0.0) or value < 0
    }
    assert not went_down, f"counters that went down: {went_down}"
    assert after["coderouterd_tokens_total", (("kind", "output"), ("provider", "a"))] == 5
    _first, second = await stored_rows(d)
    assert (second.output_tokens, second.cache_read_input_tokens) == (0, 0)
    assert second.savings_usd == 0


async def test_a_count_past_what_sqlite_holds_costs_no_request_row(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """SQLite's integers stop at 2**63 - 1: a count beyond it, bound to an
    INSERT, fails the writer's whole batch, and with it the rows of every
    other request that shared it. The count is stored at a sane maximum."""
    odd = anthropic_message("huge", input_tokens=10, output_tokens=5)
    odd["usage"]["output_tokens"] = UNDERFLOWED
    fake_upstream.script(Reply(json=anthropic_message("fine")), Reply(json=odd))
    d = await start_daemon(chain_yaml(provider_yaml("a", fake_upstream.url, extra=PRICED)))
    async with aiohttp.ClientSession() as http:
        for _ in range(2):
            async with http.post(f"{d.url}/v1/messages", json=ASK) as resp:
                assert resp.status == 200
                await resp.read()
    rows = await stored_rows(d)
    assert d.state.writer.stats().failed_rows == 0
    assert [r.output_tokens for r in rows][-1] == MAX_COUNT
    assert len(rows) == 2


async def test_counts_in_a_backends_overflow_error_past_what_sqlite_holds_cost_no_request_row(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """A context-window error quotes the prompt's count and the window as
    digits of any length; the attempt row stores them within MAX_COUNT."""
    said = f"request ({UNDERFLOWED} tokens) exceeds the available context size ({UNDERFLOWED})"
    too_long = {"error": {"code": 400, "message": said, "type": "exceed_context_size_error"}}
    fake_upstream.script(
        Reply(status=400, json=too_long, dialect="openai"), Reply(json=anthropic_message("b"))
    )
    d = await start_daemon(
        chain_yaml(
            provider_yaml("a", fake_upstream.url + "/v1", kind="openai_compat"),
            provider_yaml("b", fake_upstream.url),
        )
    )
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{d.url}/v1/messages", json=ASK) as resp,
    ):
        assert resp.status == 200
        await resp.read()
    [row] = await stored_rows(d)
    assert d.state.writer.stats().failed_rows == 0
    too_long_attempt = row.attempts[0]
    assert too_long_attempt.outcome == "too_long"
    assert (too_long_attempt.prompt_tokens, too_long_attempt.context_window) == (
        MAX_COUNT,
        MAX_COUNT,
    )
