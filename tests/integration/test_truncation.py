"""A backend that silently cuts long prompts (a context window smaller than the prompt)
is found from its own usage: logged, counted in /metrics and ctl status."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import aiohttp
import anthropic
from structlog.testing import capture_logs

from coderouterd.ctl.render import render_status
from coderouterd.routing.windows import FORGET_S
from coderouterd.status import status_of
from tests.conftest import RunningDaemon, StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message, openai_completion
from tests.fakes.upstream import FakeUpstream, Recorded, Reply
from tests.integration.state.support_db import ManualClock

LONG = "read this file carefully. " * 4000  # ~100 KB: ~25k tokens at four bytes each


def counts_what_it_keeps(req: Recorded) -> Reply:
    # Like Ollama at its default num_ctx: whatever was sent, 4096 tokens were read.
    kept = 4096 if len(req.body) > 60_000 else len(req.body) // 4
    return Reply(dialect="openai", json=openai_completion("ok", prompt_tokens=kept))


def local_cuts_big_reads(req: Recorded) -> Reply:
    """`local` cuts long prompts; `big` (an Anthropic provider) reads them all."""
    if (req.json or {}).get("model") == "big-model":
        return Reply(json=anthropic_message("big", input_tokens=len(req.body) // 4))
    return counts_what_it_keeps(req)


def local_then_big(fake: FakeUpstream, *, local: str = "", profiles: str | None = None) -> str:
    """A config of `local` (openai_compat, `local` its extra lines) then
    `big`, the fake answering as local_cuts_big_reads."""
    fake.responder = local_cuts_big_reads
    return chain_yaml(
        provider_yaml("local", fake.url + "/v1", kind="openai_compat", extra=local),
        provider_yaml("big", fake.url),
        profiles=profiles,
    )


async def test_a_backend_that_cuts_long_prompts_is_named(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.responder = counts_what_it_keeps
    d = await start_daemon(
        chain_yaml(provider_yaml("local", fake_upstream.url + "/v1", kind="openai_compat"))
    )
    with capture_logs() as logs:
        async with anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0) as c:
            for text in ("a short question", LONG, LONG):
                await c.messages.create(
                    model="m", max_tokens=10, messages=[{"role": "user", "content": text}]
                )
        status = status_of(d.daemon)  # hands the queued summaries over first
    cut = [e for e in logs if e["event"] == "provider.prompt_truncated"]
    # Two cut prompts, one warning: it would say the same thing again.
    assert len(cut) == 1
    assert cut[0]["provider"] == "local" and cut[0]["counted_tokens"] == 4096
    assert cut[0]["sent_tokens_estimate"] > 20_000
    assert "OLLAMA_CONTEXT_LENGTH" in cut[0]["hint"]
    [local] = status.providers
    assert local.prompts_truncated == 2
    assert "2 prompt(s) cut by its context window" in render_status(status)


async def test_a_skip_profile_passes_over_a_backend_that_cut_a_prompt_as_long_even_after_a_restart(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    config = local_then_big(
        fake_upstream,
        profiles="  - {name: default, providers: [local, big], context_action: skip}\n",
    )
    state_dir = tmp_path / "state"
    d = await start_daemon(config, state_dir=state_dir)

    async def ask(d: RunningDaemon, text: str) -> tuple[str, str]:
        async with anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0) as c:
            raw = await c.messages.with_raw_response.create(
                model="m", max_tokens=10, messages=[{"role": "user", "content": text}]
            )
        return raw.headers["x-coderouter-provider"], raw.headers.get(
            "x-coderouter-fallback-reason", ""
        )

    # The first long prompt is cut (nothing tells before the answer)...
    assert await ask(d, LONG) == ("local", "")
    status = status_of(d.daemon)
    assert "cut a prompt to 4096 tokens" in render_status(status)
    async with aiohttp.ClientSession() as http, http.get(f"{d.url}/metrics") as resp:
        metrics = (await resp.text()).splitlines()
    assert 'coderouterd_provider_context_limit_tokens{provider="local"} 4096' in metrics
    # ...the next one goes where it fits; a short one still fits local.
    assert await ask(d, LONG + "and more") == ("big", "local=context_too_small")
    assert await ask(d, "a short question") == ("local", "")
    # The request log keeps the cut: a restarted daemon passes local over too.
    await d.state.writer.flush()
    again = await start_daemon(config, state_dir=state_dir)
    assert await ask(again, LONG) == ("big", "local=context_too_small")
    [local, _] = status_of(again.daemon).providers
    assert local.context_window is not None and local.context_window.cut
    assert local.context_window.prompt_limit == 4096


async def test_by_default_only_what_a_backend_did_decides_and_off_never_skips(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    # A declared window far too small: only `skip` profiles go by it.
    config = local_then_big(
        fake_upstream,
        local="capabilities: {max_context_tokens: 2000}",
        profiles="  - {name: default, providers: [local, big]}\n"
        "  - {name: always, providers: [local, big], context_action: off}\n",
    )
    state_dir = tmp_path / "state"
    d = await start_daemon(config, state_dir=state_dir)

    async def ask(text: str, profile: str = "default") -> tuple[str, str]:
        async with anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0) as c:
            raw = await c.messages.with_raw_response.create(
                model="m",
                max_tokens=10,
                messages=[{"role": "user", "content": text}],
                extra_body={"profile": profile},
            )
        return raw.headers["x-coderouter-provider"], raw.headers.get(
            "x-coderouter-fallback-reason", ""
        )

    assert await ask(LONG) == ("local", "")  # cut: the backend's own word, learned
    status_of(d.daemon)
    assert await ask(LONG + "and more") == ("big", "local=context_too_small")
    assert await ask("a short question") == ("local", "")
    assert await ask(LONG + "and more", profile="always") == ("local", "")
    # The operator raised its window: `ctl restore` forgets what it told.
    status_of(d.daemon)
    reply = await d.daemon.provider_action("restore", "local", None)
    assert reply.changed and reply.message == (
        "was not excluded; the context window it told is forgotten"
    )
    fake_upstream.responder = lambda req: Reply(
        dialect="openai", json=openai_completion("ok", prompt_tokens=len(req.body) // 4)
    )
    # Audited: a daemon restarted now does not read back the cuts before it.
    await d.state.writer.flush()
    with sqlite3.connect(d.state.path) as db:
        audited = db.execute(
            "SELECT fields FROM audit WHERE event = 'provider.window_forgotten'"
        ).fetchall()
    assert [json.loads(f) for (f,) in audited] == [{"provider": "local", "via": "manual"}]
    d = await start_daemon(config, state_dir=state_dir)
    assert status_of(d.daemon).providers[0].context_window is None
    assert await ask(LONG + "and more") == ("local", "")


async def test_a_backend_that_cuts_again_soon_is_held_longer_even_after_a_restart(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    config = local_then_big(fake_upstream)
    clock = ManualClock()
    state_dir = tmp_path / "state"
    d = await start_daemon(config, clock=clock, state_dir=state_dir)

    async def ask(text: str) -> str:
        async with anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0) as c:
            raw = await c.messages.with_raw_response.create(
                model="m", max_tokens=10, messages=[{"role": "user", "content": text}]
            )
        status_of(d.daemon)  # hands the summary over
        return raw.headers["x-coderouter-provider"]

    assert await ask(LONG) == "local"  # cut: held 10 minutes
    assert await ask(LONG + "more") == "big"
    clock.advance(FORGET_S)
    assert await ask(LONG + "more still") == "local"  # its chance back: cut again at once
    [local, _] = status_of(d.daemon).providers
    assert local.context_window is not None and local.context_window.forgotten_in_s == 2 * FORGET_S
    await d.state.writer.flush()
    with sqlite3.connect(d.state.path) as db:
        [(fields,)] = db.execute(
            "SELECT fields FROM audit WHERE event = 'provider.window_held'"
        ).fetchall()
    assert json.loads(fields) == {
        "provider": "local", "limit": 4096, "hold_s": 2 * FORGET_S, "window": None, "cut": True,
        "model": "local-model",
    }  # fmt: skip
    # Restarted 15 minutes later: still held, as it would have been.
    clock.advance(FORGET_S * 1.5)
    d = await start_daemon(config, clock=clock, state_dir=state_dir)
    assert await ask(LONG + "and on") == "big"
    [local, _] = status_of(d.daemon).providers
    assert local.context_window is not None and local.context_window.cut


async def test_a_backend_sent_no_tools_is_judged_on_what_it_was_sent(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    # A model that cannot call tools gets the request without them (Claude
    # Code's tools are most of its prompt), and reads every byte it gets.
    fake_upstream.responder = lambda req: Reply(
        dialect="openai", json=openai_completion("ok", prompt_tokens=len(req.body) // 4)
    )
    local = provider_yaml(
        "local",
        fake_upstream.url + "/v1",
        kind="openai_compat",
        extra="capabilities: {tools: false}",
    )
    d = await start_daemon(chain_yaml(local))
    schema = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(60)}}
    tools = [
        {"name": f"tool_{i}", "description": "x " * 200, "input_schema": schema} for i in range(40)
    ]
    with capture_logs() as logs:
        async with anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0) as c:
            await c.messages.create(
                model="m", max_tokens=10, tools=tools,  # type: ignore[arg-type]
                messages=[{"role": "user", "content": LONG[:20_000]}],
            )  # fmt: skip
        status = status_of(d.daemon)
    assert len(fake_upstream.requests[0].body) < 30_000  # the tools stayed behind
    assert [e for e in logs if e["event"] == "provider.prompt_truncated"] == []
    [provider] = status.providers
    assert provider.prompts_truncated == 0 and provider.context_window is None
