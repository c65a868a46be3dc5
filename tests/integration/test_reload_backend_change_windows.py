"""A reload that points a provider at another model or server forgets the
context window its old backend told, for good; a refusal of the old model
ending after the reload teaches nothing."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import anthropic
import pytest

from tests.conftest import RunningDaemon, StartDaemon, provider_yaml, until
from tests.fakes.transcripts import anthropic_error, anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.timeout(30)

PROMPT = [{"role": "user", "content": "x " * 40_000}]  # about 20000 tokens estimated
TOO_LONG = "prompt is too long: 40960 tokens > 32768 maximum"


def config(small_url: str, big_url: str, small_model: str = "qwen-32k") -> str:
    return (
        "providers:"
        + provider_yaml("small", small_url).replace("small-model", small_model)
        + provider_yaml("big", big_url)
        + "profiles:\n  - {name: default, providers: [small, big]}\n"
    )


def answers(name: str) -> Reply:
    return Reply(json=anthropic_message(name, input_tokens=41000))


async def reload(d: RunningDaemon, yaml: str) -> None:
    d.config_path.write_text(yaml)
    assert (await d.daemon.reload()).ok


async def ask(d: RunningDaemon) -> tuple[str, str | None]:
    """Which provider answered the long prompt, and why others were passed over."""
    async with anthropic.AsyncAnthropic(
        base_url=d.url, api_key="k", max_retries=0, timeout=10
    ) as client:
        raw = await client.messages.with_raw_response.create(
            model="m", max_tokens=10, messages=PROMPT
        )
    return raw.headers["x-coderouter-provider"], raw.headers.get("x-coderouter-fallback-reason")


async def learned(d: RunningDaemon) -> None:
    """Until the refusal's summary is handed over and its window learned."""
    await until(
        lambda: (d.daemon.deferred.flush(), d.daemon.windows.learned("small"))[1] is not None
    )


async def test_a_reload_that_changes_a_providers_model_forgets_the_window_the_old_model_told(
    start_daemon: StartDaemon,
) -> None:
    """`small` (a 32k model) refuses a long prompt, the operator switches its
    `model` to a 128k one and reloads: the next long prompt goes to `small`
    again, not to `big` (in real life a paid cloud provider) for the next
    10 minutes to 4 hours as `context_too_small`."""
    async with FakeUpstream() as small, FakeUpstream(default=answers("big")) as big:
        small.script(anthropic_error(400, "invalid_request_error", TOO_LONG))
        small.default = answers("small")
        d = await start_daemon(config(small.url, big.url))
        assert await ask(d) == ("big", "small=context_exceeded")
        await learned(d)
        await reload(d, config(small.url, big.url, "qwen-128k"))
        assert await ask(d) == ("small", None)
        assert [r.json["model"] for r in small.requests] == ["qwen-32k", "qwen-128k"]


async def test_a_window_forgotten_as_its_provider_moved_to_another_server_stays_forgotten(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """The same model moved to a server with a larger window: forgotten at
    the reload and audited so, so that a daemon restarted on the new config
    does not read the old server's refusal back."""
    async with (
        FakeUpstream() as old,
        FakeUpstream(default=answers("small")) as new,
        FakeUpstream(default=answers("big")) as big,
    ):
        old.script(anthropic_error(400, "invalid_request_error", TOO_LONG))
        state_dir = tmp_path / "state"
        d = await start_daemon(config(old.url, big.url), state_dir=state_dir)
        assert await ask(d) == ("big", "small=context_exceeded")
        await learned(d)
        await reload(d, config(new.url, big.url))
        assert await ask(d) == ("small", None)
        await d.state.writer.flush()
        with sqlite3.connect(d.state.path) as db:
            audited = db.execute(
                "SELECT fields FROM audit WHERE event = 'provider.window_forgotten'"
            ).fetchall()
        assert [json.loads(f) for (f,) in audited] == [
            {"provider": "small", "via": "backend_changed"}
        ]
        restarted = await start_daemon(config(new.url, big.url), state_dir=state_dir)
        assert restarted.daemon.windows.learned("small") is None
        assert await ask(restarted) == ("small", None)
        assert len(new.requests) == 2
