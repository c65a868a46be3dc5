"""A key pasted where the name of its environment variable belongs
(`api_key_env: <the key>`) passes for a name when it is letters, digits and
`_` (a Mistral key, a Groq `gsk_` key): the provider is skipped as
`missing_api_key`, and the warning logged at every start and reload shows
no more than its first characters. A variable's name is shown whole, and
`coderouterd check` says which api_key_env looks like a key."""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.upstream import FakeUpstream
from tests.integration.process import StartServe, child_env, run_cli

pytestmark = pytest.mark.timeout(30)

# The shape of a Mistral API key (32 letters and digits) and of a Groq one.
MISTRAL_SHAPED = "Xq7Lm2PzR9tKv4NwB8sYc3HdF6gJa1Ue"
GROQ_SHAPED = "gsk_" + "Wq3Jm8PzR1tKv4NwB8sYc3HdF6gJa1UeZx9Lm2PzR9tKv4NwB8sY"


def pasted_config(url: str) -> str:
    return chain_yaml(
        provider_yaml(
            "mistral", url + "/v1", kind="openai_compat", extra=f"api_key_env: {MISTRAL_SHAPED}"
        ),
        provider_yaml(
            "groq", url + "/v1", kind="openai_compat", extra=f"api_key_env: {GROQ_SHAPED}"
        ),
        provider_yaml(
            "named", url + "/v1", kind="openai_compat", extra="api_key_env: NAMED_API_KEY"
        ),
    )


async def test_a_reload_logs_a_pasted_key_by_its_first_characters_and_a_name_whole(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    d = await start_daemon(chain_yaml(provider_yaml("a", fake_upstream.url)))
    d.config_path.write_text(pasted_config(fake_upstream.url))
    with capture_logs() as logs:
        reply = await d.daemon.reload()
    assert reply.ok
    shown = {e["provider"]: e["api_key_env"] for e in logs if e["event"] == "provider.unavailable"}
    assert shown == {"mistral": "Xq7L…", "groq": "gsk_…", "named": "NAMED_API_KEY"}
    assert MISTRAL_SHAPED not in repr(logs)
    assert GROQ_SHAPED not in repr(logs)


async def test_serve_logs_no_pasted_key_at_start(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    d = await serve_process(pasted_config(fake_upstream.url))
    await d.wait_for_event("provider.unavailable", where=lambda e: e["provider"] == "groq")
    assert d.events("provider.unavailable")
    assert MISTRAL_SHAPED not in d.stderr_text
    assert GROQ_SHAPED not in d.stderr_text


async def test_check_warns_of_an_api_key_env_that_looks_like_a_key_without_showing_it(
    tmp_path: Path, short_dir: Path
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(pasted_config("http://127.0.0.1:9"))
    run = await run_cli("check", "--config", str(config), env=child_env(short_dir))
    assert run.returncode == 0, run.stderr
    warnings = [line for line in run.stderr.splitlines() if "looks like a key" in line]
    assert [w.split("api_key_env")[0] for w in warnings] == [
        "coderouterd: warning: providers[0].",
        "coderouterd: warning: providers[1].",
    ]
    assert MISTRAL_SHAPED not in run.stdout + run.stderr
    assert GROQ_SHAPED not in run.stdout + run.stderr
