"""Run the real `coderouterd` command line in a subprocess, in a private temp directory.

`serve_process` starts `coderouterd serve` with `server.port: 0` and its
state directory and control socket under a short directory in /tmp (a unix
socket path must fit in about 107 bytes, which pytest's tmp_path can
exceed). A reader task collects stderr, parses each JSON log line, and wakes
whoever waits for an event; the fixture kills whatever is still running at
teardown.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

CLI = (sys.executable, "-m", "coderouterd.cli")
# Log lines can carry whole problem lists; asyncio's default 64 KiB would cut them.
_LINE_LIMIT = 1 << 20
# After the process exits, its pipes reach EOF at once; this only bounds a surprise.
_EOF_TIMEOUT_S = 5.0

LogLine = dict[str, Any]


def make_short_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="crd-", dir="/tmp"))


@pytest.fixture
def short_dir() -> Iterator[Path]:
    path = make_short_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


def child_env(root: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without our own variables, homed under `root`.

    NOTIFY_SOCKET goes too: a test run under systemd must not tell its
    service manager that a test daemon is ready.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CODEROUTERD_") and k != "NOTIFY_SOCKET"
    }
    for name, sub in (("XDG_STATE_HOME", "xdg-state"), ("XDG_CONFIG_HOME", "xdg-config")):
        (root / sub).mkdir(exist_ok=True)
        env[name] = str(root / sub)
    env.update(extra or {})
    return env


@dataclass(frozen=True)
class CliResult:
    returncode: int
    stdout: str
    stderr: str


async def run_cli(
    *args: str,
    env: Mapping[str, str],
    timeout: float = 10.0,  # noqa: ASYNC109
) -> CliResult:
    """Run `coderouterd ARGS` to completion; kill it if it outlives `timeout`."""
    proc = await asyncio.create_subprocess_exec(
        *CLI,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env),
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return CliResult(proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))


def _parse_log_line(text: str) -> LogLine | None:
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def render_config(server: Mapping[str, object], body_yaml: str) -> str:
    """A `server:` block with these settings, followed by the rest of the file."""
    # A JSON scalar is a YAML scalar with the same meaning.
    lines = "".join(f"  {key}: {json.dumps(value)}\n" for key, value in server.items())
    return f"server:\n{lines}{body_yaml}"


@dataclass
class ServeProcess:
    """One `coderouterd serve` child; built by the `serve_process` fixture."""

    proc: asyncio.subprocess.Process
    root: Path
    config_path: Path | None
    server_settings: dict[str, object]
    log_lines: list[LogLine] = field(default_factory=list)
    # Every stderr line as text, JSON or not (a `serve` that cannot start says why in plain text).
    stderr_lines: list[str] = field(default_factory=list)
    stdout_lines: list[str] = field(default_factory=list)
    listen: str = ""
    _changed: asyncio.Condition = field(init=False, default_factory=asyncio.Condition)
    _open_streams: int = field(init=False, default=2)
    _readers: list[asyncio.Task[None]] = field(init=False, default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://{self.listen}"

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])

    @property
    def socket_path(self) -> Path:
        return Path(str(self.server_settings["control_socket"]))

    @property
    def state_dir(self) -> Path:
        return Path(str(self.server_settings["state_dir"]))

    @property
    def stderr_text(self) -> str:
        return "\n".join(self.stderr_lines)

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def events(self, name: str) -> list[LogLine]:
        return [line for line in self.log_lines if line.get("event") == name]

    def mark(self) -> int:
        """The number of log lines so far; pass it as `since` to wait for a later event."""
        return len(self.log_lines)

    def write_config(self, body_yaml: str) -> bytes:
        """Write the server block this process runs with, then `body_yaml`; return the bytes."""
        assert self.config_path is not None, "running on the built-in default"
        data = render_config(self.server_settings, body_yaml).encode()
        self.config_path.write_bytes(data)
        return data

    def start_readers(self) -> None:
        assert self.proc.stderr is not None
        assert self.proc.stdout is not None
        self._readers = [
            asyncio.create_task(self._read(self.proc.stderr, self.stderr_lines), name="stderr"),
            asyncio.create_task(self._read(self.proc.stdout, self.stdout_lines), name="stdout"),
        ]

    async def _read(self, stream: asyncio.StreamReader, sink: list[str]) -> None:
        while line := await stream.readline():
            text = line.decode(errors="replace").rstrip("\n")
            async with self._changed:
                sink.append(text)
                if sink is self.stderr_lines and (parsed := _parse_log_line(text)) is not None:
                    self.log_lines.append(parsed)
                self._changed.notify_all()
        async with self._changed:
            self._open_streams -= 1
            self._changed.notify_all()

    async def wait_for_event(
        self,
        name: str,
        timeout: float = 5.0,  # noqa: ASYNC109
        *,
        since: int = 0,
        where: Callable[[LogLine], bool] = lambda _line: True,
    ) -> LogLine:
        """The first log line from index `since` on with event `name` that satisfies `where`."""

        def found() -> LogLine | None:
            return next(
                (
                    line
                    for line in self.log_lines[since:]
                    if line.get("event") == name and where(line)
                ),
                None,
            )

        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: found() is not None or self._open_streams == 0)
        except TimeoutError:
            raise AssertionError(
                f"no {name!r} log line within {timeout} s; stderr so far:\n{self.stderr_text}"
            ) from None
        line = found()
        if line is None:
            raise AssertionError(
                f"coderouterd exited ({self.proc.returncode}) without logging {name!r}:\n"
                f"{self.stderr_text}"
            )
        return line

    def send_signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    async def wait(self, timeout: float = 5.0) -> int:  # noqa: ASYNC109
        """Wait for the process to exit and its output to be read; return its exit status."""
        try:
            async with asyncio.timeout(timeout):
                code = await self.proc.wait()
        except TimeoutError:
            raise AssertionError(
                f"coderouterd still running after {timeout} s; stderr:\n{self.stderr_text}"
            ) from None
        async with asyncio.timeout(_EOF_TIMEOUT_S):
            await asyncio.gather(*self._readers)
        return code

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        for task in self._readers:
            task.cancel()
        for task in self._readers:
            with contextlib.suppress(asyncio.CancelledError):
                await task


StartServe = Callable[..., Awaitable[ServeProcess]]


async def start_serve(
    root: Path,
    config_yaml: str | None,
    *,
    env: Mapping[str, str] | None = None,
    server: Mapping[str, object] | None = None,
    args: Sequence[str] = (),
    timeout: float = 10.0,  # noqa: ASYNC109
) -> ServeProcess:
    """Start `coderouterd serve` on `config_yaml` (which must not have a `server:` block).

    `server` adds or overrides settings of the generated server block; `args`
    are extra command line arguments. With no config, the daemon runs on its
    built-in default (on port 0), its state under the child's XDG_STATE_HOME.
    Returns once `server.started` is logged.
    """
    config_path: Path | None = None
    if config_yaml is None:
        state = root / "xdg-state" / "coderouterd"
        settings: dict[str, object] = {
            "state_dir": str(state),
            "control_socket": str(state / "control.sock"),
        }
        config_args = ["--port", "0"]
    else:
        settings = {
            "port": 0,
            "state_dir": str(root / "state"),
            "control_socket": str(root / "ctl.sock"),
            **(server or {}),
        }
        config_path = root / "config.yaml"
        config_path.write_text(render_config(settings, config_yaml))
        config_args = ["--config", str(config_path)]
    proc = await asyncio.create_subprocess_exec(
        *CLI,
        "serve",
        *config_args,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=child_env(root, env),
        cwd=root,
        limit=_LINE_LIMIT,
    )
    handle = ServeProcess(proc, root, config_path, settings)
    handle.start_readers()
    try:
        started = await handle.wait_for_event("server.started", timeout)
    except BaseException:
        await handle.kill()
        raise
    handle.listen = started["listen"]
    return handle


@pytest_asyncio.fixture
async def serve_process() -> AsyncIterator[StartServe]:
    """Factory: `await serve_process(config_yaml, env=..., server=..., args=...)`.

    `state_root=` reuses an earlier process's directory (same state and
    socket), to restart a daemon on its own database.
    """
    roots: list[Path] = []
    handles: list[ServeProcess] = []

    async def start(
        config_yaml: str | None, *, state_root: Path | None = None, **kwargs: Any
    ) -> ServeProcess:
        root = state_root or make_short_dir()
        if state_root is None:
            roots.append(root)
        handle = await start_serve(root, config_yaml, **kwargs)
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        await handle.kill()
    for root in roots:
        shutil.rmtree(root, ignore_errors=True)
