"""Fallback: which failures move on to the next provider, and what the client sees."""

from __future__ import annotations

import socket

import aiohttp
import anthropic
import pytest
from structlog.testing import capture_logs

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_error, anthropic_message, anthropic_text_stream
from tests.fakes.upstream import FakeUpstream, Reply

MESSAGES = [{"role": "user", "content": "hello"}]
BODY = {"model": "m", "max_tokens": 10, "messages": MESSAGES}


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def sdk(url: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=url, api_key="client-key", max_retries=0, timeout=10)


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (anthropic_error(408, "timeout_error", "slow"), "http_408"),
        (anthropic_error(409, "conflict", "conflict"), "http_409"),
        (anthropic_error(429, "rate_limit_error", "slow down"), "http_429"),
        (anthropic_error(500, "api_error", "boom"), "http_500"),
        (anthropic_error(503, "overloaded_error", "busy"), "http_503"),
        (anthropic_error(529, "overloaded_error", "busy"), "http_529"),
        # An overloaded_error is a reason to move on whatever status carries it.
        (anthropic_error(400, "overloaded_error", "busy"), "http_400"),
        (Reply(raw_body=b"<html>bad gateway</html>", status=502), "http_502"),
    ],
)
async def test_retryable_statuses_fall_through(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, failure: Reply, reason: str
) -> None:
    fake_upstream.script(failure, Reply(json=anthropic_message("from b")))
    d = await start_daemon(
        chain_yaml(provider_yaml("a", fake_upstream.url), provider_yaml("b", fake_upstream.url))
    )
    async with sdk(d.url) as client:
        raw = await client.messages.with_raw_response.create(**BODY)
    assert (await raw.parse()).content[0].text == "from b"
    assert raw.headers["x-coderouter-provider"] == "b"
    assert raw.headers["x-coderouter-fallback-reason"] == f"a={reason}"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
async def test_other_client_errors_are_returned_as_they_are(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, status: int
) -> None:
    fake_upstream.script(anthropic_error(status, "invalid_request_error", "your fault"))
    d = await start_daemon(
        chain_yaml(provider_yaml("a", fake_upstream.url), provider_yaml("b", fake_upstream.url))
    )
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{d.url}/v1/messages", json=BODY) as resp,
    ):
        body = await resp.json()
        assert resp.status == status
        assert resp.headers["x-coderouter-provider"] == "a"
        # Nothing before it failed or was skipped.
        assert "x-coderouter-fallback-path" not in resp.headers
    assert body["error"]["message"] == "your fault"
    assert len(fake_upstream.requests) == 1


async def test_connect_error_falls_through(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Reply(events=anthropic_text_stream(["up"])))
    d = await start_daemon(
        chain_yaml(provider_yaml("dead", closed_port_url()), provider_yaml("b", fake_upstream.url))
    )
    async with sdk(d.url) as client, client.messages.stream(**BODY) as stream:
        message = await stream.get_final_message()
        headers = stream.response.headers
    assert message.content[0].text == "up"
    assert headers["x-coderouter-fallback-reason"] == "dead=connect_error"


async def test_first_byte_timeout_falls_through(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(
        Reply(events=anthropic_text_stream(["late"]), delay_before_first_event=5),
        Reply(events=anthropic_text_stream(["fast"])),
    )
    slow = provider_yaml("slow", fake_upstream.url, extra="timeouts: {first_byte_s: 0.3}")
    d = await start_daemon(chain_yaml(slow, provider_yaml("b", fake_upstream.url)))
    async with sdk(d.url) as client, client.messages.stream(**BODY) as stream:
        message = await stream.get_final_message()
        headers = stream.response.headers
    assert message.content[0].text == "fast"
    assert headers["x-coderouter-fallback-reason"] == "slow=timeout_first_byte"


async def test_non_streaming_first_byte_timeout(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(
        Reply(json=anthropic_message("late"), delay_before_headers=5),
        Reply(json=anthropic_message("fast")),
    )
    slow = provider_yaml("slow", fake_upstream.url, extra="timeouts: {first_byte_s: 0.3}")
    d = await start_daemon(chain_yaml(slow, provider_yaml("b", fake_upstream.url)))
    async with sdk(d.url) as client:
        message = await client.messages.create(**BODY)
    assert message.content[0].text == "fast"


async def test_error_event_before_content_falls_through(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    overloaded = [
        anthropic_text_stream(["x"])[0],
        ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}),
    ]
    fake_upstream.script(Reply(events=overloaded), Reply(events=anthropic_text_stream(["ok"])))
    d = await start_daemon(
        chain_yaml(provider_yaml("a", fake_upstream.url), provider_yaml("b", fake_upstream.url))
    )
    async with sdk(d.url) as client, client.messages.stream(**BODY) as stream:
        message = await stream.get_final_message()
    assert message.content[0].text == "ok"


async def test_all_failed_gives_one_anthropic_error_listing_attempts(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(anthropic_error(500, "api_error", "boom"))
    d = await start_daemon(
        chain_yaml(provider_yaml("a", fake_upstream.url), provider_yaml("dead", closed_port_url()))
    )
    async with sdk(d.url) as client:
        with pytest.raises(anthropic.APIStatusError) as info:
            await client.messages.create(**BODY)
    err = info.value
    assert err.status_code == 503
    body = err.body
    assert isinstance(body, dict)
    assert body["type"] == "error"
    assert body["request_id"] == err.response.headers["x-request-id"]
    assert body["error"]["type"] == "overloaded_error"
    assert body["error"]["attempts"] == [
        {"provider": "a", "reason": "http_500", "status": 500},
        {"provider": "dead", "reason": "connect_error", "status": None},
    ]


async def test_all_rate_limited_gives_429(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(
        anthropic_error(429, "rate_limit_error", "slow"),
        anthropic_error(429, "rate_limit_error", "slow"),
    )
    d = await start_daemon(
        chain_yaml(provider_yaml("a", fake_upstream.url), provider_yaml("b", fake_upstream.url))
    )
    async with sdk(d.url) as client:
        with pytest.raises(anthropic.RateLimitError) as info:
            await client.messages.create(**BODY)
    body = info.value.body
    assert isinstance(body, dict)
    assert body["type"] == "error"
    assert body["error"]["type"] == "rate_limit_error"
    assert body["error"]["attempts"] == [
        {"provider": "a", "reason": "http_429", "status": 429},
        {"provider": "b", "reason": "http_429", "status": 429},
    ]


@pytest.mark.parametrize("stream", [False, True])
async def test_all_rate_limited_passes_on_the_soonest_retry_after(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, stream: bool
) -> None:
    """The SDKs (Claude Code's too) wait what Retry-After says before they
    retry: the soonest any rate-limited provider named."""

    def limited(wait: str | None) -> Reply:
        reply = anthropic_error(429, "rate_limit_error", "slow")
        return Reply(status=429, json=reply.json, headers={"retry-after": wait} if wait else {})

    fake_upstream.script(limited("20"), limited(None), limited("3"))
    d = await start_daemon(
        chain_yaml(
            provider_yaml("a", fake_upstream.url),
            provider_yaml("b", fake_upstream.url),
            provider_yaml("c", fake_upstream.url),
        )
    )
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{d.url}/v1/messages", json={**BODY, "stream": stream}) as resp,
    ):
        assert resp.status == 429
        assert resp.headers["retry-after"] == "3"
    fake_upstream.script(limited("20"), anthropic_error(500, "api_error", "down"), limited("3"))
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{d.url}/v1/messages", json=BODY) as resp,
    ):
        assert resp.status == 503
        assert "retry-after" not in resp.headers


async def test_all_failed_streaming_before_headers_is_an_http_error(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    d = await start_daemon(chain_yaml(provider_yaml("dead", closed_port_url())))
    async with sdk(d.url) as client:
        with pytest.raises(anthropic.APIStatusError) as info:
            async with client.messages.stream(**BODY) as stream:
                await stream.get_final_message()
    assert info.value.status_code == 503


PAID_PROFILES = """\
  - name: default
    providers: [cloud, local]
  - name: rich
    providers: [cloud, local]
    allow_paid: true
"""


async def test_paid_provider_skipped_unless_allowed(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("answer"))
    cloud = provider_yaml("cloud", fake_upstream.url, extra="paid: true")
    d = await start_daemon(
        chain_yaml(cloud, provider_yaml("local", fake_upstream.url), profiles=PAID_PROFILES)
    )
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{d.url}/v1/messages", json=BODY) as resp:
            assert resp.status == 200
            assert resp.headers["x-coderouter-provider"] == "local"
            assert resp.headers["x-coderouter-fallback-reason"] == "cloud=paid_blocked"
        async with http.post(
            f"{d.url}/v1/messages", json=BODY, headers={"x-coderouter-mode": "rich"}
        ) as resp:
            assert resp.headers["x-coderouter-provider"] == "cloud"
    assert [r.json["model"] for r in fake_upstream.requests] == ["local-model", "cloud-model"]


async def test_global_allow_paid(start_daemon: StartDaemon, fake_upstream: FakeUpstream) -> None:
    fake_upstream.default = Reply(json=anthropic_message("answer"))
    cloud = provider_yaml("cloud", fake_upstream.url, extra="paid: true")
    d = await start_daemon(chain_yaml(cloud, top="allow_paid: true\n"))
    async with sdk(d.url) as client:
        raw = await client.messages.with_raw_response.create(**BODY)
    assert raw.headers["x-coderouter-provider"] == "cloud"


async def test_only_paid_providers_blocked_says_so(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    cloud = provider_yaml("cloud", fake_upstream.url, extra="paid: true")
    d = await start_daemon(chain_yaml(cloud))
    async with sdk(d.url) as client:
        with pytest.raises(anthropic.APIStatusError) as info:
            await client.messages.create(**BODY)
    assert info.value.status_code == 503
    assert "cloud: paid_blocked" in info.value.message
    assert fake_upstream.requests == []


async def test_request_completed_log_line(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(
        anthropic_error(503, "overloaded_error", "busy"), Reply(events=anthropic_text_stream(["a"]))
    )
    d = await start_daemon(
        chain_yaml(provider_yaml("a", fake_upstream.url), provider_yaml("b", fake_upstream.url))
    )
    with capture_logs() as logs:
        async with sdk(d.url) as client, client.messages.stream(**BODY) as stream:
            await stream.get_final_message()
            rid = stream.response.headers["x-request-id"]
    done = [e for e in logs if e["event"] == "request.completed"]
    assert len(done) == 1
    line = done[0]
    assert line["request_id"] == rid
    assert line["provider"] == "b"
    assert line["profile"] == "default"
    assert line["stream"] is True
    assert line["status"] == 200
    assert [a["outcome"] for a in line["attempts"]] == ["failed", "ok"]
    assert line["usage"]["input_tokens"] == 10
    assert line["usage"]["output_tokens"] == 5
    assert line["ttfb_ms"] > 0 and line["total_ms"] >= line["ttfb_ms"]
    failing = [e for e in logs if e["event"] == "provider.failing"]
    assert [e["provider"] for e in failing] == ["a"]


async def test_provider_state_changes_logged_once(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    d = await start_daemon(
        chain_yaml(provider_yaml("a", fake_upstream.url), provider_yaml("b", fake_upstream.url))
    )
    fake_upstream.script(
        *[anthropic_error(503, "overloaded_error", "x"), Reply(json=anthropic_message("b"))] * 3,
        Reply(json=anthropic_message("a is back")),
    )
    with capture_logs() as logs:
        async with sdk(d.url) as client:
            for _ in range(4):
                await client.messages.create(**BODY)
    events = [(e["event"], e["provider"]) for e in logs if e["event"].startswith("provider.")]
    assert events == [("provider.failing", "a"), ("provider.recovered", "a")]
    status = d.daemon.status()
    a = next(p for p in status.providers if p.name == "a")
    assert a.state == "ok" and a.consecutive_failures == 0
