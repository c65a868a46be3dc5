"""A user and password in `base_url` go as basic auth in the Authorization
header: a provider that puts a bearer key there too cannot send both."""

from __future__ import annotations

import base64
from pathlib import Path

import aiohttp
import anthropic
import pytest

from coderouterd.config import load_config
from coderouterd.errors import ConfigError
from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.timeout(30)

PASSWORD = "proxy-pass-0123456789"  # noqa: S105 - a test value
CLIENT_TOKEN = "client-token-0123"  # noqa: S105 - a test value
BODY = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hello"}]}


def with_password(url: str) -> str:
    return url.replace("http://", f"http://proxyuser:{PASSWORD}@")


@pytest.mark.parametrize(
    ("extra", "named"),
    [("api_key_env: OAI_KEY", "api_key_env"), ("forward_client_key: true", "forward_client_key")],
)
def test_an_openai_compat_bearer_key_beside_a_base_url_password_is_refused(
    tmp_path: Path, extra: str, named: str
) -> None:
    path = tmp_path / "c.yaml"
    url = with_password("http://127.0.0.1:8080") + "/v1"
    path.write_text(chain_yaml(provider_yaml("o", url, kind="openai_compat", extra=extra)))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    [problem] = info.value.problems
    assert problem.path == "providers[0].base_url"
    assert named in problem.message
    assert "cannot carry both" in problem.message
    assert PASSWORD not in str(info.value)


async def test_a_forwarded_client_bearer_goes_without_the_base_url_password(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """An Anthropic client may authenticate with a bearer token (the SDK
    sends its key so): forwarded, it is the request's Authorization, and the
    base_url's basic auth stays out. A client sending x-api-key leaves the
    header to the basic auth."""
    fake_upstream.default = Reply(json=anthropic_message("hi"))
    url = with_password(fake_upstream.url)
    d = await start_daemon(chain_yaml(provider_yaml("a", url, extra="forward_client_key: true")))
    async with anthropic.AsyncAnthropic(
        base_url=d.url, auth_token=CLIENT_TOKEN, max_retries=0, timeout=10
    ) as client:
        await client.messages.create(**BODY)
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{d.url}/v1/messages", json=BODY, headers={"x-api-key": "client-key-0123"}) as r,
    ):
        assert r.status == 200, await r.text()
    by_bearer, by_key = (r.headers for r in fake_upstream.requests)
    basic = "Basic " + base64.b64encode(f"proxyuser:{PASSWORD}".encode()).decode()
    assert (by_bearer.getall("authorization"), "x-api-key" in by_bearer) == (
        [f"Bearer {CLIENT_TOKEN}"],
        False,
    )
    assert (by_key.getall("authorization"), by_key["x-api-key"]) == ([basic], "client-key-0123")
