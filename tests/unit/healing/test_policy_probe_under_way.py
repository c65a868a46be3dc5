"""An exclusion's next probe while its recovery probe is out (pure; time is
an argument): none until that probe is judged."""

from __future__ import annotations

from coderouterd.config.load import load_config_text
from coderouterd.healing.decisions import Probe
from coderouterd.healing.policy import HealingBook

_CONFIG = """
self_healing: {recovery_jitter: 0, recovery_initial_interval_s: 30}
providers:
  - {name: a, base_url: "http://127.0.0.1:1", model: m}
profiles:
  - {name: p, providers: [a], backend_health_action: exclude, backend_health_threshold: 2}
"""


def excluded_book() -> HealingBook:
    book = HealingBook.for_config(load_config_text(_CONFIG, file="probing.yaml"), now_mono=0.0)
    for i in range(4):
        book.observe("a", outcome="failed", reason="http_503", status=503, now_mono=i, now_wall=1e9)
    ex = book.health("a").excluded
    assert ex is not None and ex.next_probe == 33.0
    return book


def test_a_recovery_probe_out_leaves_no_next_probe_until_it_is_judged() -> None:
    book = excluded_book()
    assert book.due(33.0) == [Probe("a", 1)]
    ex = book.health("a").excluded
    assert ex is not None and ex.next_probe is None
    assert book.next_due() is None

    book.probe_finished("a", 1, ok=False, latency_ms=5.0, now_mono=40.0, now_wall=1e9, u=0.5)

    # The second delay of the back-off, from the failed probe's end.
    assert ex.next_probe == 100.0
    assert book.next_due() == 100.0
