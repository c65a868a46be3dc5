"""GET /metrics: `provider_failing` stays 1 for a provider whose last attempts
failed, whatever else takes it out of rotation meanwhile (README: "1 while
its last attempts fail"): an exclusion fixes nothing, and an alert on the
gauge must not resolve when one begins."""

from __future__ import annotations

import aiohttp
import anthropic
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import RunningDaemon, StartDaemon, provider_yaml
from tests.fakes.transcripts import anthropic_error, anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply

MESSAGES = [{"role": "user", "content": "hello"}]
OUT_OF_MEMORY = anthropic_error(
    500, "api_error", "model requires more system memory (5.2 GiB) than is available (3.1 GiB)"
)
BUSY = anthropic_error(503, "overloaded_error", "busy")


async def gauges(d: RunningDaemon, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples of one coderouterd gauge, by their labels."""
    async with aiohttp.ClientSession() as http, http.get(f"{d.url}/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == f"coderouterd_{name}"
    }


async def failing(d: RunningDaemon, provider: str) -> float:
    return (await gauges(d, "provider_failing"))[(("provider", provider),)]


async def fallback_reason(d: RunningDaemon) -> str:
    async with anthropic.AsyncAnthropic(
        base_url=d.url, api_key="k", max_retries=0, timeout=10
    ) as client:
        raw = await client.messages.with_raw_response.create(
            model="m", max_tokens=10, messages=MESSAGES
        )
    return raw.headers["x-coderouter-fallback-reason"]


def two_providers(a: FakeUpstream, b: FakeUpstream, profile_extra: str = "") -> str:
    return (
        f"providers:{provider_yaml('a', a.url)}{provider_yaml('b', b.url)}"
        f"profiles:\n  - {{name: default, providers: [a, b]{profile_extra}}}\n"
    )


async def test_a_backend_cooling_down_after_running_out_of_memory_still_reads_failing(
    start_daemon: StartDaemon,
) -> None:
    async with (
        FakeUpstream(default=OUT_OF_MEMORY) as a,
        FakeUpstream(default=Reply(json=anthropic_message("b"))) as b,
    ):
        d = await start_daemon(
            two_providers(a, b, ", memory_pressure_action: skip, memory_pressure_cooldown_s: 300")
        )
        assert await fallback_reason(d) == "a=memory_pressure"
        assert d.daemon.healing.book.cooling() == {"a"}
        assert d.daemon.status().providers[0].state == "excluded (memory_pressure)"
        assert await failing(d, "a") == 1
        assert await failing(d, "b") == 0
        excluded = await gauges(d, "provider_excluded")
        assert excluded[(("provider", "a"), ("reason", "memory_pressure"))] == 1


async def test_a_failing_backend_excluded_by_hand_still_reads_failing(
    start_daemon: StartDaemon,
) -> None:
    async with (
        FakeUpstream(default=BUSY) as a,
        FakeUpstream(default=Reply(json=anthropic_message("b"))) as b,
    ):
        d = await start_daemon(two_providers(a, b))
        assert await fallback_reason(d) == "a=http_503"
        assert await failing(d, "a") == 1
        await d.daemon.provider_action("exclude", "a", 1000)
        assert d.daemon.status().providers[0].state == "excluded (manual)"
        assert await failing(d, "a") == 1
        excluded = await gauges(d, "provider_excluded")
        assert excluded[(("provider", "a"), ("reason", "manual"))] == 1
