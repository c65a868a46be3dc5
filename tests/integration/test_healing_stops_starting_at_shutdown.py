"""Self-healing once the daemon's shutdown has begun: requests still in
flight may fail and exclude their provider during the grace period, but no
restart_command or probe starts any more."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from coderouterd.state.audit import tail
from coderouterd.state.db import DB_FILENAME, open_db
from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_error, anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.process import StartServe

pytestmark = pytest.mark.timeout(60)

BODY = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
# Failing only after SIGTERM has come: the requests are in flight by then.
SLOW_BUSY = Reply(
    status=503,
    json=anthropic_error(503, "overloaded_error", "busy").json,
    delay_before_headers=1.0,
)
# Keeps the daemon in its grace period for a second after the failures,
# time enough for a restart_command to run and a probe to go out.
SLOWER_OK = Reply(json=anthropic_message("ok"), delay_before_headers=2.0)


async def test_no_restart_command_or_probe_starts_once_shutdown_has_begun(
    serve_process: StartServe, tmp_path: Path
) -> None:
    """`a` (with a restart_command) and `c` (without) are excluded by
    requests that fail after SIGTERM: a's command never runs, neither is
    probed, and no restart is audited, not even as stopped at shutdown."""
    marker = tmp_path / "restarted"
    script = tmp_path / "restart.py"
    script.write_text(f"open({str(marker)!r}, 'a').write('x')\n")
    async with (
        FakeUpstream(default=SLOW_BUSY) as a,
        FakeUpstream(default=SLOW_BUSY) as c,
        FakeUpstream(default=SLOWER_OK) as b,
    ):
        yaml = (
            "self_healing: {recovery_initial_interval_s: 0.1}\n"
            "providers:\n"
            f"  - {{name: a, kind: anthropic, base_url: {a.url}, model: m, "
            f"restart_command: [{sys.executable}, {script}]}}\n"
            f"  - {{name: c, kind: anthropic, base_url: {c.url}, model: m}}\n"
            f"  - {{name: b, kind: anthropic, base_url: {b.url}, model: m}}\n"
            "profiles:\n"
            "  - {name: pa, providers: [a], backend_health_action: exclude, "
            "backend_health_threshold: 2}\n"
            "  - {name: pc, providers: [c], backend_health_action: exclude, "
            "backend_health_threshold: 2}\n"
            "  - {name: pb, providers: [b]}\n"
        )
        d = await serve_process(yaml)
        async with aiohttp.ClientSession() as http:

            async def ask(profile: str) -> int:
                async with http.post(
                    f"{d.url}/v1/messages",
                    json=BODY,
                    headers={"x-coderouter-profile": profile},
                    timeout=aiohttp.ClientTimeout(total=20),
                ) as resp:
                    await resp.read()
                    return resp.status

            profiles = ["pa"] * 4 + ["pc"] * 4 + ["pb"]
            tasks = [asyncio.create_task(ask(p)) for p in profiles]
            for fake, count in ((a, 4), (c, 4), (b, 1)):
                await fake.wait_for_requests(count, timeout=10)
            d.send_signal(signal.SIGTERM)
            statuses = await asyncio.gather(*tasks)
        assert await d.wait(20) == 0
        probes = {"a": len(a.requests) - 4, "c": len(c.requests) - 4}
    assert statuses == [503] * 8 + [200]
    stopping = d.events("server.stopping")[0]["timestamp"]
    excluded = d.events("provider.excluded")
    assert sorted(e["provider"] for e in excluded) == ["a", "c"]
    assert all(e["timestamp"] > stopping for e in excluded)
    assert not marker.exists(), "a's restart_command ran during the shutdown"
    assert probes == {"a": 0, "c": 0}
    assert d.events("provider.restart_command") == []
    conn = await open_db(d.state_dir / DB_FILENAME, readonly=True)
    try:
        rows = [r.event for r in await tail(conn, 200)]
    finally:
        await conn.close()
    assert "provider.excluded" in rows
    assert "provider.restart_command" not in rows


async def test_ctl_probe_once_shutdown_has_begun_sends_nothing(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    d = await start_daemon(chain_yaml(provider_yaml("a", fake_upstream.url)))
    d.daemon.healing.stop_starting()  # as the shutdown does (app.py)
    reply = await d.daemon.provider_action("probe", "a", None)
    assert reply.ok and not reply.changed
    assert reply.message == "failed after 0 ms: shutting_down"
    assert fake_upstream.requests == []
