"""The STATE column of a provider excluded as unhealthy while its recovery
probe is out: probing, not a probe to come."""

from __future__ import annotations

from coderouterd.ctl.model import HealingStatus, ProviderStatus, StatusReply
from coderouterd.ctl.render import render_status


def _status(healing: HealingStatus, state: str) -> StatusReply:
    provider = ProviderStatus(
        name="local",
        kind="anthropic",
        model="m",
        base_url="http://x",
        paid=False,
        state=state,
        healing=healing,
    )
    return StatusReply(
        version="0",
        pid=1,
        uptime_s=1.0,
        listen="127.0.0.1:1",
        config_path="/c.yaml",
        config_digest="d",
        default_profile="p",
        providers=(provider,),
        in_flight=(),
    )


_NOT_PROBED_NOW = [
    (HealingStatus(excluded=True, reason="manual"), "excluded (manual)"),
    (
        HealingStatus(excluded=True, reason="memory_pressure", ends_in_s=30.0),
        "excluded (memory_pressure)",
    ),
    (
        HealingStatus(excluded=True, reason="unhealthy", restart_running=True),
        "excluded (unhealthy)",
    ),
    (HealingStatus(excluded=True, reason="unhealthy", next_probe_in_s=3.0), "excluded (unhealthy)"),
]


def test_an_exclusion_shows_probing_only_while_its_probe_is_out() -> None:
    healing = HealingStatus(excluded=True, reason="unhealthy", probes_failed=2)
    text = render_status(_status(healing, "excluded (unhealthy)"))
    assert "excluded (unhealthy), probing, 2 probe(s) failed" in text
    # Never probed (by hand, a cooldown), waiting for its restart, or for
    # its probe's time.
    for other, state in _NOT_PROBED_NOW:
        assert "probing" not in render_status(_status(other, state)), other
