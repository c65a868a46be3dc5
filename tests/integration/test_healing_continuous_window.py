"""Continuous probes further apart than the failure window."""

from __future__ import annotations

import socket

from structlog.testing import capture_logs

from tests.conftest import StartDaemon, provider_yaml, until
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply


async def test_a_dead_backend_probed_less_often_than_the_failure_window_is_still_excluded(
    start_daemon: StartDaemon,
) -> None:
    """Probes every 15 minutes with failure_window_s at 600 s, scaled down:
    window 0.2 s, probes every 0.3 s, threshold 2. The 4th failed probe
    excludes the backend, each probe further from the last than the window."""
    async with FakeUpstream(default=Reply(json=anthropic_message("b"))) as b:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            dead = f"http://127.0.0.1:{s.getsockname()[1]}"
        yaml = (
            "self_healing: {continuous_probe_interval_s: 0.3, failure_window_s: 0.2,"
            " probe_timeout_s: 2}\n"
            f"providers:{provider_yaml('a', dead)}{provider_yaml('b', b.url)}"
            "profiles:\n  - {name: default, providers: [a, b], backend_health_action: exclude,"
            " backend_health_threshold: 2}\n"
        )
        with capture_logs() as logs:
            d = await start_daemon(yaml)
            book = d.daemon.healing.book
            await until(lambda: book.excluded() == {"a"}, timeout=5)
    probes = [e for e in logs if e["event"] == "provider.probe" and e["provider"] == "a"]
    assert [(e["ok"], e["episode"]) for e in probes[:4]] == [(False, 0)] * 4
    [excluded] = [e for e in logs if e["event"] == "provider.excluded"]
    assert (excluded["consecutive_failures"], excluded["last_reason"]) == (4, "connect_error")
