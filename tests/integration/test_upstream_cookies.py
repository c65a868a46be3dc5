"""An upstream's cookies are not kept: one adapter session carries every
client's requests, and a cookie set for one client (a gateway's session for
its forwarded key) would go out with the next client's."""

from __future__ import annotations

import aiohttp
import pytest

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Recorded, Reply

pytestmark = pytest.mark.timeout(20)

BODY = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
KEY_A = "client-a-key-0123456789"
KEY_B = "client-b-key-9876543210"


async def test_a_cookie_an_upstream_set_for_one_client_goes_with_no_later_request(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    def answer(req: Recorded) -> Reply:
        who = req.headers.get("x-api-key", "")
        return Reply(
            json=anthropic_message("hi"),
            headers={"set-cookie": f"gw_session=session-of-{who}; Path=/"},
        )

    fake_upstream.responder = answer
    # A host name, as a real gateway has: aiohttp's jar ignores cookies of bare IPs.
    url = fake_upstream.url.replace("127.0.0.1", "localhost")
    d = await start_daemon(chain_yaml(provider_yaml("a", url, extra="forward_client_key: true")))
    async with aiohttp.ClientSession() as http:
        for key in (KEY_A, KEY_B, KEY_A):
            async with http.post(
                f"{d.url}/v1/messages", json=BODY, headers={"x-api-key": key}
            ) as resp:
                assert resp.status == 200
    sent = [(r.headers["x-api-key"], r.headers.get("cookie")) for r in fake_upstream.requests]
    assert sent == [(KEY_A, None), (KEY_B, None), (KEY_A, None)]
