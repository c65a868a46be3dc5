"""A password in a provider's `base_url` (`https://user:password@proxy`) is a
credential: aiohttp sends it as basic auth. Neither `ctl status` nor
`coderouterd check` shows it."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from tests.conftest import chain_yaml, provider_yaml
from tests.fakes.upstream import FakeUpstream
from tests.integration.process import StartServe, child_env, run_cli

pytestmark = pytest.mark.timeout(30)

PASSWORD = "pw-0123456789-do-not-show"  # noqa: S105 - a test value


async def test_ctl_status_shows_a_base_url_with_its_password_masked(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    url = fake_upstream.url.replace("http://", f"http://proxyuser:{PASSWORD}@")
    d = await serve_process(chain_yaml(provider_yaml("a", url + "/v1")))
    env = child_env(d.root)
    as_json = await run_cli("ctl", "status", "--json", "--socket", str(d.socket_path), env=env)
    as_text = await run_cli("ctl", "status", "--socket", str(d.socket_path), env=env)
    assert as_json.returncode == 0, as_json.stderr
    [provider] = msgspec.json.decode(as_json.stdout)["providers"]
    host = fake_upstream.url.removeprefix("http://")
    assert provider["base_url"] == f"http://proxyuser:***@{host}/v1"
    assert PASSWORD not in as_json.stdout + as_text.stdout + as_text.stderr


@pytest.mark.parametrize("scheme", ["htps", "HTTPS", "ftp"])
async def test_check_reports_a_wrong_scheme_without_quoting_the_url(
    tmp_path: Path, short_dir: Path, scheme: str
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(chain_yaml(provider_yaml("a", f"{scheme}://me:{PASSWORD}@proxy:8443")))
    run = await run_cli("check", "--config", str(config), env=child_env(short_dir))
    assert run.returncode == 2
    assert "providers[0].base_url: must start with http:// or https://" in run.stderr
    assert PASSWORD not in run.stdout + run.stderr
