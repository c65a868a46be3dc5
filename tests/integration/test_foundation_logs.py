"""Log lines of a real `coderouterd serve`: the request id is on every line of a request.

structlog's capture_logs drops context variables, so only the JSON lines the
process writes to stderr show what an operator would see.
"""

from __future__ import annotations

import aiohttp
import pytest

from tests.conftest import chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_error, anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.process import StartServe

pytestmark = pytest.mark.timeout(20)

BODY = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hello"}]}


async def test_the_request_id_is_bound_to_every_log_line_of_the_request(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    rid = "rid-foundation-4e1c"
    fake_upstream.script(
        anthropic_error(503, "overloaded_error", "busy"), Reply(json=anthropic_message("ok"))
    )
    d = await serve_process(
        chain_yaml(provider_yaml("a", fake_upstream.url), provider_yaml("b", fake_upstream.url))
    )
    since = d.mark()
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{d.url}/v1/messages", json=BODY, headers={"x-request-id": rid}) as resp,
    ):
        assert resp.status == 200
        assert resp.headers["x-request-id"] == rid
    done = await d.wait_for_event("request.completed", since=since)
    failing = await d.wait_for_event("provider.failing", since=since)
    assert failing["provider"] == "a"
    # provider.failing is logged by an observer that is never handed the id:
    # it can only come from the request's bound context.
    assert failing.get("request_id") == rid
    assert done.get("request_id") == rid
    during = d.log_lines[since : d.log_lines.index(done) + 1]
    assert {line["event"] for line in during} >= {"provider.failing", "request.completed"}
    assert [line["event"] for line in during if line.get("request_id") != rid] == []
