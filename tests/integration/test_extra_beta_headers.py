"""`anthropic-beta` in a provider's `extra_headers` is added to the client's
betas (which turn on features its body may use), not put in their place."""

from __future__ import annotations

import aiohttp
import pytest

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.timeout(30)

BODY = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hello"}]}


@pytest.mark.parametrize(
    ("client", "configured", "sent"),
    [
        (
            ["interleaved-thinking-2025-05-14,claude-code-20250219"],
            "anthropic-beta: context-1m-2025-08-07",
            "interleaved-thinking-2025-05-14,claude-code-20250219,context-1m-2025-08-07",
        ),
        # Repeated lines, as ingress joins them; one the client already sent is not repeated.
        (["a-1", "b-2"], "anthropic-beta: 'c-3, a-1'", "a-1,b-2,c-3"),
        # The configured name in any case is the same header.
        (["a-1"], "Anthropic-Beta: b-2", "a-1,b-2"),
    ],
    ids=["added", "no_duplicates", "any_case"],
)
async def test_a_configured_beta_joins_the_clients_betas(
    start_daemon: StartDaemon,
    fake_upstream: FakeUpstream,
    client: list[str],
    configured: str,
    sent: str,
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    extra = f"extra_headers: {{{configured}}}"
    d = await start_daemon(chain_yaml(provider_yaml("a", fake_upstream.url, extra=extra)))
    headers = [("anthropic-beta", beta) for beta in client]
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{d.url}/v1/messages", json=BODY, headers=headers) as resp,
    ):
        assert resp.status == 200, await resp.text()
    assert fake_upstream.requests[0].headers.getall("anthropic-beta") == [sent]
