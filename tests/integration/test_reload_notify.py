"""Reloads: a daemon on the built-in default reads the file written since, or
says there is none; systemd hears RELOADING=1 and READY=1 around each one."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from coderouterd.config import config_digest
from tests.conftest import chain_yaml, provider_yaml
from tests.fakes.upstream import FakeUpstream
from tests.integration.process import ServeProcess, StartServe, child_env, run_cli

pytestmark = pytest.mark.timeout(30)


def _user_config(d: ServeProcess) -> Path:
    """The file a daemon started with no --config reads: its XDG config path."""
    return d.root / "xdg-config" / "coderouterd" / "config.yaml"


async def _ctl(d: ServeProcess, *args: str) -> tuple[int, dict[str, object]]:
    run = await run_cli(*args, "--json", "--socket", str(d.socket_path), env=child_env(d.root))
    return run.returncode, msgspec.json.decode(run.stdout or "{}")


async def _providers(d: ServeProcess) -> list[object]:
    _code, status = await _ctl(d, "ctl", "status")
    providers = status["providers"]
    assert isinstance(providers, list)
    return [p["name"] for p in providers]


async def test_a_daemon_on_the_built_in_default_reloads_the_config_file_written_since(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    """README: `serve` reads the user config file "if it exists, else the
    built-in default"; a reload reads it once it is there, and from then on."""
    d = await serve_process(None)
    config = _user_config(d)
    config.parent.mkdir(parents=True, exist_ok=True)
    text = chain_yaml(provider_yaml("mine", fake_upstream.url)).encode()
    config.write_bytes(text)

    code, reply = await _ctl(d, "ctl", "reload")

    assert code == 0, reply
    assert reply["config_digest"] == config_digest(text)
    assert await _providers(d) == ["mine"]
    # The file is the daemon's from now on: the next reload reads it again.
    text = chain_yaml(provider_yaml("mine", fake_upstream.url), provider_yaml("two", "http://x"))
    config.write_text(text)
    code, reply = await _ctl(d, "ctl", "reload")
    assert code == 0, reply
    assert await _providers(d) == ["mine", "two"]


async def test_a_daemon_on_the_built_in_default_with_still_no_file_rejects_a_reload(
    serve_process: StartServe,
) -> None:
    """Nothing to re-read is no "reloaded": exit 1, naming the file it looked for."""
    d = await serve_process(None)
    before = await _providers(d)
    since = d.mark()

    run = await run_cli("ctl", "reload", "--socket", str(d.socket_path), env=child_env(d.root))

    assert run.returncode == 1, (run.stdout, run.stderr)
    assert "reload rejected" in run.stdout
    assert f"{_user_config(d)}: no such file" in run.stdout
    assert "built-in default" in run.stdout
    await d.wait_for_event("config.reload_rejected", since=since, timeout=2)
    assert await _providers(d) == before


@pytest.fixture
def notify_socket(short_dir: Path) -> Iterator[tuple[Path, socket.socket]]:
    path = short_dir / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(path))
        listener.setblocking(False)
        yield path, listener


def _drain(sock: socket.socket) -> list[str]:
    out = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return out


async def test_each_reload_is_announced_to_systemd_with_reloading_then_ready(
    serve_process: StartServe,
    fake_upstream: FakeUpstream,
    notify_socket: tuple[Path, socket.socket],
) -> None:
    """systemd/coderouterd.service (Type=notify): RELOADING=1 with the
    CLOCK_MONOTONIC time, then READY=1, for a reload that applies (SIGHUP)
    and for one that is rejected (`ctl reload`) alike."""
    path, listener = notify_socket
    body = chain_yaml(provider_yaml("a", fake_upstream.url))
    d = await serve_process(body, env={"NOTIFY_SOCKET": str(path)})
    await asyncio.sleep(0.1)
    assert "READY=1" in _drain(listener)

    since = d.mark()
    before_us = time.monotonic_ns() // 1000
    d.send_signal(signal.SIGHUP)
    await d.wait_for_event("config.reloaded", since=since)
    await asyncio.sleep(0.1)
    applied = _drain(listener)

    d.write_config(body + "bogus_key: 1\n")
    code, _reply = await _ctl(d, "ctl", "reload")
    await asyncio.sleep(0.1)
    rejected = _drain(listener)

    assert code == 1
    for sent in (applied, rejected):
        assert len(sent) == 2 and sent[1] == "READY=1", sent
        reloading, stamp = sent[0].split("\n")
        assert reloading == "RELOADING=1"
        assert stamp.startswith("MONOTONIC_USEC=")
        usec = int(stamp.removeprefix("MONOTONIC_USEC="))
        assert before_us <= usec <= time.monotonic_ns() // 1000
