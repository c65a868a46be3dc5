"""A restart reads back only the outcomes of the model a provider is
configured with: a provider edited to another model while the daemon was
down starts with a window of its own, its failed attempts and empty answers
under the old model left out, while the other providers keep theirs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anthropic
from structlog.testing import capture_logs

from tests.conftest import StartDaemon, chain_yaml, provider_yaml, until
from tests.fakes.transcripts import anthropic_error, anthropic_message
from tests.fakes.upstream import FakeUpstream, Recorded, Reply
from tests.integration.process import child_env, run_cli

ASK: Any = {"max_tokens": 50, "messages": [{"role": "user", "content": "go on"}]}


def config(url: str, state_dir: Path, *, model: str, action: str) -> str:
    local = provider_yaml("local", url).replace("model: local-model", f"model: {model}")
    profiles = f"""\
  - {{name: main, providers: [local, cloud], drift_action: {action}}}
drift: {{window: 10}}
"""
    top = f"server: {{state_dir: {state_dir}}}\n"
    return chain_yaml(local, provider_yaml("cloud", url), profiles=profiles, top=top)


def empty_answer() -> Reply:
    empty = anthropic_message("")
    empty["content"] = []
    empty["usage"]["output_tokens"] = 0
    return Reply(json=empty)


async def served(url: str) -> tuple[str, str]:
    """The provider that answered one request, and the request's id."""
    async with anthropic.AsyncAnthropic(base_url=url, api_key="k", max_retries=0) as client:
        raw = await client.messages.with_raw_response.create(model="m", **ASK)
        return raw.headers["x-coderouter-provider"], raw.headers["x-request-id"]


async def test_a_restart_with_another_model_does_not_bring_back_the_old_models_drift(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    def answer(req: Recorded) -> Reply:
        # The old model answers with nothing; the new one, and the cloud, answer well.
        if (req.json or {}).get("model") == "old":
            return empty_answer()
        return Reply(json=anthropic_message("a fine answer", output_tokens=20))

    fake_upstream.responder = answer
    state_dir = tmp_path / "state"
    d = await start_daemon(
        config(fake_upstream.url, state_dir, model="old", action="demote"), state_dir=state_dir
    )
    assert [(await served(d.url))[0] for _ in range(6)] == ["local"] * 6
    await until(lambda: d.daemon.drift.demoted() == {"local"})

    await d.state.writer.flush()
    with capture_logs() as logs:
        again = await start_daemon(
            config(fake_upstream.url, state_dir, model="new", action="demote"),
            state_dir=state_dir,
        )
    assert [e for e in logs if e["event"] == "provider.drift"] == []
    assert again.daemon.drift.flagged == {}
    assert again.daemon.drift.demoted() == frozenset()
    assert again.daemon.drift.verdict("local")[1] == 0  # type: ignore[index]
    assert (await served(again.url))[0] == "local"
    assert fake_upstream.requests[-1].json["model"] == "new"  # type: ignore[index]


async def test_failed_attempts_of_the_old_model_do_not_judge_the_new_one_after_a_restart(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    def answer(req: Recorded) -> Reply:
        if (req.json or {}).get("model") == "old":
            return anthropic_error(500, "api_error", "it broke")
        return Reply(json=anthropic_message("a fine answer", output_tokens=20))

    fake_upstream.responder = answer
    state_dir = tmp_path / "state"
    d = await start_daemon(
        config(fake_upstream.url, state_dir, model="old", action="warn"), state_dir=state_dir
    )
    asked = [await served(d.url) for _ in range(6)]
    assert [provider for provider, _ in asked] == ["cloud"] * 6
    await until(lambda: d.daemon.drift.flagged == {"local": "mild"})

    await d.state.writer.flush()
    new = config(fake_upstream.url, state_dir, model="new", action="warn")
    again = await start_daemon(new, state_dir=state_dir)
    assert again.daemon.drift.flagged == {}
    assert again.daemon.drift.verdict("local")[1] == 0  # type: ignore[index]
    # The cloud's model is the same: its answers still judge it.
    assert again.daemon.drift.verdict("cloud")[1] == 6  # type: ignore[index]

    # The request log tells which model each attempt went to.
    run = await run_cli(
        "requests", asked[0][1], "--config", str(again.config_path), env=child_env(tmp_path)
    )
    assert run.returncode == 0, run.stderr
    first, second = [
        line for line in run.stdout.splitlines() if line.startswith(("    1.", "    2."))
    ]
    assert first.startswith("    1. local, failed, http_500, status 500, took ")
    assert first.endswith(", model old: api_error")
    assert second.startswith("    2. cloud, ok, status 200, first byte ")
    assert second.endswith(", model cloud-model")
