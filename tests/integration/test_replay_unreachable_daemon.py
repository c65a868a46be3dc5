"""`coderouterd replay ID` whose request to the daemon gets no answer (the
address its control socket names refuses it, or the connection drops)
fails in one line, exit 1, not with a traceback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import msgspec
import pytest
from aiohttp import web

from coderouterd.ctl.client import fetch_status
from coderouterd.ctl.model import ReloadReply
from coderouterd.ctl.server import build_ctl_app, start_ctl_site
from tests.conftest import chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.process import ServeProcess, StartServe, child_env, run_cli
from tests.integration.state.test_state_process import cli_args, post, wait_committed

MESSAGES = [{"role": "user", "content": "hi"}]


def _free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@asynccontextmanager
async def _dropping_server() -> AsyncIterator[int]:
    """A port whose server accepts each connection and resets it unanswered."""

    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        writer.transport.abort()

    server = await asyncio.start_server(drop, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


@asynccontextmanager
async def _control_socket(d: ServeProcess, path: Path, port: int) -> AsyncIterator[Path]:
    """A control socket answering as the daemon's does, but naming `port` as
    the address the daemon listens on."""
    status = msgspec.structs.replace(await fetch_status(d.socket_path), listen=f"127.0.0.1:{port}")

    async def reload() -> ReloadReply:
        raise AssertionError("a replay does not reload")

    runner = web.AppRunner(build_ctl_app(status=lambda: status, reload=reload))
    await runner.setup()
    try:
        await start_ctl_site(runner, path)
        yield path
    finally:
        await runner.cleanup()


async def _recorded(d: ServeProcess) -> str:
    status, _, rid = await post(d.url, {"model": "m", "max_tokens": 5, "messages": MESSAGES})
    assert status == 200
    await wait_committed(d, 2)
    return rid


@asynccontextmanager
async def _refusing() -> AsyncIterator[int]:
    yield _free_port()


@pytest.mark.parametrize(
    ("target", "says"),
    [
        (
            _refusing,
            "cannot connect to coderouterd at http://127.0.0.1:{port} to send the replay: Connection refused",
        ),
        (
            _dropping_server,
            "the connection to coderouterd at http://127.0.0.1:{port} was lost before the whole answer",
        ),
    ],
    ids=["refused", "dropped"],
)
async def test_a_replay_the_daemon_does_not_answer_fails_in_one_line(
    serve_process: StartServe,
    fake_upstream: FakeUpstream,
    short_dir: Path,
    target: Callable[[], AbstractAsyncContextManager[int]],
    says: str,
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    d = await serve_process(chain_yaml(provider_yaml("a", fake_upstream.url)))
    rid = await _recorded(d)
    async with target() as port, _control_socket(d, short_dir / "ctl.sock", port) as sock:
        run = await run_cli(
            "replay", rid, "--socket", str(sock), *cli_args(d), env=child_env(d.root)
        )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    [line] = run.stderr.splitlines()
    assert line.startswith("coderouterd: " + says.format(port=port)), line
    assert len(fake_upstream.requests) == 1  # only the recorded request reached a provider
