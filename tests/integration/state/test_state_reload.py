"""A reload applies retention and replay caps at once and names the writer settings
that wait for a restart."""

from __future__ import annotations

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.upstream import FakeUpstream


async def test_reload_reports_writer_settings_and_applies_the_rest(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    chain = chain_yaml(provider_yaml("a", fake_upstream.url))
    d = await start_daemon(chain)
    d.config_path.write_text(
        "state:\n  commit_batch: 16\n  synchronous: FULL\n  retention_days: 2\n"
        "  replay: {max_record_kb: 8}\n" + chain
    )
    reply = await d.daemon.reload()
    assert reply.ok
    assert set(reply.restart_required) == {"state.commit_batch", "state.synchronous"}
    assert d.state.replays.max_record_bytes == 8 * 1024
    # Back to the settings the writer runs with: nothing waits for a restart.
    d.config_path.write_text("state:\n  retention_days: 2\n" + chain)
    assert (await d.daemon.reload()).restart_required == ()
