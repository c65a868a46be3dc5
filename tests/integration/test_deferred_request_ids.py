"""Which log lines carry a `request_id`: those logged inside a request, for
that request. Verdicts judged from the queued request summaries (drift)
belong to no request, even when a /metrics scrape is what hands the queue
over: the scrape's id names no routed request, and no request row."""

from __future__ import annotations

from collections.abc import Sequence

import aiohttp
import pytest
import structlog
from structlog.testing import capture_logs

from coderouterd.routing.records import RequestSummary
from coderouterd.telemetry import deferred as deferred_module
from coderouterd.telemetry.deferred import Deferred
from coderouterd.telemetry.logging import get_logger
from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Recorded, Reply

PROFILES = """\
  - {name: main, providers: [local]}
drift: {window: 10}
"""
SCRAPE_ID = "prometheus-scrape-0001"
BODY = {"model": "m", "max_tokens": 50, "messages": [{"role": "user", "content": "go on"}]}


def empty_answer(_req: Recorded) -> Reply:
    empty = anthropic_message("")
    empty["content"] = []
    empty["usage"]["output_tokens"] = 0
    return Reply(json=empty)


async def test_a_drift_verdict_handed_over_by_a_metrics_scrape_carries_no_request_id(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No hand-over but the scrape's: the verdict is judged inside GET /metrics.
    monkeypatch.setattr(deferred_module, "INTERVAL_S", 3600.0)
    fake_upstream.responder = empty_answer
    d = await start_daemon(chain_yaml(provider_yaml("local", fake_upstream.url), profiles=PROFILES))
    # As the daemon logs: with the request id bound in the context merged in.
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        async with aiohttp.ClientSession() as http:
            for _ in range(6):
                async with http.post(f"{d.url}/v1/messages", json=BODY) as resp:
                    assert resp.status == 200
            assert not [e for e in logs if e["event"] == "provider.drift"]
            headers = {"x-request-id": SCRAPE_ID}
            async with http.get(f"{d.url}/metrics", headers=headers) as resp:
                assert resp.status == 200
    [drift] = [e for e in logs if e["event"] == "provider.drift"]
    assert "request_id" not in drift, drift
    scrape_lines = [e for e in logs if e.get("request_id") == SCRAPE_ID]
    assert not scrape_lines


def test_a_request_that_fills_the_queue_lends_its_id_to_no_consumers_line() -> None:
    def judge(batch: Sequence[RequestSummary]) -> None:
        get_logger().warning("provider.drift", judged=len(batch))

    deferred = Deferred([judge], get_logger())
    summary = RequestSummary(
        request_id="r",
        dialect="anthropic",
        profile="p",
        requested_model=None,
        provider=None,
        attempts=(),
        status=200,
        stream=False,
        ttfb_ms=None,
        total_ms=1.0,
        usage=None,
    )
    with (
        capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs,
        structlog.contextvars.bound_contextvars(request_id="the-4096th"),
    ):
        for _ in range(4096):
            deferred.request_finished(summary)
        get_logger().info("request.completed")
    drift, done = logs
    assert (drift["event"], drift["judged"]) == ("provider.drift", 4096)
    assert "request_id" not in drift
    assert done["request_id"] == "the-4096th"  # the request's own lines keep it
