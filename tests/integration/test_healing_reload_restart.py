"""A provider's restart_command across reloads that take it out and put it back."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import aiohttp
from structlog.testing import capture_logs

from coderouterd.state.audit import tail
from coderouterd.state.db import open_db
from tests.conftest import RunningDaemon, StartDaemon, provider_yaml, until
from tests.fakes.transcripts import anthropic_error, anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply

BUSY = anthropic_error(503, "overloaded_error", "busy")
# Writes "start <pid>" and, 1.5 s later, "end <pid>" to the marker file.
SLOW_RESTART = """
import os, sys, time
with open(sys.argv[1], "a") as f:
    f.write(f"start {os.getpid()}\\n")
time.sleep(1.5)
with open(sys.argv[1], "a") as f:
    f.write(f"end {os.getpid()}\\n")
"""


def config(a: str | None, b: str, restart: list[str]) -> str:
    extra = f"restart_command: {json.dumps(restart)}"
    providers = (provider_yaml("a", a, extra=extra) if a else "") + provider_yaml("b", b)
    chain = "[a, b]" if a else "[b]"
    return (
        "self_healing: {recovery_initial_interval_s: 30, recovery_jitter: 0}\n"
        f"providers:{providers}"
        "profiles:\n"
        f"  - {{name: default, providers: {chain}, backend_health_action: exclude, "
        "backend_health_threshold: 2}\n"
    )


async def fail_a(d: RunningDaemon) -> None:
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    async with aiohttp.ClientSession() as http:
        for _ in range(4):
            async with http.post(f"{d.url}/v1/messages", json=body) as resp:
                assert resp.status == 200


async def restarts_audited(d: RunningDaemon) -> list[dict]:
    await d.state.writer.flush()
    conn = await open_db(d.state.path, readonly=True)
    try:
        rows = await tail(conn, 500)
    finally:
        await conn.close()
    return [r.fields for r in rows if r.event == "provider.restart_command"]


async def test_a_provider_taken_out_and_put_back_by_reloads_is_not_restarted_again_at_once(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """`a`'s restart_command runs; a reload takes `a` out, another puts it
    back, and `a` fails again: its command is not run a second time beside
    the first, and the first one's end is what ends `restarting`."""
    script = tmp_path / "restart.py"
    script.write_text(SLOW_RESTART)
    marker = tmp_path / "ran"
    argv = [sys.executable, str(script), str(marker)]
    async with (
        FakeUpstream(default=BUSY) as a,
        FakeUpstream(default=Reply(json=anthropic_message("b"))) as b,
    ):
        d = await start_daemon(config(a.url, b.url, argv), env={"PATH": os.environ["PATH"]})
        await fail_a(d)
        book = d.daemon.healing.book
        assert book.health("a").restarting
        d.config_path.write_text(config(None, b.url, argv))
        assert (await d.daemon.reload()).ok
        d.config_path.write_text(config(a.url, b.url, argv))
        assert (await d.daemon.reload()).ok
        assert book.health("a").restarting
        with capture_logs() as logs:
            await fail_a(d)
        assert book.excluded() == {"a"}
        await until(lambda: not book.health("a").restarting, timeout=10)

    assert [line.split()[0] for line in marker.read_text().splitlines()] == ["start", "end"]
    skipped = [e for e in logs if e["event"] == "provider.restart_skipped"]
    assert [(e["why"], e["episode"]) for e in skipped] == [("running", 2)]
    assert [f["episode"] for f in await restarts_audited(d)] == [1]
    assert book.health("a").restarts == 1
