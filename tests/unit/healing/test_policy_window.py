"""The failure window of a provider probed while in service (pure; time is an argument)."""

from __future__ import annotations

from coderouterd.config.load import load_config_text
from coderouterd.config.model import Config
from coderouterd.healing.decisions import Exclude, Probe
from coderouterd.healing.policy import HealingBook


def watched(healing: str) -> Config:
    return load_config_text(
        f"""
self_healing: {{recovery_jitter: 0, {healing}}}
providers:
  - {{name: a, base_url: "http://127.0.0.1:1", model: m}}
  - {{name: cloud, base_url: "http://127.0.0.1:2", model: m, paid: true}}
profiles:
  - {{name: p, providers: [a, cloud], backend_health_action: exclude, backend_health_threshold: 2, allow_paid: true}}
""",
        file="window.yaml",
    )


def probe_failing(book: HealingBook, *, took: float) -> tuple[float, list]:
    """Send the continuous probe of `a` when it is due; it fails after `took` s."""
    due = book.next_due()
    assert due is not None
    [probe] = book.due(due)
    assert probe == Probe("a", 0)
    now = due + took
    decisions = book.probe_finished(
        "a", 0, ok=False, latency_ms=None, now_mono=now, now_wall=1e9 + now, u=0.5, reason="timeout"
    )
    return now, decisions


def test_probes_further_apart_than_the_failure_window_still_make_a_streak() -> None:
    """Probed every 15 minutes (failure_window_s 600), each probe timing out
    after probe_timeout_s: the 4th failed probe excludes the backend."""
    book = HealingBook.for_config(
        watched("continuous_probe_interval_s: 900, failure_window_s: 600, probe_timeout_s: 10"),
        now_mono=0.0,
    )
    decisions: list = []
    for _ in range(4):
        now, out = probe_failing(book, took=10.0)
        decisions += out

    assert decisions == [Exclude("a", "unhealthy", 4, 2, "timeout", None, 1, 1e9 + now)]


def test_a_failed_attempt_just_before_a_probe_continues_the_probes_streak() -> None:
    book = HealingBook.for_config(
        watched("continuous_probe_interval_s: 900, failure_window_s: 600"), now_mono=0.0
    )
    now, _ = probe_failing(book, took=1.0)
    book.observe(
        "a", outcome="failed", reason="http_503", status=503, now_mono=now + 899, now_wall=1e9
    )

    assert book.health("a").streak == 2


def test_a_provider_not_probed_in_service_keeps_the_failure_window() -> None:
    """A paid provider is never probed while in service: two failures further
    apart than failure_window_s are two streaks of one."""
    book = HealingBook.for_config(
        watched("continuous_probe_interval_s: 900, failure_window_s: 600"), now_mono=0.0
    )
    for now in (0.0, 601.0):
        book.observe(
            "cloud", outcome="failed", reason="http_503", status=503, now_mono=now, now_wall=1e9
        )

    assert book.health("cloud").streak == 1


def test_the_failure_window_holds_between_probes_closer_than_it() -> None:
    """Probes every minute (window 600 s): a failure 11 minutes after the last
    one starts a new streak, as without probes."""
    book = HealingBook.for_config(
        watched("continuous_probe_interval_s: 60, failure_window_s: 600, probe_timeout_s: 10"),
        now_mono=0.0,
    )
    book.observe("a", outcome="failed", reason="http_503", status=503, now_mono=0.0, now_wall=1e9)
    book.observe("a", outcome="failed", reason="http_503", status=503, now_mono=660.0, now_wall=1e9)

    assert book.health("a").streak == 1
