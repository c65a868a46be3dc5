"""Logging never decides whether a request is served: the daemon's stderr
is a pipe to whatever reads its logs (journald, a shipper, `| tee`), and
that reader can go away while the daemon runs. Its lines are then dropped
and counted; requests are answered, fall back, and are counted as before."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_error, anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.process import ServeProcess, StartServe

pytestmark = pytest.mark.timeout(30)

BODY = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
ANSWERED = 'coderouterd_requests_total{dialect="anthropic",profile="default",status="200"}'


async def drop_log_reader(d: ServeProcess) -> None:
    """Stop reading the daemon's stderr and close our end of the pipe, as a
    log shipper that exits does: the daemon's next write gets EPIPE."""
    for task in d._readers:
        if task.get_name() == "stderr":
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    transport = d.proc._transport  # type: ignore[attr-defined]
    transport.get_pipe_transport(2).close()
    await asyncio.sleep(0.2)


def dropped_lines(metrics: str) -> float:
    [family] = [
        f
        for f in text_string_to_metric_families(metrics)
        if f.name == "coderouterd_log_lines_dropped"
    ]
    return family.samples[0].value


async def test_a_chain_still_falls_back_and_answers_after_the_log_reader_went_away(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    """`a` fails (its `provider.failing` line is the first to meet the
    broken pipe, mid-fallback): `b` answers, and the request is counted."""
    fake_upstream.script(
        anthropic_error(503, "overloaded_error", "busy"),
        Reply(json=anthropic_message("from b")),
    )
    d = await serve_process(
        chain_yaml(provider_yaml("a", fake_upstream.url), provider_yaml("b", fake_upstream.url))
    )
    await drop_log_reader(d)
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{d.url}/v1/messages", json=BODY) as resp:
            status, text = resp.status, await resp.text()
        async with http.get(f"{d.url}/metrics") as resp:
            metrics = await resp.text()
    assert status == 200, f"{status} {text[:200]!r}; upstream asked {len(fake_upstream.requests)}x"
    assert "from b" in text
    assert f"{ANSWERED} 1" in metrics
    # provider.failing, request.completed at least.
    assert dropped_lines(metrics) >= 2


async def test_an_answered_request_leaves_its_connection_usable_after_the_log_reader_went_away(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    """Clients keep their connection alive (every SDK does): the request
    after one whose `request.completed` line met the broken pipe is
    answered on the same connection."""
    fake_upstream.default = Reply(json=anthropic_message("hello"))
    d = await serve_process(chain_yaml(provider_yaml("a", fake_upstream.url)))
    await drop_log_reader(d)
    statuses: list[int | str] = []
    async with aiohttp.ClientSession() as http:
        for _ in range(2):
            try:
                async with http.post(f"{d.url}/v1/messages", json=BODY) as resp:
                    await resp.read()
                    statuses.append(resp.status)
            except aiohttp.ClientError as exc:
                statuses.append(repr(exc))
        async with http.get(f"{d.url}/metrics") as resp:
            metrics = await resp.text()
    assert statuses == [200, 200]
    assert f"{ANSWERED} 2" in metrics
    assert dropped_lines(metrics) >= 2  # each request's request.completed
