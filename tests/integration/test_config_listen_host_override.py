"""The listen-host check of server.host (config/cross.py) and `serve --host`,
which overrides the file at start and at every reload."""

from __future__ import annotations

from pathlib import Path

import pytest

from coderouterd.app import build_daemon
from coderouterd.clock import SystemClock
from coderouterd.config import load_config
from coderouterd.errors import ConfigError
from tests.conftest import chain_yaml, provider_yaml
from tests.fakes.upstream import FakeUpstream
from tests.integration.process import child_env, render_config, run_cli

pytestmark = pytest.mark.timeout(30)


async def test_serve_host_with_brackets_is_a_config_problem(short_dir: Path) -> None:
    """`serve --host` is held to what server.host is: with brackets it is a
    usage error (exit 2) before anything starts, not a failed bind."""
    config = short_dir / "config.yaml"
    server = {
        "port": 0,
        "state_dir": str(short_dir / "state"),
        "control_socket": str(short_dir / "ctl.sock"),
    }
    config.write_text(render_config(server, chain_yaml(provider_yaml("a", "http://127.0.0.1:9"))))
    run = await run_cli(
        "serve", "--config", str(config), "--host", "[::1]", env=child_env(short_dir), timeout=15
    )
    assert run.returncode == 2, (run.returncode, run.stderr[-400:])
    assert "without port or brackets" in run.stderr


async def test_a_reload_is_not_refused_for_a_host_the_command_line_overrides(
    tmp_path: Path, fake_upstream: FakeUpstream
) -> None:
    """A daemon run with `--host` never uses the file's server.host, so a
    host it could not listen on there does not stop a reload."""
    good = chain_yaml(provider_yaml("a", fake_upstream.url))
    path = tmp_path / "config.yaml"
    path.write_text(good)
    daemon = build_daemon(
        load_config(path),
        clock=SystemClock(),
        env={},
        state=None,
        server_overrides={"host": "127.0.0.1", "port": None},
    )
    path.write_text(good + "server:\n  host: localhost:8088\n")
    reply = await daemon.reload()
    assert reply.ok, reply.problems


def test_a_host_the_command_line_overrides_is_not_the_files_problem(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        chain_yaml(provider_yaml("a", "http://127.0.0.1:9")) + "server:\n  host: '[::1]'\n"
    )
    loaded = load_config(path, server_overrides={"host": "::1", "port": None})
    assert loaded.config.server.host == "::1"
    with pytest.raises(ConfigError, match=r"server\.host"):
        load_config(path)
