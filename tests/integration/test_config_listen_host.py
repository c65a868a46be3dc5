"""A listen host written with its port, as in a URL, is refused by `check`
and by a reload, at its file:line, before `serve` fails to bind it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.upstream import FakeUpstream
from tests.integration.process import child_env, run_cli
from tests.unit.config.test_load import MINIMAL

pytestmark = pytest.mark.timeout(30)


async def test_check_refuses_a_host_with_its_port_at_its_line(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(MINIMAL + "server:\n  host: localhost:8088\n")
    run = await run_cli("check", "--config", str(config), env=child_env(tmp_path))
    assert run.returncode == 2, run.stdout
    assert f"{config}:9: server.host: must be an IP address or a host name" in run.stderr


async def test_a_reload_of_a_host_with_its_port_keeps_the_running_config(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """host is read only at start: a reload that took it would leave a daemon
    that cannot come back after its next restart."""
    good = chain_yaml(provider_yaml("a", fake_upstream.url))
    d = await start_daemon(good)
    running = d.daemon.holder.current.loaded.digest
    d.config_path.write_text(good + "server:\n  host: '[::1]'\n")
    reply = await d.daemon.reload()
    assert not reply.ok
    assert reply.config_digest == running
    [problem] = reply.problems
    line = len(good.splitlines()) + 2
    assert problem.startswith(f"{d.config_path}:{line}: server.host: "), problem
