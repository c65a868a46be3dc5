"""Exclusions across a restart of the daemon: their episodes, and their first probes."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from coderouterd.state.audit import tail
from coderouterd.state.db import open_db
from tests.conftest import RunningDaemon, StartDaemon, provider_yaml, until
from tests.fakes.transcripts import anthropic_error, anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply

BUSY = anthropic_error(503, "overloaded_error", "busy")
OK = Reply(json=anthropic_message("ok"))


def config(a: str | None, b: str, c: str, *, jitter: float = 0) -> str:
    """`default` tries a then c, `other` b then c; each of a and b is
    excluded after 4 failures, and probed a minute later (a few seconds
    after a restart of the daemon)."""
    a_block = provider_yaml("a", a) if a else ""
    return (
        "self_healing: {recovery_initial_interval_s: 60, probe_timeout_s: 2,"
        f" recovery_jitter: {jitter}}}\n"
        f"providers:{a_block}{provider_yaml('b', b)}{provider_yaml('c', c)}"
        "profiles:\n"
        f"  - {{name: default, providers: [{'a, ' if a else ''}c], "
        "backend_health_action: exclude, backend_health_threshold: 2}\n"
        "  - {name: other, providers: [b, c], backend_health_action: exclude, "
        "backend_health_threshold: 2}\n"
    )


async def fail(d: RunningDaemon, profile: str) -> None:
    body = {"model": profile, "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    async with aiohttp.ClientSession() as http:
        for _ in range(4):
            async with http.post(f"{d.url}/v1/messages", json=body) as resp:
                assert resp.status == 200


async def audited(d: RunningDaemon, event: str) -> list[dict]:
    await d.state.writer.flush()
    conn = await open_db(d.state.path, readonly=True)
    try:
        return [r.fields for r in await tail(conn, 500) if r.event == event]
    finally:
        await conn.close()


async def excluded_as_episode_3(start_daemon: StartDaemon, yaml: str, state_dir: Path) -> None:
    """A first daemon excludes `a` by hand twice (episodes 1 and 2), then as
    unhealthy (episode 3), and stops."""
    first = await start_daemon(yaml, state_dir=state_dir)
    for _ in range(2):
        await first.daemon.provider_action("exclude", "a", 1000)
        await first.daemon.provider_action("restore", "a", 1000)
    await fail(first, "default")
    assert first.daemon.healing.book.excluded() == {"a"}
    [unhealthy] = [
        f for f in await audited(first, "provider.excluded") if f["reason"] == "unhealthy"
    ]
    assert unhealthy["episode"] == 3
    await first.runner.cleanup()
    await first.state.close()


async def test_a_restored_exclusion_carries_the_episode_it_was_excluded_with_across_a_restart(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """`a`, excluded as episode 3 before a restart, is restored by a probe
    after it as episode 3; a new exclusion (of `b`) takes the next number,
    never one the audit log already holds."""
    state_dir = tmp_path / "state"
    async with (
        FakeUpstream(default=BUSY) as a,
        FakeUpstream(default=BUSY) as b,
        FakeUpstream(default=OK) as c,
    ):
        yaml = config(a.url, b.url, c.url)
        await excluded_as_episode_3(start_daemon, yaml, state_dir)
        second = await start_daemon(yaml, state_dir=state_dir)
        book = second.daemon.healing.book
        assert book.health("a").excluded.episode == 3  # type: ignore[union-attr]
        a.default = OK
        await until(lambda: not book.excluded(), timeout=15)
        await fail(second, "other")
        assert book.excluded() == {"b"}

    restored_a = [f for f in await audited(second, "provider.restored") if f["via"] == "probe"]
    excluded_b = [f for f in await audited(second, "provider.excluded") if f["provider"] == "b"]
    assert [(f["provider"], f["episode"]) for f in restored_a] == [("a", 3)]
    assert [f["episode"] for f in excluded_b] == [4]


async def test_an_exclusion_of_a_provider_no_longer_configured_is_restored_with_its_episode(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """A daemon restarted with a config without `a`, excluded as episode 3
    before: `a` is restored (`config_removed`) as episode 3."""
    state_dir = tmp_path / "state"
    async with (
        FakeUpstream(default=BUSY) as a,
        FakeUpstream(default=BUSY) as b,
        FakeUpstream(default=OK) as c,
    ):
        await excluded_as_episode_3(start_daemon, config(a.url, b.url, c.url), state_dir)
        second = await start_daemon(config(None, b.url, c.url), state_dir=state_dir)

    restored = await audited(second, "provider.restored")
    removed = [(f["provider"], f["episode"]) for f in restored if f["via"] == "config_removed"]
    assert removed == [("a", 3)]


async def test_exclusions_loaded_at_start_are_not_all_probed_in_the_same_instant(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """Two providers excluded together before a restart, with recovery_jitter
    0.5: each loaded exclusion's first probe has a time of its own."""
    state_dir = tmp_path / "state"
    async with (
        FakeUpstream(default=BUSY) as a,
        FakeUpstream(default=BUSY) as b,
        FakeUpstream(default=OK) as c,
    ):
        yaml = config(a.url, b.url, c.url, jitter=0.5)
        first = await start_daemon(yaml, state_dir=state_dir)
        await fail(first, "default")
        await fail(first, "other")
        assert first.daemon.healing.book.excluded() == {"a", "b"}
        await first.runner.cleanup()
        await first.state.close()

        second = await start_daemon(yaml, state_dir=state_dir)
        book = second.daemon.healing.book
        assert book.excluded() == {"a", "b"}
        due = set()
        for name in ("a", "b"):
            ex = book.health(name).excluded
            assert ex is not None and ex.next_probe is not None
            due.add(ex.next_probe)

    assert len(due) == 2
