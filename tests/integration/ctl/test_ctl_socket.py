from __future__ import annotations

import os
import shutil
import socket
import stat
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from coderouterd.ctl.client import CtlUnavailableError, fetch_status, request_reload
from coderouterd.ctl.model import InFlight, ProviderStatus, ReloadReply, StatusReply
from coderouterd.ctl.server import (
    CtlSocketError,
    build_ctl_app,
    start_ctl_site,
    stop_ctl_site,
)

STATUS = StatusReply(
    version="0.1.0",
    pid=4242,
    uptime_s=12.5,
    listen="127.0.0.1:8088",
    config_path="/etc/coderouterd.yaml",
    config_digest="sha256:abc",
    default_profile="coding",
    providers=(
        ProviderStatus(
            name="local",
            kind="openai_compat",
            model="qwen",
            base_url="http://127.0.0.1:11434/v1",
            paid=False,
            state="failing",
            last_outcome="connect_error",
            last_status=None,
            last_change_wall=1_700_000_000.5,
            consecutive_failures=3,
        ),
    ),
    in_flight=(
        InFlight(
            request_id="req_1",
            dialect="anthropic",
            profile="coding",
            provider=None,
            stream=True,
            age_s=0.25,
        ),
    ),
)
RELOADED = ReloadReply(ok=True, config_digest="sha256:new", restart_required=("server.port",))
REJECTED = ReloadReply(
    ok=False, config_digest="sha256:abc", problems=("config.yaml:3: providers: required",)
)


@dataclass
class FakeDaemon:
    """Answers the control app's callbacks and records the audited actions."""

    reload_reply: ReloadReply = RELOADED
    actions: list[tuple[str, int | None]] = field(default_factory=list)

    def status(self) -> StatusReply:
        return STATUS

    async def reload(self) -> ReloadReply:
        return self.reload_reply

    def on_action(self, action: str, uid: int | None) -> None:
        self.actions.append((action, uid))

    def app(self) -> web.Application:
        return build_ctl_app(status=self.status, reload=self.reload, on_action=self.on_action)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # pytest's tmp_path can exceed the ~107-byte limit of a unix socket path.
    path = Path(tempfile.mkdtemp(prefix="crd-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def sock_path(short_dir: Path) -> Path:
    # The parent is left missing on purpose: start_ctl_site creates it.
    return short_dir / "run" / "ctl.sock"


@pytest.fixture
def daemon() -> FakeDaemon:
    return FakeDaemon()


@pytest.fixture
async def runner(daemon: FakeDaemon) -> AsyncIterator[web.AppRunner]:
    app_runner = web.AppRunner(daemon.app())
    await app_runner.setup()
    yield app_runner
    await app_runner.cleanup()


@pytest.fixture
async def served(runner: web.AppRunner, sock_path: Path) -> Path:
    await start_ctl_site(runner, sock_path)
    return sock_path


# Filesystem checks live in plain functions: they are instant on a local
# socket file, and async tests should not touch pathlib directly.
def _is_socket(path: Path) -> bool:
    return path.exists() and stat.S_ISSOCK(path.lstat().st_mode)


def _permissions(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _put_file(path: Path, text: str) -> None:
    path.parent.mkdir(mode=0o700)
    path.write_text(text)


def _read(path: Path) -> str:
    return path.read_text()


def _leave_stale_socket(path: Path) -> None:
    """A socket file nobody listens on, as a crashed daemon leaves behind."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(path))


async def test_socket_file_is_readable_and_writable_by_owner_only(served: Path) -> None:
    assert _is_socket(served)
    assert _permissions(served) == 0o600


async def test_missing_parent_directory_is_created_private(served: Path) -> None:
    assert _permissions(served.parent) == 0o700


async def test_binding_leaves_the_process_umask_as_it_was(
    runner: web.AppRunner, sock_path: Path
) -> None:
    before = os.umask(0o022)
    try:
        await start_ctl_site(runner, sock_path)
        assert os.umask(0o022) == 0o022
    finally:
        os.umask(before)


async def test_status_round_trips_unchanged(served: Path) -> None:
    assert await fetch_status(served) == STATUS


async def test_successful_reload_round_trips(served: Path) -> None:
    assert await request_reload(served) == RELOADED


async def test_rejected_reload_answers_422_and_round_trips(
    served: Path, daemon: FakeDaemon
) -> None:
    daemon.reload_reply = REJECTED
    connector = aiohttp.UnixConnector(path=str(served))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.post("http://coderouterd/v1/reload") as response,
    ):
        assert response.status == 422
    assert await request_reload(served) == REJECTED


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_PEERCRED is Linux-only")
async def test_changes_are_reported_with_the_peer_uid_and_reads_are_not(
    served: Path, daemon: FakeDaemon
) -> None:
    await fetch_status(served)
    await request_reload(served)
    assert daemon.actions == [("reload", os.getuid())]


async def test_missing_socket_means_not_running(sock_path: Path) -> None:
    with pytest.raises(CtlUnavailableError) as caught:
        await fetch_status(sock_path)
    assert caught.value.reason == "missing"
    assert caught.value.path == sock_path
    assert str(caught.value) == f"coderouterd is not running (no control socket at {sock_path})"


async def test_stale_socket_means_not_running(sock_path: Path) -> None:
    _leave_stale_socket(sock_path)
    with pytest.raises(CtlUnavailableError) as caught:
        await request_reload(sock_path)
    assert caught.value.reason == "refused"


async def test_stale_socket_file_is_replaced(runner: web.AppRunner, sock_path: Path) -> None:
    _leave_stale_socket(sock_path)
    await start_ctl_site(runner, sock_path)
    assert _permissions(sock_path) == 0o600
    assert await fetch_status(sock_path) == STATUS


async def test_regular_file_in_the_way_is_refused_and_kept(
    runner: web.AppRunner, sock_path: Path
) -> None:
    _put_file(sock_path, "not a socket")
    with pytest.raises(CtlSocketError, match="not a socket"):
        await start_ctl_site(runner, sock_path)
    assert _read(sock_path) == "not a socket"


async def test_second_daemon_on_a_live_socket_is_refused(served: Path) -> None:
    other = web.AppRunner(FakeDaemon().app())
    await other.setup()
    try:
        with pytest.raises(CtlSocketError, match="another coderouterd is answering"):
            await start_ctl_site(other, served)
    finally:
        await other.cleanup()
    assert await fetch_status(served) == STATUS


async def test_stopping_removes_the_socket_file(runner: web.AppRunner, sock_path: Path) -> None:
    site = await start_ctl_site(runner, sock_path)
    await stop_ctl_site(site, sock_path)
    assert not _is_socket(sock_path)
    with pytest.raises(CtlUnavailableError) as caught:
        await fetch_status(sock_path)
    assert caught.value.reason == "missing"
