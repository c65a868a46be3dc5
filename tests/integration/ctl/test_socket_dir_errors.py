"""A control socket whose directory cannot be made is refused in one line:
"cannot serve the control socket at PATH: why" (README, `serve`: exit 1)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from coderouterd.ctl.server import CtlSocketError, start_ctl_site
from tests.conftest import chain_yaml, provider_yaml
from tests.fakes.upstream import FakeUpstream
from tests.integration.ctl.test_ctl_socket import FakeDaemon
from tests.integration.process import child_env, render_config, run_cli

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def runner() -> AsyncIterator[web.AppRunner]:
    app_runner = web.AppRunner(FakeDaemon().app())
    await app_runner.setup()
    yield app_runner
    await app_runner.cleanup()


def _blocker(short_dir: Path) -> Path:
    blocker = short_dir / "a-file"
    blocker.write_text("")
    return blocker


@pytest.mark.parametrize(
    ("under", "why"),
    [(("run",), "Not a directory"), ((), "File exists")],
    ids=["a file on the way", "a file where the directory goes"],
)
async def test_a_file_in_the_way_of_the_socket_directory_is_named(
    runner: web.AppRunner, short_dir: Path, under: tuple[str, ...], why: str
) -> None:
    sock = _blocker(short_dir).joinpath(*under, "ctl.sock")
    with pytest.raises(CtlSocketError) as caught:
        await start_ctl_site(runner, sock)
    assert str(caught.value) == (
        f"cannot serve the control socket at {sock}: cannot create its directory "
        f"{sock.parent}: {why}"
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root creates directories anywhere")
async def test_a_socket_directory_under_a_read_only_one_is_named(
    runner: web.AppRunner, short_dir: Path
) -> None:
    """As under the systemd unit's ProtectSystem=strict."""
    locked = short_dir / "locked"
    locked.mkdir(mode=0o500)
    try:
        with pytest.raises(CtlSocketError, match=r"cannot create its directory .*: Permission"):
            await start_ctl_site(runner, locked / "run" / "ctl.sock")
    finally:
        locked.chmod(0o700)


async def test_serve_with_a_socket_directory_it_cannot_make_stops_in_one_line(
    short_dir: Path, fake_upstream: FakeUpstream
) -> None:
    sock = _blocker(short_dir) / "run" / "ctl.sock"
    server = {"port": 0, "state_dir": str(short_dir / "state"), "control_socket": str(sock)}
    config = short_dir / "config.yaml"
    config.write_text(render_config(server, chain_yaml(provider_yaml("a", fake_upstream.url))))

    run = await run_cli("serve", "--config", str(config), env=child_env(short_dir))

    assert run.returncode == 1
    assert "Traceback" not in run.stderr, run.stderr[-800:]
    assert f"coderouterd: cannot serve the control socket at {sock}: " in run.stderr
