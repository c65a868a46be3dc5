"""No config problem quotes a base_url's password: not a duplicate key's
(ruamel's own message quotes both values), nor any other that quotes a URL,
whether `check` prints it, `serve` refuses to start on it, or a reload is
refused for it (its log line and its reply)."""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from coderouterd.config import load_config, load_config_text
from coderouterd.errors import ConfigError
from coderouterd.scrub import masked_urls
from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.upstream import FakeUpstream
from tests.integration.process import child_env, run_cli

pytestmark = pytest.mark.timeout(30)

PASSWORD = "proxy-pass-0123456789-secret"  # noqa: S105 - a test value


def twice_base_url(url: str) -> str:
    """A provider block with base_url written twice (an edit that kept the old
    line), on lines 4 and 5, the password in both."""
    with_pw = url.replace("http://", f"http://proxyuser:{PASSWORD}@")
    return chain_yaml(
        provider_yaml("a", with_pw).replace(
            f"    base_url: {with_pw}\n",
            f"    base_url: {with_pw}\n    base_url: {with_pw}/v1\n",
        )
    )


def test_a_duplicate_key_is_named_with_its_lines_and_without_its_values(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(twice_base_url("http://127.0.0.1:9"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    [problem] = info.value.problems
    assert (problem.line, problem.message) == (
        5,
        "YAML syntax error: duplicate key 'base_url' (first on line 4)",
    )
    assert PASSWORD not in str(info.value)


def test_a_problem_quoting_a_url_shows_it_with_its_password_masked() -> None:
    # ruamel quotes a value it cannot convert: here, the URL.
    text = chain_yaml(provider_yaml("a", "http://127.0.0.1:9"))
    text += f"extra: !!int http://proxyuser:{PASSWORD}@proxy:8443/v1\n"
    with pytest.raises(ConfigError) as info:
        load_config_text(text, file="c.yaml")
    assert "http://proxyuser:***@proxy:8443/v1" in str(info.value)
    assert PASSWORD not in str(info.value)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            'with value "http://u:pw-1@h:1/v1" (was "https://t0k3n@h")',
            'with value "http://u:***@h:1/v1" (was "https://***@h")',
        ),
        ("got 'http://u:p@ss@h/v1'", "got 'http://u:***@h/v1'"),
        # An "@" past the host is no user; a URL without one stays whole.
        (
            "http://h/a@b and https://api.anthropic.com",
            "http://h/a@b and https://api.anthropic.com",
        ),
    ],
)
def test_every_url_in_a_problem_text_is_shown_without_its_password(text: str, shown: str) -> None:
    assert masked_urls(text) == shown


@pytest.mark.parametrize("command", ["check", "serve"])
async def test_check_and_serve_print_a_duplicate_base_url_without_its_password(
    tmp_path: Path, short_dir: Path, command: str
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(twice_base_url("http://127.0.0.1:9"))
    run = await run_cli(command, "--config", str(config), env=child_env(short_dir))
    assert run.returncode == 2, run.stderr
    assert f"{config}:5: YAML syntax error: duplicate key 'base_url'" in run.stderr
    assert PASSWORD not in run.stdout + run.stderr


async def test_a_reload_refused_for_a_duplicate_base_url_logs_and_replies_without_its_password(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    d = await start_daemon(chain_yaml(provider_yaml("a", fake_upstream.url)))
    d.config_path.write_text(twice_base_url(fake_upstream.url))
    with capture_logs() as logs:
        reply = await d.daemon.reload()
    assert not reply.ok
    [rejected] = [e for e in logs if e["event"] == "config.reload_rejected"]
    assert any("duplicate key 'base_url'" in p for p in rejected["problems"])
    assert PASSWORD not in repr(logs)
    assert PASSWORD not in repr(reply.problems)
