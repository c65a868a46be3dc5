"""`coderouterd ctl --config FILE` reaches the daemon while FILE has problems:
the command line reads only where the socket is (coderouterd/ctl/locate.py),
and the daemon judges the file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgspec
import pytest

from coderouterd.ctl.locate import control_socket
from coderouterd.errors import ConfigError
from tests.conftest import chain_yaml, provider_yaml, until
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.process import ServeProcess, StartServe, child_env, run_cli

pytestmark = pytest.mark.timeout(30)


async def _reload_rejected(d: ServeProcess, problem: str) -> None:
    assert d.config_path is not None
    since = d.mark()
    run = await run_cli("ctl", "reload", "--config", str(d.config_path), env=child_env(d.root))
    assert run.returncode == 1, (run.returncode, run.stdout, run.stderr)
    assert "reload rejected" in run.stdout and problem in run.stdout, run.stdout
    await d.wait_for_event("config.reload_rejected", since=since, timeout=2)
    await until(lambda: _last_audit_event(d.state_dir) == "config.reload_rejected", timeout=5)


def _last_audit_event(state_dir: Path) -> str | None:
    # Read directly: the state commands load the config file, which is the broken one.
    conn = sqlite3.connect(f"file:{state_dir / 'coderouterd.db'}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT event FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    finally:
        conn.close()
    return None if row is None else str(row[0])


async def test_ctl_reload_of_a_file_with_a_problem_is_rejected_by_the_daemon(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    """README: `ctl reload` exits 1 when rejected; not 2 from the command line
    refusing the file before it asks the daemon."""
    d = await serve_process(chain_yaml(provider_yaml("a", fake_upstream.url)))
    d.write_config(chain_yaml(provider_yaml("a", fake_upstream.url)) + "bogus_key: 1\n")

    await _reload_rejected(d, "bogus_key")


async def test_ctl_reload_of_a_file_with_a_yaml_syntax_error_is_rejected_by_the_daemon(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    """The file's `server:` block (its own control socket) comes before the typo."""
    d = await serve_process(chain_yaml(provider_yaml("a", fake_upstream.url)))
    d.write_config(chain_yaml(provider_yaml("a", fake_upstream.url)) + "extra: [unclosed\n")

    await _reload_rejected(d, "YAML syntax error")


async def test_ctl_reload_of_a_file_with_a_misindented_key_is_rejected_by_the_daemon(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    """A top-level key indented by a space, as an editor leaves it: the YAML
    error names the document's first line as its context, and the command line
    still finds the socket in the `server:` block rather than call the daemon
    not running."""
    body = chain_yaml(provider_yaml("a", fake_upstream.url))
    d = await serve_process(body)
    d.write_config(body.replace("\nprofiles:", "\n profiles:"))

    await _reload_rejected(d, "YAML syntax error")


async def test_ctl_exclude_reaches_the_daemon_while_its_config_file_is_mid_edit(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    """A profile already names the provider about to be added."""
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    body = chain_yaml(provider_yaml("a", fake_upstream.url), provider_yaml("b", fake_upstream.url))
    d = await serve_process(body)
    assert d.config_path is not None
    d.write_config(body.replace("providers: [a, b]", "providers: [a, b, c]"))

    run = await run_cli(
        "ctl", "exclude", "a", "--json", "--config", str(d.config_path), env=child_env(d.root)
    )

    assert run.returncode == 0, (run.returncode, run.stdout, run.stderr)
    assert msgspec.json.decode(run.stdout)["changed"] is True


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("server: {control_socket: /run/x.sock}\nproviders: 7\n", "/run/x.sock"),
        ("server: {state_dir: /srv/crd}\nprofiles: [{name: p, providers: [nope]}]\n", None),
        ("server:\n  control_socket: /run/x.sock\nproviders: [a, b\nbogus: : :\n", "/run/x.sock"),
        ('server: {control_socket: "/run/x.sock}\n', "default"),
        ("server: {control_socket: 7, state_dir: [1]}\n", "default"),
        ("- just\n- a list\n", "default"),
        ("", "default"),
    ],
)
def test_the_socket_is_found_from_the_server_block_alone(
    tmp_path: Path, text: str, expected: str | None
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(text)
    env = {"XDG_STATE_HOME": str(tmp_path / "xdg-state")}
    want = {
        None: Path("/srv/crd/control.sock"),
        "default": tmp_path / "xdg-state" / "coderouterd" / "control.sock",
    }.get(expected, Path(str(expected)))

    assert control_socket(config, env) == want


def test_a_config_file_that_is_not_there_is_still_a_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read file"):
        control_socket(tmp_path / "missing.yaml", {})
