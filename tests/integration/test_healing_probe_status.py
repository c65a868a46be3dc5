"""Probes count like attempts in what `ctl status` (and /metrics) show of a provider."""

from __future__ import annotations

import aiohttp
from structlog.testing import capture_logs

from tests.conftest import StartDaemon, provider_yaml, until
from tests.fakes.transcripts import anthropic_error, anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply

MESSAGES = [{"role": "user", "content": "hello"}]
BUSY = anthropic_error(503, "overloaded_error", "busy")


async def test_continuous_probe_failures_show_the_provider_failing(
    start_daemon: StartDaemon,
) -> None:
    """A backend that answered its last request, then fails every continuous
    probe: `ctl status` shows it failing, with the probes' failures, and
    `provider.failing` is logged once."""
    async with FakeUpstream(default=Reply(json=anthropic_message("fine"))) as a:
        yaml = (
            "self_healing: {continuous_probe_interval_s: 0.1, probe_timeout_s: 2}\n"
            f"providers:{provider_yaml('a', a.url)}"
            "profiles:\n  - {name: default, providers: [a]}\n"
        )
        with capture_logs() as logs:
            d = await start_daemon(yaml)
            async with (
                aiohttp.ClientSession() as http,
                http.post(
                    f"{d.url}/v1/messages",
                    json={"model": "m", "max_tokens": 5, "messages": MESSAGES},
                ) as resp,
            ):
                assert resp.status == 200
            # From now on the backend answers 503 to everything, probes too.
            a.default = BUSY
            book = d.daemon.healing.book
            await until(lambda: book.health("a").streak >= 3, timeout=10)
            [status_a] = d.daemon.status().providers
            streak = book.health("a").streak
            async with aiohttp.ClientSession() as http, http.get(f"{d.url}/metrics") as resp:
                metrics = await resp.text()

    assert status_a.state == "failing", status_a
    assert status_a.consecutive_failures == streak
    assert (status_a.last_outcome, status_a.last_status) == ("status_503", 503)
    failing = [e for e in logs if e["event"] == "provider.failing"]
    assert [(e["previous"], e["reason"], e["via"]) for e in failing] == [
        ("ok", "status_503", "probe")
    ]
    assert 'coderouterd_provider_failing{provider="a"} 1' in metrics.splitlines()


def probed_every_tenth_of_a_second(url: str) -> str:
    """`a` alone, excluded after 2 failures, then probed every 0.1 s."""
    return (
        "self_healing: {recovery_initial_interval_s: 0.1, recovery_max_interval_s: 0.1,"
        " recovery_jitter: 0, probe_timeout_s: 2}\n"
        f"providers:{provider_yaml('a', url)}"
        "profiles:\n  - {name: default, providers: [a], backend_health_action: exclude,"
        " backend_health_threshold: 2}\n"
    )


async def test_recovery_probes_count_while_excluded_and_the_one_that_restores_shows_ok(
    start_daemon: StartDaemon,
) -> None:
    """Excluded after 4 failed attempts: each failed recovery probe adds to
    its consecutive failures, and once a probe restores it the provider is
    ok again (`provider.recovered`), not failing until a request comes."""
    async with FakeUpstream(default=Reply(json=anthropic_message("pong"))) as a:
        a.script(*[BUSY] * 6)
        yaml = probed_every_tenth_of_a_second(a.url)
        with capture_logs() as logs:
            d = await start_daemon(yaml)
            async with aiohttp.ClientSession() as http:
                for _ in range(4):
                    async with http.post(
                        f"{d.url}/v1/messages",
                        json={"model": "m", "max_tokens": 5, "messages": MESSAGES},
                    ) as resp:
                        assert resp.status == 503
            book = d.daemon.healing.book
            assert book.excluded() == {"a"}

            def probes_failed() -> int:
                ex = book.health("a").excluded
                return 0 if ex is None else ex.probes_failed

            await until(lambda: probes_failed() >= 1)
            failed = probes_failed()
            [excluded] = d.daemon.status().providers
            await until(lambda: not book.excluded())
            [restored] = d.daemon.status().providers

    assert excluded.state == "excluded (unhealthy)"
    assert excluded.consecutive_failures == 4 + failed
    assert excluded.last_outcome == "status_503"
    assert (restored.state, restored.consecutive_failures) == ("ok", 0)
    recovered = [e for e in logs if e["event"] == "provider.recovered"]
    assert [(e["previous"], e["via"]) for e in recovered] == [("failing", "probe")]
