"""Learned context windows over time: what forgets them, what a restart reads
back, and what prompt they are judged by."""

from __future__ import annotations

from pathlib import Path

import anthropic

from coderouterd.routing.windows import FORGET_S
from coderouterd.status import status_of
from tests.conftest import RunningDaemon, StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message, openai_completion
from tests.fakes.upstream import FakeUpstream, Recorded, Reply
from tests.integration.state.support_db import ManualClock

LONG = "read this file carefully. " * 4000  # ~100 KB: ~25k tokens estimated
# ~34 KB: ~8.5k tokens estimated; a 4096-token window keeps under half of it.
MEDIUM = "read this file carefully. " * 1300
WINDOW = 4096


def ollama_4096(req: Recorded) -> Reply:
    """`local` is Ollama at num_ctx 4096: it reads at most 4096 tokens of any
    prompt (cutting the start); `big` reads everything."""
    if (req.json or {}).get("model") == "big-model":
        return Reply(json=anthropic_message("big", input_tokens=len(req.body) // 4))
    kept = min(WINDOW, len(req.body) // 4)
    return Reply(dialect="openai", json=openai_completion("ok", prompt_tokens=kept))


PROFILES = (
    "  - {name: default, providers: [local, big]}\n"
    "  - {name: always, providers: [local, big], context_action: off}\n"
)


def config(fake: FakeUpstream) -> str:
    fake.responder = ollama_4096
    return chain_yaml(
        provider_yaml("local", fake.url + "/v1", kind="openai_compat"),
        provider_yaml("big", fake.url),
        profiles=PROFILES,
    )


async def ask(d: RunningDaemon, text: str, profile: str = "default") -> tuple[str, str]:
    async with anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0) as c:
        raw = await c.messages.with_raw_response.create(
            model="m",
            max_tokens=10,
            messages=[{"role": "user", "content": text}],
            extra_body={"profile": profile},
        )
    status_of(d.daemon)  # hands the summary over
    return raw.headers["x-coderouter-provider"], raw.headers.get("x-coderouter-fallback-reason", "")


async def test_a_prompt_cut_again_to_the_same_window_does_not_forget_the_window(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    d = await start_daemon(config(fake_upstream))
    # A long prompt is cut to 4096 tokens: the window is learned.
    assert await ask(d, LONG) == ("local", "")
    assert await ask(d, LONG + "more") == ("big", "local=context_too_small")
    # A `context_action: off` profile sends local a medium prompt (~8.5k
    # tokens). The backend cuts it to the same 4096 tokens: its window did not
    # grow, it read under half of the prompt. Nothing was read whole.
    assert await ask(d, MEDIUM, profile="always") == ("local", "")
    [local, _] = status_of(d.daemon).providers
    assert local.context_window is not None, "the window was forgotten after another cut"
    # So the next long prompt still goes where it fits.
    assert await ask(d, LONG + "and more") == ("big", "local=context_too_small")


async def test_a_long_hold_renewed_by_a_later_cut_survives_a_restart(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    cfg = config(fake_upstream)
    clock = ManualClock()
    state_dir = tmp_path / "state"
    d = await start_daemon(cfg, clock=clock, state_dir=state_dir)
    assert await ask(d, LONG) == ("local", "")  # cut: held 10 min
    clock.advance(FORGET_S)
    assert await ask(d, LONG + "x") == ("local", "")  # its chance back, cut again: held 20 min
    clock.advance(800)  # still held (400 s left)
    # A context_action: off profile sends it another long prompt: cut again,
    # the 20-minute hold starts over from now.
    assert await ask(d, LONG + "xx", profile="always") == ("local", "")
    [local, _] = status_of(d.daemon).providers
    assert local.context_window is not None
    assert local.context_window.forgotten_in_s == 2 * FORGET_S
    clock.advance(700)  # 500 s of that hold are left
    [local, _] = status_of(d.daemon).providers
    assert local.context_window is not None and local.context_window.forgotten_in_s == 500
    assert await ask(d, LONG + "xxx") == ("big", "local=context_too_small")
    await d.state.writer.flush()
    # Restarted now: the hold it was under has 500 s left.
    again = await start_daemon(cfg, clock=clock, state_dir=state_dir)
    [local, _] = status_of(again.daemon).providers
    assert local.context_window is not None, "the renewed hold was lost across the restart"
    assert await ask(again, LONG + "xxxx") == ("big", "local=context_too_small")


async def test_a_profile_appending_to_the_system_prompt_skips_by_what_the_backend_is_sent(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.responder = ollama_4096
    guidance = "Always answer tersely and never reason aloud. " * 260  # ~12 KB: ~3000 tokens
    d = await start_daemon(
        chain_yaml(
            provider_yaml("local", fake_upstream.url + "/v1", kind="openai_compat"),
            provider_yaml("big", fake_upstream.url),
            profiles="  - name: default\n    providers: [local, big]\n"
            f"    append_system_prompt: {guidance!r}\n",
        )
    )
    # ~9000 tokens from the client, ~12000 sent: cut to 4096, the window is learned.
    assert await ask(d, "read this file carefully. " * 1400) == ("local", "")
    [local, _] = status_of(d.daemon).providers
    assert local.context_window is not None and local.context_window.prompt_limit == WINDOW
    # ~3600 tokens from the client, but ~6600 with the profile's own text: the
    # backend would get a prompt well over the 4096 it showed it keeps.
    assert await ask(d, "read this file carefully. " * 560) == ("big", "local=context_too_small")
