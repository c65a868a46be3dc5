"""context_action: skip through a real daemon: a prompt larger than a
provider's context window goes to a provider that can hold it."""

from __future__ import annotations

import anthropic

from tests.conftest import StartDaemon, provider_yaml
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply


async def test_a_prompt_too_long_for_a_provider_goes_to_the_next(
    start_daemon: StartDaemon,
) -> None:
    async with (
        FakeUpstream(default=Reply(json=anthropic_message("small"))) as small,
        FakeUpstream(default=Reply(json=anthropic_message("big"))) as big,
    ):
        d = await start_daemon(
            f"providers:{provider_yaml('small', small.url, extra='capabilities: {max_context_tokens: 2000}')}"
            f"{provider_yaml('big', big.url)}"
            "profiles:\n"
            "  - {name: fits, providers: [small, big], context_action: skip}\n"
            "  - {name: tries, providers: [small, big]}\n"
        )
        served = []
        async with anthropic.AsyncAnthropic(
            base_url=d.url, api_key="k", max_retries=0, timeout=10
        ) as client:
            # About 250 and 5000 tokens, at four bytes each.
            for text, profile in (
                ("x " * 500, "fits"),
                ("x " * 10_000, "fits"),
                ("x " * 10_000, "tries"),
            ):
                raw = await client.messages.with_raw_response.create(
                    model="m",
                    max_tokens=10,
                    messages=[{"role": "user", "content": text}],
                    extra_headers={"x-coderouter-profile": profile},
                )
                served.append(
                    (
                        raw.headers["x-coderouter-provider"],
                        raw.headers.get("x-coderouter-fallback-reason"),
                    )
                )
    assert served == [
        ("small", None),
        ("big", "small=context_too_small"),
        ("small", None),
    ]
