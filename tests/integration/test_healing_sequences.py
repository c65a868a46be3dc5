"""Self-healing over time, with real restart commands, probes and clocks:
commands that fail or hang, exclusions by hand during a restart or a
cooldown, budgets spent mid-session."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from structlog.testing import capture_logs

from coderouterd.state.audit import tail
from coderouterd.state.db import open_db
from tests.conftest import RunningDaemon, StartDaemon, chain_yaml, provider_yaml, until
from tests.fakes.transcripts import anthropic_error, anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply

MESSAGES = [{"role": "user", "content": "hello"}]
BODY = {"model": "m", "max_tokens": 10, "messages": MESSAGES}
BUSY = anthropic_error(503, "overloaded_error", "busy")
OOM = anthropic_error(
    500, "api_error", "model requires more system memory (5.2 GiB) than is available (3.1 GiB)"
)


def config(a: str, b: str, *, a_extra: str = "", healing: str = "") -> str:
    return (
        "self_healing: {recovery_initial_interval_s: 0.2, recovery_max_interval_s: 0.4, "
        f"recovery_jitter: 0, probe_timeout_s: 2{healing}}}\n"
        f"providers:{provider_yaml('a', a, extra=a_extra)}{provider_yaml('b', b)}"
        "profiles:\n"
        "  - {name: default, providers: [a, b], backend_health_action: exclude, "
        "backend_health_threshold: 2}\n"
    )


async def ask(
    d: RunningDaemon, body: dict[str, Any] | None = None
) -> tuple[int, dict[str, str], Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{d.url}/v1/messages", json=body or BODY, timeout=aiohttp.ClientTimeout(total=15)
        ) as resp,
    ):
        raw = await resp.read()
        return resp.status, dict(resp.headers), raw


async def audit_events(d: RunningDaemon, prefix: str = "provider.") -> list[tuple[str, dict]]:
    await d.state.writer.flush()
    conn = await open_db(d.state.path, readonly=True)
    try:
        return [(r.event, r.fields) for r in await tail(conn, 500) if r.event.startswith(prefix)]
    finally:
        await conn.close()


def probes(fake: FakeUpstream, since: int = 0) -> int:
    return sum(1 for r in fake.requests[since:] if (r.json or {}).get("max_tokens") == 1)


async def test_a_restart_command_that_does_not_exist_is_audited_and_probes_go_on(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    async with (
        FakeUpstream(default=BUSY) as a,
        FakeUpstream(default=Reply(json=anthropic_message("b"))) as b,
    ):
        d = await start_daemon(
            config(a.url, b.url, a_extra=f"restart_command: [{tmp_path / 'no-such-command'}, x]"),
            env={"PATH": os.environ["PATH"]},
        )
        for _ in range(4):
            await ask(d)
        assert d.daemon.healing.book.excluded() == {"a"}
        await until(lambda: d.daemon.healing.book.health("a").restarts == 1)
        # Probes keep coming, spaced by the back-off (0.2, 0.4, 0.4 ...).
        await until(lambda: probes(a) >= 3, timeout=5)
        assert d.daemon.healing.book.excluded() == {"a"}
        a.default = Reply(json=anthropic_message("pong"))
        await until(lambda: not d.daemon.healing.book.excluded(), timeout=5)
        _, headers, _ = await ask(d)
        assert headers["x-coderouter-provider"] == "a"
    events = await audit_events(d)
    [ran] = [f for e, f in events if e == "provider.restart_command"]
    assert ran["exit_status"] is None and ran["error"]
    assert "No such file" in ran["error"]
    assert [f["via"] for e, f in events if e == "provider.restored"] == ["probe"]


async def test_a_restart_command_that_times_out_is_killed_and_probes_follow(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    script = tmp_path / "slow.py"
    script.write_text("import time, sys\nprint('starting', flush=True)\ntime.sleep(30)\n")
    async with (
        FakeUpstream(default=BUSY) as a,
        FakeUpstream(default=Reply(json=anthropic_message("b"))) as b,
    ):
        d = await start_daemon(
            config(
                a.url,
                b.url,
                a_extra=f"restart_command: [{sys.executable}, {script}]\nrestart_timeout_s: 0.5",
            ),
            env={"PATH": os.environ["PATH"]},
        )
        for _ in range(4):
            await ask(d)
        started = time.monotonic()
        await until(lambda: d.daemon.healing.book.health("a").restarts == 1, timeout=10)
        assert time.monotonic() - started < 8
        await until(lambda: probes(a) >= 2, timeout=5)
    events = await audit_events(d)
    [ran] = [f for e, f in events if e == "provider.restart_command"]
    assert ran["timed_out"] is True
    assert ran["output_tail"].startswith("starting")
    assert (d.state.path.parent / "restart" / "a.log").read_text().startswith("starting")


async def test_excluded_by_hand_while_its_restart_runs_is_never_probed_then_restored(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    script = tmp_path / "slow.py"
    script.write_text("import time\ntime.sleep(0.6)\n")
    async with (
        FakeUpstream(default=BUSY) as a,
        FakeUpstream(default=Reply(json=anthropic_message("b"))) as b,
    ):
        d = await start_daemon(
            config(a.url, b.url, a_extra=f"restart_command: [{sys.executable}, {script}]"),
            env={"PATH": os.environ["PATH"]},
        )
        for _ in range(4):
            await ask(d)
        assert d.daemon.healing.book.health("a").restarting
        reply = await d.daemon.provider_action("exclude", "a", 1000)
        assert reply.ok and reply.changed
        await until(lambda: d.daemon.healing.book.health("a").restarts == 1, timeout=5)
        before = len(a.requests)
        await asyncio.sleep(1.0)
        assert len(a.requests) == before  # never probed
        _, headers, _ = await ask(d)
        assert headers["x-coderouter-fallback-reason"] == "a=excluded_manual"
        a.default = Reply(json=anthropic_message("a"))
        await d.daemon.provider_action("restore", "a", 1000)
        _, headers, _ = await ask(d)
        assert headers["x-coderouter-provider"] == "a"
        assert d.daemon.healing.book.health("a").excluded is None


async def test_excluded_again_soon_after_a_restore_is_not_restarted_but_still_probed(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    script = tmp_path / "r.py"
    script.write_text(f"open({str(marker)!r}, 'a').write('x')\n")
    async with (
        FakeUpstream(default=BUSY) as a,
        FakeUpstream(default=Reply(json=anthropic_message("b"))) as b,
    ):
        d = await start_daemon(
            config(a.url, b.url, a_extra=f"restart_command: [{sys.executable}, {script}]").replace(
                "recovery_initial_interval_s: 0.2, recovery_max_interval_s: 0.4",
                "recovery_initial_interval_s: 30, recovery_max_interval_s: 30",
            ),
            env={"PATH": os.environ["PATH"]},
        )
        for _ in range(4):
            await ask(d)
        await until(lambda: d.daemon.healing.book.health("a").restarts == 1, timeout=5)
        await d.daemon.provider_action("restore", "a", 1000)
        with capture_logs() as logs:
            for _ in range(4):
                await ask(d)
        assert d.daemon.healing.book.excluded() == {"a"}
        assert [e["why"] for e in logs if e["event"] == "provider.restart_skipped"] == ["too_soon"]
        ex = d.daemon.healing.book.health("a").excluded
        assert ex is not None and ex.next_probe is not None
        assert marker.read_text() == "x"


async def test_budget_spent_mid_session_moves_requests_on_and_then_says_so(
    start_daemon: StartDaemon,
) -> None:
    async with (
        FakeUpstream(
            default=Reply(json=anthropic_message("a", input_tokens=10, output_tokens=0))
        ) as a,
        FakeUpstream(default=Reply(json=anthropic_message("b"))) as b,
    ):
        cloud = provider_yaml(
            "a",
            a.url,
            extra="paid: true\ncost: {input_tokens_per_million: 100000, monthly_budget_usd: 1.5}",
        )
        yaml = chain_yaml(
            cloud,
            provider_yaml("b", b.url),
            profiles="  - {name: default, providers: [a, b], allow_paid: true}\n"
            "  - {name: only, providers: [a], allow_paid: true}\n",
        )
        d = await start_daemon(yaml)
        seen = []
        for _ in range(3):
            _, headers, _ = await ask(d)
            seen.append(
                (headers["x-coderouter-provider"], headers.get("x-coderouter-fallback-reason"))
            )
        assert seen == [("a", None), ("a", None), ("b", "a=budget_exceeded")]
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{d.url}/v1/chat/completions",
                json={"model": "m", "messages": MESSAGES},
                headers={"x-coderouter-profile": "only"},
            ) as resp,
        ):
            body = await resp.json()
            assert resp.status == 503
        assert body["error"]["type"] == "server_error"
        assert body["error"]["attempts"] == [
            {"provider": "a", "reason": "budget_exceeded", "status": None}
        ]


async def test_a_stream_every_provider_rate_limits_is_a_429_before_any_ping(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(
        anthropic_error(
            429,
            "rate_limit_error",
            "slow",
        ),
        anthropic_error(429, "rate_limit_error", "slow"),
    )
    d = await start_daemon(
        chain_yaml(provider_yaml("a", fake_upstream.url), provider_yaml("b", fake_upstream.url))
    )
    status, _, raw = await ask(d, {**BODY, "stream": True})
    body = json.loads(raw)
    assert status == 429
    assert body["error"]["type"] == "rate_limit_error"


def stored(d: RunningDaemon) -> list[tuple[Any, ...]]:
    with sqlite3.connect(d.state.path) as db:
        return db.execute("SELECT provider, reason, until FROM exclusions").fetchall()


def out_of_memory_once(a: FakeUpstream, b: FakeUpstream) -> str:
    """`a` runs out of memory once, then answers; profiles skip it while it
    cools down (10 s, the shortest cooldown)."""
    a.script(OOM)
    a.default = Reply(json=anthropic_message("a"))
    return (
        f"providers:{provider_yaml('a', a.url)}{provider_yaml('b', b.url)}"
        "profiles:\n"
        "  - {name: default, providers: [a, b], memory_pressure_action: skip, "
        "memory_pressure_cooldown_s: 10}\n"
    )


async def test_a_cooldown_ends_by_itself_and_the_provider_answers_again(
    start_daemon: StartDaemon,
) -> None:
    async with FakeUpstream() as a, FakeUpstream(default=Reply(json=anthropic_message("b"))) as b:
        d = await start_daemon(out_of_memory_once(a, b))
        _, h, _ = await ask(d)
        assert h["x-coderouter-fallback-reason"] == "a=memory_pressure"
        await until(lambda: not d.daemon.healing.book.cooling(), timeout=13)
        _, h, _ = await ask(d)
        assert h["x-coderouter-provider"] == "a"
        await d.state.writer.flush()
        assert stored(d) == []
    vias = [f["via"] for e, f in await audit_events(d) if e == "provider.restored"]
    assert vias == ["expired"]


async def test_restored_by_hand_a_provider_needs_a_whole_new_streak_to_be_excluded_again(
    start_daemon: StartDaemon,
) -> None:
    async with (
        FakeUpstream(default=BUSY) as a,
        FakeUpstream(default=Reply(json=anthropic_message("b"))) as b,
    ):
        yaml = (
            "self_healing: {recovery_initial_interval_s: 60, recovery_jitter: 0}\n"
            f"providers:{provider_yaml('a', a.url)}{provider_yaml('b', b.url)}"
            "profiles:\n"
            "  - {name: default, providers: [a, b], backend_health_action: exclude, "
            "backend_health_threshold: 2}\n"
        )
        d = await start_daemon(yaml)
        for _ in range(4):
            await ask(d)
        assert d.daemon.healing.book.excluded() == {"a"}
        await d.daemon.provider_action("exclude", "a", 1000)
        assert d.daemon.healing.book.manual() == {"a"}
        await d.daemon.provider_action("restore", "a", 1000)
        assert d.daemon.healing.book.excluded() == frozenset()
        assert d.daemon.healing.book.manual() == frozenset()
        for _ in range(3):
            _, h, _ = await ask(d)
            assert h["x-coderouter-fallback-reason"] == "a=http_503"
        assert d.daemon.healing.book.excluded() == frozenset()
        await ask(d)
        assert d.daemon.healing.book.excluded() == {"a"}
        await d.state.writer.flush()
        assert [r[:2] for r in stored(d)] == [("a", "unhealthy")]


async def test_excluding_by_hand_a_cooling_provider_keeps_it_out_past_the_cooldown(
    start_daemon: StartDaemon,
) -> None:
    async with FakeUpstream() as a, FakeUpstream(default=Reply(json=anthropic_message("b"))) as b:
        d = await start_daemon(out_of_memory_once(a, b))
        await ask(d)
        assert d.daemon.healing.book.cooling() == {"a"}
        await d.daemon.provider_action("exclude", "a", 1000)
        await d.state.writer.flush()
        assert stored(d) == [("a", "manual", None)]
        _, h, _ = await ask(d)
        assert h["x-coderouter-fallback-reason"] == "a=excluded_manual"
