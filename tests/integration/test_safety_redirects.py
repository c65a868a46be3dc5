"""A provider's redirect is its failure: never followed, by requests or probes.

Following one would send the request, its key and its prompt, to whatever
host the redirect names: aiohttp drops only Authorization, Cookie and
Proxy-Authorization across origins, so an Anthropic provider's x-api-key
would go along.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from coderouterd.clock import SystemClock
from coderouterd.config.model import ProviderConfig
from coderouterd.healing.probe import probe
from coderouterd.providers.anthropic import AnthropicAdapter
from tests.conftest import TEST_API_KEY, StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message, openai_completion
from tests.fakes.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.timeout(20)

BODY = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
KEY = "api_key_env: A_KEY"


def redirect(status: int, to: FakeUpstream, path: str) -> Reply:
    return Reply(status=status, headers={"location": f"{to.url}{path}"}, raw_body=b"")


async def ask(url: str) -> tuple[int, dict[str, str], Any]:
    async with aiohttp.ClientSession() as http, http.post(f"{url}/v1/messages", json=BODY) as resp:
        return resp.status, dict(resp.headers), await resp.json()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_an_anthropic_providers_redirect_is_not_followed_and_the_next_provider_answers(
    start_daemon: StartDaemon, status: int
) -> None:
    async with FakeUpstream() as a, FakeUpstream() as elsewhere, FakeUpstream() as b:
        elsewhere.default = Reply(json=anthropic_message("from elsewhere"))
        a.default = redirect(status, elsewhere, "/v1/messages")
        b.default = Reply(json=anthropic_message("from b"))
        d = await start_daemon(
            chain_yaml(provider_yaml("a", a.url, extra=KEY), provider_yaml("b", b.url)),
            env={"A_KEY": TEST_API_KEY},
        )
        got, headers, answer = await ask(d.url)
        assert a.requests[0].headers["x-api-key"] == TEST_API_KEY
        assert elsewhere.requests == []
    assert got == 200
    assert answer["content"][0]["text"] == "from b"
    assert headers["x-coderouter-fallback-reason"] == f"a=http_{status}"


async def test_an_openai_compat_providers_redirect_is_not_followed(
    start_daemon: StartDaemon,
) -> None:
    """The bearer key would be dropped on the way, but the prompt not."""
    async with FakeUpstream() as a, FakeUpstream() as elsewhere:
        elsewhere.default = Reply(json=openai_completion("from elsewhere"), dialect="openai")
        a.default = redirect(307, elsewhere, "/v1/chat/completions")
        d = await start_daemon(
            chain_yaml(provider_yaml("a", a.url + "/v1", kind="openai_compat", extra=KEY)),
            env={"A_KEY": TEST_API_KEY},
        )
        got, _, answer = await ask(d.url)
        assert len(a.requests) == 1
        assert elsewhere.requests == []
    assert got == 503
    assert "a: http_307" in answer["error"]["message"]


async def test_a_redirect_is_logged_as_a_failed_attempt_naming_its_status(
    start_daemon: StartDaemon,
) -> None:
    async with FakeUpstream() as a, FakeUpstream() as elsewhere:
        a.default = redirect(307, elsewhere, "/v1/messages")
        d = await start_daemon(chain_yaml(provider_yaml("a", a.url)))
        with capture_logs() as logs:
            got, _, _ = await ask(d.url)
    assert got == 503
    [line] = [e for e in logs if e["event"] == "request.completed"]
    [attempt] = line["attempts"]
    assert (attempt["outcome"], attempt["reason"], attempt["status"]) == ("failed", "http_307", 307)
    assert attempt["detail"] == "redirect not followed"


async def test_a_probe_does_not_follow_a_redirect() -> None:
    async with FakeUpstream() as a, FakeUpstream() as elsewhere:
        elsewhere.default = Reply(json=anthropic_message("pong"))
        a.default = redirect(307, elsewhere, "/v1/messages")
        config = ProviderConfig(name="a", kind="anthropic", base_url=a.url, model="m")
        adapter = AnthropicAdapter(config, api_key=TEST_API_KEY)
        try:
            outcome = await probe(adapter, timeout_s=5, clock=SystemClock())
        finally:
            await adapter.close()
        assert len(a.requests) == 1
        assert elsewhere.requests == []
    assert (outcome.ok, outcome.status, outcome.reason) == (False, 307, "status_307")
