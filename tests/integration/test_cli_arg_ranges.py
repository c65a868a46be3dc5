"""Numbers on the command line out of their range are usage errors (exit 2),
checked before anything is set up: never a traceback, never a false verdict."""

from __future__ import annotations

from pathlib import Path

import pytest

from coderouterd.app import build_daemon, start_http
from coderouterd.clock import SystemClock
from coderouterd.config import load_config
from coderouterd.errors import ListenError
from tests.conftest import chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.process import child_env, render_config, run_cli

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize("port", ["70000", "65536", "-1"])
async def test_serve_with_a_port_out_of_range_is_a_usage_error(
    short_dir: Path, fake_upstream: FakeUpstream, port: str
) -> None:
    """`serve --port` overrides `server.port`, which the file holds to 0-65535."""
    server = {"state_dir": str(short_dir / "state"), "control_socket": str(short_dir / "c.sock")}
    config = short_dir / "config.yaml"
    config.write_text(render_config(server, chain_yaml(provider_yaml("a", fake_upstream.url))))

    run = await run_cli("serve", "--config", str(config), "--port", port, env=child_env(short_dir))

    assert run.returncode == 2, run.stderr[-600:]
    assert "Traceback" not in run.stderr
    assert "argument --port" in run.stderr
    assert not (short_dir / "state").exists()
    assert not (short_dir / "c.sock").exists()


async def test_a_port_out_of_range_that_reaches_the_listener_is_named_as_such(
    tmp_path: Path,
) -> None:
    """start_http's own guard, for a caller past the command line's check."""
    config = tmp_path / "config.yaml"
    config.write_text(chain_yaml(provider_yaml("a", "http://127.0.0.1:1")))
    daemon = build_daemon(load_config(config), clock=SystemClock(), env={})
    try:
        with pytest.raises(ListenError, match=r"cannot listen on 127\.0\.0\.1:70000"):
            await start_http(daemon, "127.0.0.1", 70000)
    finally:
        await daemon.close_adapters()


@pytest.mark.parametrize("seconds", ["0", "-1", "nan", "inf", "soon"])
async def test_doctor_with_a_timeout_that_allows_no_time_is_a_usage_error(
    short_dir: Path, fake_upstream: FakeUpstream, seconds: str
) -> None:
    """A healthy backend given no time would be blamed ("no answer in time")."""
    fake_upstream.default = Reply(json=anthropic_message("ready"))
    config = short_dir / "config.yaml"
    config.write_text(chain_yaml(provider_yaml("a", fake_upstream.url)))

    run = await run_cli(
        "doctor", "a", "--config", str(config), "--timeout", seconds, env=child_env(short_dir)
    )

    assert run.returncode == 2, (run.stdout, run.stderr)
    assert run.stdout == ""
    assert "argument --timeout" in run.stderr and "must be a number above 0" in run.stderr
    assert fake_upstream.requests == []


async def test_doctor_with_a_fraction_of_a_second_is_allowed(
    short_dir: Path, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ready"))
    config = short_dir / "config.yaml"
    config.write_text(chain_yaml(provider_yaml("a", fake_upstream.url)))

    run = await run_cli(
        "doctor", "a", "--config", str(config), "--timeout", "0.5", env=child_env(short_dir)
    )

    assert "argument --timeout" not in run.stderr
    assert fake_upstream.requests
