"""append_system_prompt through a real daemon: a profile's reaches every
provider of it, a provider's only that provider, after what the client sent."""

from __future__ import annotations

from typing import Any

import anthropic
import openai

from tests.conftest import StartDaemon, provider_yaml, recorded_bodies
from tests.fakes.transcripts import anthropic_message, openai_completion
from tests.fakes.upstream import FakeUpstream, Reply

SYSTEM = [
    {"type": "text", "text": "You are a coding agent.", "cache_control": {"type": "ephemeral"}}
]
USER: Any = [{"role": "user", "content": "hi"}]
BUSY = Reply(
    status=503, json={"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
)


async def test_a_profiles_text_follows_the_clients_system_on_every_provider_and_a_providers_its_own(
    start_daemon: StartDaemon,
) -> None:
    async with (
        FakeUpstream() as claude,
        FakeUpstream(default=Reply(dialect="openai", json=openai_completion("ok"))) as local,
    ):
        # The first provider is busy: the request falls back to the second.
        claude.script(BUSY, Reply(json=anthropic_message("ok")))
        local_yaml = provider_yaml(
            "local",
            local.url + "/v1",
            kind="openai_compat",
            extra="append_system_prompt: /no_think",
        )
        d = await start_daemon(
            f"providers:{provider_yaml('claude', claude.url)}{local_yaml}"
            "profiles:\n"
            "  - name: styled\n"
            "    providers: [claude, local]\n"
            "    append_system_prompt: Answer briefly.\n"
            "  - {name: plain, providers: [claude]}\n"
        )
        async with anthropic.AsyncAnthropic(
            base_url=d.url, api_key="k", max_retries=0, timeout=10
        ) as client:
            for profile in ("styled", "plain"):
                await client.messages.create(
                    model="m",
                    max_tokens=10,
                    system=SYSTEM,
                    messages=USER,
                    extra_headers={"x-coderouter-profile": profile},
                )
        recorded = await recorded_bodies(d)
    # What the client sent is what a replay sends again.
    assert [r["system"] for r in recorded] == [SYSTEM, SYSTEM]
    failed, plain = (r.json for r in claude.requests)
    assert failed["system"] == [*SYSTEM, {"type": "text", "text": "Answer briefly."}]
    # The cache breakpoint the client set is kept, before the added text.
    assert plain["system"] == SYSTEM
    [translated] = local.requests
    assert translated.json["messages"][0] == {
        "role": "system",
        "content": "You are a coding agent.\n\nAnswer briefly.\n\n/no_think",
    }


async def test_an_openai_client_without_a_system_message_gets_one(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(dialect="openai", json=openai_completion("ok"))
    backend = provider_yaml("o", fake_upstream.url + "/v1", kind="openai_compat")
    d = await start_daemon(
        f"providers:{backend}profiles:\n"
        "  - {name: default, providers: [o], append_system_prompt: Be terse.}\n"
    )
    async with openai.AsyncOpenAI(base_url=d.url + "/v1", api_key="k", max_retries=0) as client:
        await client.chat.completions.create(model="m", messages=USER)
    [forwarded] = fake_upstream.requests
    assert forwarded.json["messages"] == [{"role": "system", "content": "Be terse."}, *USER]
