"""GET /metrics read back by Prometheus's own parser, after real requests through the daemon."""

from __future__ import annotations

import aiohttp
import anthropic
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import StartDaemon, chain_yaml, provider_yaml, until
from tests.fakes.transcripts import anthropic_error, anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.test_healing_probe_status import probed_every_tenth_of_a_second

Sample = tuple[str, tuple[tuple[str, str], ...]]


async def scrape(url: str) -> tuple[str, dict[Sample, float], dict[str, str]]:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
        content_type = resp.headers["content-type"]
    samples: dict[Sample, float] = {}
    kinds: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        kinds[family.name] = family.type
        for s in family.samples:
            samples[s.name, tuple(sorted(s.labels.items()))] = s.value
    return content_type, samples, kinds


def at(samples: dict[Sample, float], name: str, **labels: str) -> float:
    return samples[f"coderouterd_{name}", tuple(sorted(labels.items()))]


async def test_requests_attempts_tokens_and_state_are_exposed(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(
        anthropic_error(503, "overloaded_error", "busy"),
        Reply(json=anthropic_message("from b", output_tokens=7)),
        Reply(json=anthropic_message("from a", output_tokens=3)),
    )
    d = await start_daemon(
        chain_yaml(
            provider_yaml("a", fake_upstream.url),
            provider_yaml(
                "b",
                fake_upstream.url,
                extra="cost: {input_tokens_per_million: 1.0, output_tokens_per_million: 2.0}",
            ),
        )
    )
    ask = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    async with anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0) as client:
        await client.messages.create(**ask)
        await client.messages.create(**ask)
        with pytest.raises(anthropic.BadRequestError):
            await client.messages.create(**ask, extra_headers={"x-coderouter-mode": "nope"})
    content_type, samples, kinds = await scrape(d.url)
    assert content_type.startswith("text/plain; version=0.0.4")
    assert at(samples, "requests_total", dialect="anthropic", profile="default", status="200") == 2
    assert at(samples, "requests_total", dialect="anthropic", profile="", status="400") == 1
    assert at(samples, "attempts_total", provider="a", outcome="failed") == 1
    assert at(samples, "attempts_total", provider="a", outcome="ok") == 1
    assert at(samples, "attempts_total", provider="b", outcome="ok") == 1
    assert at(samples, "attempt_failures_total", provider="a", reason="http_503") == 1
    assert at(samples, "tokens_total", provider="b", kind="output") == 7
    assert at(samples, "tokens_total", provider="a", kind="output") == 3
    assert at(samples, "tokens_total", provider="a", kind="input") == 10
    # Each answer once in its provider's histograms; +Inf holds them all.
    assert at(samples, "time_to_first_byte_seconds_count", provider="b") == 1
    assert at(samples, "time_to_first_byte_seconds_bucket", provider="a", le="+Inf") == 1
    assert at(samples, "attempt_duration_seconds_sum", provider="a") > 0
    # Priced as the request log prices it: 10 input and 7 output tokens.
    assert at(samples, "cost_usd_total", provider="b") == pytest.approx((10 * 1 + 7 * 2) / 1e6)
    assert at(samples, "cache_outcomes_total", provider="b", outcome="none") == 1
    assert ("coderouterd_cost_usd_total", (("provider", "a"),)) not in samples  # no prices
    assert kinds["coderouterd_time_to_first_byte_seconds"] == "histogram"
    assert kinds["coderouterd_requests"] == "counter"
    # States, from what ctl status reads.
    assert at(samples, "provider_excluded", provider="a", reason="") == 0
    assert at(samples, "provider_drift", provider="a") == 0
    assert at(samples, "uptime_seconds") > 0
    assert at(samples, "in_flight_requests") == 0
    await d.state.writer.flush()
    _, samples, _ = await scrape(d.url)
    assert at(samples, "state_rows_written_total") >= 3
    assert at(samples, "state_rows_lost_total", why="queue_full") == 0


async def test_a_provider_excluded_as_unhealthy_stays_failing_while_its_probes_fail(
    start_daemon: StartDaemon,
) -> None:
    busy = anthropic_error(503, "overloaded_error", "busy")
    async with FakeUpstream(default=busy) as a:
        yaml = probed_every_tenth_of_a_second(a.url)
        d = await start_daemon(yaml)
        body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
        async with aiohttp.ClientSession() as http:
            for _ in range(4):
                async with http.post(f"{d.url}/v1/messages", json=body) as resp:
                    assert resp.status == 503
        book = d.daemon.healing.book
        assert book.excluded() == {"a"}
        await until(lambda: book.health("a").excluded.probes_failed >= 1, timeout=10)  # type: ignore[union-attr]
        _, samples, _ = await scrape(d.url)
    # An alert on it must not resolve when self-healing judges the backend broken.
    assert at(samples, "provider_excluded", provider="a", reason="unhealthy") == 1
    assert at(samples, "provider_failing", provider="a") == 1
