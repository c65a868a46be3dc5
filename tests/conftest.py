"""Shared fixtures: a daemon running in-process on 127.0.0.1 against fake upstreams."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from hypothesis import settings

from coderouterd.app import build_daemon, start_http
from coderouterd.clock import Clock, SystemClock
from coderouterd.config import load_config
from coderouterd.daemon import Daemon
from coderouterd.state.db import open_db
from coderouterd.state.replay import request_body
from coderouterd.state.service import StateService
from coderouterd.telemetry.logging import configure, get_logger
from tests.fakes.upstream import FakeUpstream, fake_upstream  # noqa: F401 - fixture
from tests.integration.process import serve_process, short_dir  # noqa: F401 - fixtures

TEST_API_KEY = "sk-test-coderouterd-0123456789abcdef"

# No time limit per example: a test asserts what the code does, never how
# fast a loaded machine runs it (bench/ measures speed).
settings.register_profile("coderouterd", deadline=None)
settings.load_profile("coderouterd")


@pytest.fixture(autouse=True, scope="session")
def _logging() -> None:
    # Uncached loggers, so structlog.testing.capture_logs sees every line.
    configure("debug", cache=False)


@dataclass
class RunningDaemon:
    daemon: Daemon
    runner: web.AppRunner
    config_path: Path
    state: StateService

    @property
    def url(self) -> str:
        return f"http://{self.daemon.listen}"


StartDaemon = Callable[..., Awaitable[RunningDaemon]]


async def recorded_bodies(d: RunningDaemon) -> list[Any]:
    """The request bodies of the daemon's replay records, decoded, once all are stored."""
    await d.state.replays.drain()
    await d.state.writer.flush()
    conn = await open_db(d.state.path, readonly=True)
    try:
        rows = await conn.execute_fetchall("SELECT request_id FROM replays ORDER BY ts")
        return [json.loads(await request_body(conn, rid)) for (rid,) in rows]
    finally:
        await conn.close()


@pytest_asyncio.fixture
async def start_daemon(tmp_path: Path) -> AsyncIterator[StartDaemon]:
    running: list[RunningDaemon] = []

    async def start(
        config_yaml: str,
        *,
        env: dict[str, str] | None = None,
        clock: Clock | None = None,
        state_dir: Path | None = None,
    ) -> RunningDaemon:
        n = len(running)
        path = tmp_path / f"config-{n}.yaml"
        path.write_text(config_yaml)
        loaded = load_config(path)
        clock = clock or SystemClock()
        state = await StateService.open(
            state_dir or tmp_path / f"state-{n}", loaded.config.state, clock=clock, log=get_logger()
        )
        try:
            daemon = build_daemon(loaded, clock=clock, env=env or {}, state=state)
            runner, _site = await start_http(daemon, "127.0.0.1", 0)
            daemon.audit_start()  # as `serve` does once it listens
        except BaseException:
            await state.close()
            raise
        handle = RunningDaemon(daemon, runner, path, state)
        running.append(handle)
        return handle

    yield start
    for handle in running:
        await handle.runner.cleanup()
        await handle.state.close()


def provider_yaml(name: str, url: str, *, kind: str = "anthropic", extra: str = "") -> str:
    block = f"""
  - name: {name}
    kind: {kind}
    base_url: {url}
    model: {name}-model
"""
    return block + "".join(f"    {line}\n" for line in extra.strip().splitlines() if line)


def chain_yaml(*providers: str, profiles: str | None = None, top: str = "") -> str:
    """A config whose `default` profile chains the given provider blocks in order."""
    names = [p.split("name: ")[1].split()[0] for p in providers]
    profile_block = profiles or f"  - name: default\n    providers: [{', '.join(names)}]\n"
    return f"{top}providers:{''.join(providers)}profiles:\n{profile_block}"


@pytest.fixture
def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CODEROUTERD")}


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:  # noqa: ASYNC109
    """Wait until `condition()` holds: for plain state that no event announces."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - nothing to wait on but the state
            await asyncio.sleep(0.02)
