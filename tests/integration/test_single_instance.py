"""One daemon per state directory: a second `serve` on the same database is
refused before it opens it (coderouterd/instance_lock.py)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
from pathlib import Path

import msgspec
import pytest

from coderouterd.instance_lock import lock_path, single_instance
from coderouterd.state.db import StateError
from tests.conftest import chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.process import ServeProcess, StartServe, child_env, render_config, run_cli

pytestmark = pytest.mark.timeout(60)


def _exclusions(db: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [r[0] for r in conn.execute("SELECT provider FROM exclusions ORDER BY provider")]
    finally:
        conn.close()


async def _wait_exclusions(db: Path, expected: list[str], within_s: float = 5.0) -> list[str]:
    found = _exclusions(db)
    for _ in range(int(within_s / 0.05)):
        if found == expected:
            break
        await asyncio.sleep(0.05)
        found = _exclusions(db)
    return found


async def _audit(d: ServeProcess) -> list[tuple[str, str | None]]:
    assert d.config_path is not None
    args = ("--config", str(d.config_path))
    verify = await run_cli("audit", "verify", *args, env=child_env(d.root))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    tail = await run_cli("audit", "tail", "-n", "1000", "--json", *args, env=child_env(d.root))
    return [(r["event"], r["fields"].get("provider")) for r in msgspec.json.decode(tail.stdout)]


async def _second_serve(d: ServeProcess, name: str, server: dict[str, object]) -> str:
    """Run `serve` on another config over `d`'s state; return its stderr once it refused."""
    other = d.root / name
    body = chain_yaml(provider_yaml("b", "http://127.0.0.1:1"))
    other.write_text(render_config({**d.server_settings, **server}, body))
    run = await run_cli("serve", "--config", str(other), env=child_env(d.root), timeout=20)
    assert run.returncode == 1, run.stderr[-800:]
    assert "Traceback" not in run.stderr, run.stderr[-800:]
    return run.stderr


async def _exclude(d: ServeProcess, provider: str) -> None:
    run = await run_cli(
        "ctl", "exclude", provider, "--socket", str(d.socket_path), env=child_env(d.root)
    )
    assert run.returncode == 0, run.stderr


async def test_a_second_daemon_on_the_same_socket_leaves_the_first_ones_state_alone(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    """The second one's config lacks the provider the running daemon excluded
    by hand: had it loaded the exclusions, it would restore that one
    (`config_removed`) in the running daemon's database and audit log."""
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    d = await serve_process(
        chain_yaml(provider_yaml("a", fake_upstream.url), provider_yaml("b", fake_upstream.url))
    )
    db = d.state_dir / "coderouterd.db"
    await _exclude(d, "a")
    assert await _wait_exclusions(db, ["a"]) == ["a"]

    stderr = await _second_serve(d, "other.yaml", {})

    assert f"another coderouterd is answering on it (pid {d.pid}" in stderr, stderr
    assert _exclusions(db) == ["a"]
    # The running daemon goes on storing what it does, its audit chain intact.
    await _exclude(d, "b")
    assert await _wait_exclusions(db, ["a", "b"]) == ["a", "b"]
    events = await _audit(d)
    assert events[-1] == ("provider.excluded", "b")
    assert ("provider.restored", "a") not in events
    assert [e for e, _ in events].count("daemon.started") == 1


async def test_a_second_daemon_on_the_same_database_with_its_own_socket_and_port_is_refused(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    """Two configs name one `server.state_dir` and different control sockets
    (and ports): one database, one daemon."""
    d = await serve_process(chain_yaml(provider_yaml("a", fake_upstream.url)))

    stderr = await _second_serve(d, "other.yaml", {"control_socket": str(d.root / "other.sock")})

    assert f"cannot serve the state directory {d.state_dir}" in stderr, stderr
    assert f"pid {d.pid}" in stderr
    assert not (d.root / "other.sock").exists()
    await _exclude(d, "a")
    assert await _wait_exclusions(d.state_dir / "coderouterd.db", ["a"]) == ["a"]
    events = await _audit(d)
    assert events[-1] == ("provider.excluded", "a")
    assert [e for e, _ in events].count("daemon.started") == 1


async def test_the_state_directory_is_free_again_once_its_daemon_stopped(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    body = chain_yaml(provider_yaml("a", fake_upstream.url))
    d = await serve_process(body)
    lock = lock_path(d.state_dir)
    assert lock.read_text() == f"{d.pid}\n"
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600
    d.proc.kill()
    await d.wait()

    again = await serve_process(body, state_root=d.root)

    assert lock.read_text() == f"{again.pid}\n"


def test_the_lock_names_its_holder_and_is_released_on_exit(tmp_path: Path) -> None:
    refused = pytest.raises(StateError, match=rf"answering on it \(pid {os.getpid()},")
    with single_instance(tmp_path), refused, single_instance(tmp_path):
        pass
    with single_instance(tmp_path) as path:
        assert path == tmp_path / "coderouterd.db.lock"


def test_a_lock_file_without_a_pid_is_refused_all_the_same(tmp_path: Path) -> None:
    """Its holder took the lock and has not written its pid yet."""
    with single_instance(tmp_path) as path:
        path.write_text("")
        with pytest.raises(StateError, match=r"\(pid unknown,"), single_instance(tmp_path):
            pass
