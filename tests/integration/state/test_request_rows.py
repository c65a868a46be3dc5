"""What a finished request leaves in the database, through a real daemon: every
column of its row and of each attempt."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
import anthropic
import msgspec
import openai
import pytest
from structlog.testing import capture_logs

from coderouterd.state import reads
from coderouterd.state.db import open_db
from coderouterd.state.records import AttemptRow, RequestRow
from tests.conftest import RunningDaemon, StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import (
    anthropic_error_body,
    anthropic_message,
    anthropic_text_stream,
)
from tests.fakes.upstream import FakeUpstream, Reply

MESSAGES = [{"role": "user", "content": "hi"}]
# The messages as the SDKs send them, compact, at four bytes a token.
PROMPT_ESTIMATE = math.ceil(len(msgspec.json.encode(MESSAGES)) / 4)
# 10 input + 5 output tokens: $2, twice the budget; cloud is then spent.
CLOUD = """cost:
  input_tokens_per_million: 100000
  output_tokens_per_million: 200000
  monthly_budget_usd: 1
"""
# $0.001 an input token, $0.002 an output token; cache reads at a tenth,
# cache writes at 1.25 times the input price.
LOCAL = """cost:
  input_tokens_per_million: 1000
  output_tokens_per_million: 2000
"""
CACHED_USAGE = {
    "input_tokens": 10,
    "output_tokens": 5,
    "cache_creation_input_tokens": 20,
    "cache_read_input_tokens": 100,
}
# 10 * 0.001 + 5 * 0.002 + 0.001 * (100 * 0.1 + 20 * 1.25)
CACHED_COST = 0.055
# What the 100 cache reads saved: 90 % of their plain input price.
CACHED_SAVINGS = 0.09
PROFILES = """  - name: default
    providers: [cloud, flaky, cut, local]
  - name: solo
    providers: [local]
"""


def config(url: str) -> str:
    return chain_yaml(
        provider_yaml("cloud", url, extra=CLOUD),
        provider_yaml("flaky", url),
        provider_yaml("cut", url),
        provider_yaml("local", url, extra=LOCAL),
        profiles=PROFILES,
    )


async def stored(d: RunningDaemon, request_id: str) -> RequestRow:
    await d.state.writer.flush()
    conn = await open_db(d.state.path, readonly=True)
    try:
        row = await reads.request(conn, request_id)
    finally:
        await conn.close()
    assert row is not None
    return row


def completed(logs: Sequence[Mapping[str, Any]], request_id: str) -> Mapping[str, Any]:
    [line] = [
        e for e in logs if e["event"] == "request.completed" and e["request_id"] == request_id
    ]
    return line


def logged_attempt(line: Mapping[str, Any], seq: int) -> AttemptRow:
    """The attempt as the canonical log line reports it (cost aside): the oracle for timings."""
    a = line["attempts"][seq]
    return AttemptRow(
        seq=seq,
        provider=a["provider"],
        outcome=a["outcome"],
        reason=a.get("reason"),
        detail=a.get("detail"),
        status=a.get("status"),
        ttfb_ms=a.get("ttfb_ms"),
        latency_ms=a.get("latency_ms"),
        model=a.get("model"),
        prompt_estimate=a.get("prompt_estimate"),
    )


async def test_a_fallback_request_stores_every_column_and_every_attempt(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(
        # Spends cloud's budget.
        Reply(json=anthropic_message("spent")),
        # Then cloud is skipped; flaky is overloaded, slowly.
        Reply(
            status=503,
            json=anthropic_error_body("overloaded_error", "busy"),
            delay_before_headers=0.03,
        ),
        # cut answers its headers, then the connection drops mid-body.
        Reply(events=anthropic_text_stream(["never"]), disconnect_after_events=1),
        Reply(json={**anthropic_message("answer"), "usage": CACHED_USAGE}),
    )
    d = await start_daemon(config(fake_upstream.url))
    async with anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0) as client:
        await client.messages.create(model="claude-x", max_tokens=5, messages=MESSAGES)
        before = time.time()
        with capture_logs() as logs:
            raw = await client.messages.with_raw_response.create(
                model="claude-x", max_tokens=5, messages=MESSAGES
            )
        after = time.time()
    rid = raw.headers["x-request-id"]
    row = await stored(d, rid)
    line = completed(logs, rid)
    assert before <= row.ts <= row.ts + row.total_ms / 1000 <= after
    assert row.cost_usd == pytest.approx(CACHED_COST)
    assert row.savings_usd == pytest.approx(CACHED_SAVINGS)
    assert row.attempts[3].cost_usd == pytest.approx(CACHED_COST)
    exact = msgspec.structs.replace(
        row,
        ts=0.0,
        cost_usd=None,
        savings_usd=None,
        attempts=(*row.attempts[:3], msgspec.structs.replace(row.attempts[3], cost_usd=None)),
    )
    assert exact == RequestRow(
        id=rid,
        ts=0.0,
        dialect="anthropic",
        profile="default",
        requested_model="claude-x",
        provider="local",
        status=200,
        stream=False,
        ttfb_ms=line["ttfb_ms"],
        total_ms=line["total_ms"],
        input_tokens=10,
        output_tokens=5,
        cache_creation_input_tokens=20,
        cache_read_input_tokens=100,
        usage_estimated=False,
        cache_outcome="hit",
        stop_reason="end_turn",
        tool_use=False,
        tools_offered=False,
        prompt_estimate=PROMPT_ESTIMATE,
        attempts=(
            AttemptRow(seq=0, provider="cloud", outcome="skipped", reason="budget_exceeded"),
            logged_attempt(line, 1),
            logged_attempt(line, 2),
            logged_attempt(line, 3),
        ),
    )
    _, flaky, cut, local = row.attempts
    assert (flaky.outcome, flaky.reason, flaky.detail) == ("failed", "http_503", "overloaded_error")
    assert (flaky.status, flaky.ttfb_ms) == (503, None)
    assert flaky.latency_ms is not None and flaky.latency_ms >= 30
    # Headers came, then the body broke: a failure with a time to first byte.
    assert (cut.outcome, cut.reason, cut.status) == ("failed", "protocol_error", None)
    assert cut.ttfb_ms is not None
    assert cut.latency_ms is not None and cut.latency_ms >= cut.ttfb_ms
    assert (local.outcome, local.status) == ("ok", 200)
    assert local.ttfb_ms is not None and local.latency_ms is not None
    assert row.ttfb_ms is not None and row.ttfb_ms >= local.ttfb_ms
    assert row.total_ms >= flaky.latency_ms + cut.latency_ms + local.latency_ms


async def test_an_openai_stream_stores_its_dialect_profile_and_usage(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Reply(events=anthropic_text_stream(["hello"], output_tokens=7)))
    d = await start_daemon(config(fake_upstream.url))
    async with openai.AsyncOpenAI(
        base_url=f"{d.url}/v1", api_key="k", max_retries=0, timeout=10
    ) as client:
        with capture_logs() as logs:
            stream = await client.chat.completions.with_raw_response.create(
                model="gpt-x",
                messages=[{"role": "user", "content": "hi"}],
                stream=True,
                stream_options={"include_usage": True},
                extra_headers={"x-coderouter-mode": "solo"},
            )
            async for _ in stream.parse():
                pass
    rid = stream.headers["x-request-id"]
    row = await stored(d, rid)
    line = completed(logs, rid)
    # 10 * 0.001 + 7 * 0.002
    assert row.cost_usd == pytest.approx(0.024)
    assert row.savings_usd == pytest.approx(0.0)
    assert msgspec.structs.replace(
        row, ts=0.0, cost_usd=None, savings_usd=None, attempts=()
    ) == RequestRow(
        id=rid,
        ts=0.0,
        dialect="openai",
        profile="solo",
        requested_model="gpt-x",
        provider="local",
        status=200,
        stream=True,
        ttfb_ms=line["ttfb_ms"],
        total_ms=line["total_ms"],
        input_tokens=10,
        output_tokens=7,
        cache_creation_input_tokens=0,
        cache_read_input_tokens=0,
        cache_outcome="none",
        stop_reason="end_turn",
        tool_use=False,
        prompt_estimate=PROMPT_ESTIMATE,
    )
    [attempt] = row.attempts
    assert msgspec.structs.replace(attempt, cost_usd=None) == logged_attempt(line, 0)
    assert attempt.cost_usd == pytest.approx(0.024)
    assert attempt.ttfb_ms is not None and attempt.latency_ms is not None


async def test_a_request_no_provider_answered_stores_its_status_and_error(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Reply(status=500, json=anthropic_error_body("api_error", "down")))
    d = await start_daemon(config(fake_upstream.url))
    async with anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0) as client:
        with capture_logs() as logs, pytest.raises(anthropic.APIStatusError) as info:
            await client.messages.create(
                model="m",
                max_tokens=5,
                messages=MESSAGES,
                extra_headers={"x-coderouter-mode": "solo"},
            )
    assert info.value.status_code == 503
    rid = info.value.response.headers["x-request-id"]
    row = await stored(d, rid)
    line = completed(logs, rid)
    assert line["error"]
    assert msgspec.structs.replace(row, ts=0.0) == RequestRow(
        id=rid,
        ts=0.0,
        dialect="anthropic",
        profile="solo",
        requested_model="m",
        provider=None,
        status=503,
        stream=False,
        ttfb_ms=None,
        total_ms=line["total_ms"],
        cache_outcome="unknown",
        error=line["error"],
        prompt_estimate=PROMPT_ESTIMATE,
        attempts=(logged_attempt(line, 0),),
    )
    assert (row.attempts[0].outcome, row.attempts[0].status) == ("failed", 500)


async def test_a_request_refused_before_routing_still_leaves_its_row_and_log_line(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    d = await start_daemon(config(fake_upstream.url))
    async with anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0) as client:
        with capture_logs() as logs, pytest.raises(anthropic.BadRequestError) as info:
            await client.messages.create(
                model="m",
                max_tokens=5,
                messages=MESSAGES,
                stream=True,
                extra_headers={"x-coderouter-mode": "nowhere"},
            )
    rid = info.value.response.headers["x-request-id"]
    row = await stored(d, rid)
    line = completed(logs, rid)
    assert line["status"] == 400 and "nowhere" in line["error"]
    assert msgspec.structs.replace(row, ts=0.0) == RequestRow(
        id=rid,
        ts=0.0,
        dialect="anthropic",
        profile="",
        requested_model="m",
        provider=None,
        status=400,
        stream=True,
        ttfb_ms=None,
        total_ms=line["total_ms"],
        cache_outcome="unknown",
        error=line["error"],
        attempts=(),
    )
    assert fake_upstream.requests == []


async def test_a_body_that_is_not_json_leaves_a_row_in_the_clients_dialect(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    d = await start_daemon(config(fake_upstream.url))
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{d.url}/v1/chat/completions", data=b"{not json") as resp,
    ):
        assert resp.status == 400
        assert (await resp.json())["error"]["param"] == "body"
        rid = resp.headers["x-request-id"]
    row = await stored(d, rid)
    assert (row.dialect, row.status, row.profile, row.requested_model) == ("openai", 400, "", None)
    assert row.error is not None and "JSON" in row.error
