"""README, What is stored where: "state directory | `server.state_dir` (mode
0700)". The directory may exist before the daemon first runs (the install
steps' `mkdir -p`, under a 022 umask, make it 0755), and a database may be
copied in or restored from a backup with looser permissions: the daemon
makes them owner-only, and says so when it cannot."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from structlog.testing import capture_logs

from coderouterd.ctl.server import CtlSocketError, start_ctl_site, stop_ctl_site
from coderouterd.state.db import open_db
from tests.conftest import chain_yaml, provider_yaml
from tests.fakes.upstream import FakeUpstream
from tests.integration.ctl.test_ctl_socket import FakeDaemon
from tests.integration.process import StartServe

pytestmark = pytest.mark.timeout(30)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_a_state_dir_made_by_the_install_steps_is_made_owner_only(
    serve_process: StartServe, fake_upstream: FakeUpstream, short_dir: Path
) -> None:
    state = short_dir / "state"
    state.mkdir()
    state.chmod(0o755)
    await serve_process(
        chain_yaml(provider_yaml("a", fake_upstream.url)),
        state_root=short_dir,
        server={"state_dir": str(state), "control_socket": str(state / "control.sock")},
    )
    assert (state / "coderouterd.db").exists()
    assert mode_of(state) == 0o700


async def test_a_database_copied_in_world_readable_is_made_owner_only(short_dir: Path) -> None:
    db = short_dir / "coderouterd.db"
    conn = await open_db(db)
    await conn.close()
    wal = db.with_name(db.name + "-wal")
    wal.touch()
    for path in (db, wal):
        path.chmod(0o644)
    conn = await open_db(db)
    try:
        await conn.execute_fetchall("SELECT count(*) FROM sqlite_master")
        assert [mode_of(p) for p in (db, wal)] == [0o600, 0o600]
    finally:
        await conn.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory away takes root")
async def test_a_state_dir_of_another_user_is_left_alone_and_warned_of(
    serve_process: StartServe, fake_upstream: FakeUpstream, short_dir: Path
) -> None:
    state = short_dir / "state"
    state.mkdir()
    state.chmod(0o755)
    os.chown(state, 4242, -1)
    d = await serve_process(
        chain_yaml(provider_yaml("a", fake_upstream.url)),
        state_root=short_dir,
        server={"state_dir": str(state), "control_socket": str(state / "control.sock")},
    )
    warned = await d.wait_for_event("state.dir_not_private")
    assert warned["reason"] == "mode 0755, owned by uid 4242, not this user"
    assert mode_of(state) == 0o755


@pytest.fixture
def ctl_app() -> Iterator[web.Application]:
    yield FakeDaemon().app()


async def test_a_control_socket_dir_others_may_open_is_warned_of_and_not_changed(
    short_dir: Path, ctl_app: web.Application
) -> None:
    """The config may name any directory (/tmp, a home directory): not ours to chmod."""
    shared = short_dir / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    runner = web.AppRunner(ctl_app)
    await runner.setup()
    try:
        with capture_logs() as logs:
            site = await start_ctl_site(runner, shared / "ctl.sock")
        await stop_ctl_site(site, shared / "ctl.sock")
    finally:
        await runner.cleanup()
    [warned] = [e for e in logs if e["event"] == "ctl.socket_dir_not_private"]
    assert (warned["directory"], warned["reason"]) == (str(shared), "mode 0755")
    assert mode_of(shared) == 0o755


async def test_a_control_socket_path_that_cannot_be_looked_at_is_refused_clearly(
    short_dir: Path, ctl_app: web.Application
) -> None:
    runner = web.AppRunner(ctl_app)
    await runner.setup()
    try:
        with pytest.raises(CtlSocketError, match="too long"):
            await start_ctl_site(runner, short_dir / ("s" * 300))
    finally:
        await runner.cleanup()
