"""Ingress: what reaches the upstream, how a profile is chosen, and how bad input is answered."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiohttp
import anthropic
import msgspec
import openai
import pytest

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply

USER_HI = {"role": "user", "content": "hi"}

TWO_PROFILES = """\
  - name: default
    providers: [a]
  - name: other
    providers: [b]
"""


async def post(url: str, body: bytes | dict, headers: dict | None = None) -> tuple[int, dict, dict]:
    async with aiohttp.ClientSession() as http:
        kwargs = {"json": body} if isinstance(body, dict) else {"data": body}
        async with http.post(f"{url}/v1/messages", headers=headers or {}, **kwargs) as resp:
            return resp.status, resp.headers.copy(), await resp.json(content_type=None)


@pytest.fixture
def answer(fake_upstream: FakeUpstream) -> FakeUpstream:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    return fake_upstream


async def two(start_daemon: StartDaemon, fake: FakeUpstream, **kw) -> str:
    d = await start_daemon(
        chain_yaml(
            provider_yaml("a", fake.url),
            provider_yaml("b", fake.url),
            profiles=TWO_PROFILES,
            top="mode_aliases: {second: other}\n",
        ),
        **kw,
    )
    return d.url


async def test_unknown_fields_pass_through_byte_for_byte(
    start_daemon: StartDaemon, answer: FakeUpstream
) -> None:
    url = await two(start_daemon, answer)
    body = (
        b'{"model":"claude-x","max_tokens":5,'
        b'"messages":[{"role":"user","content":[{"type":"text","text":"hi","cache_control":{"type":"ephemeral"}}]},'
        b'{"role":"system","content":"mid-conversation system"},{"role":"user","content":"go"}],'
        b'"thinking":{"type":"adaptive"},"context_management":{"edits":[{"type":"clear_tool_uses_20250919"}]},'
        b'"output_config":{"effort":"high"},"metadata":{"user_id":"u-1"},'
        b'"future_field":{"nested":[1,2.50,"\\u00e9",null]},"profile":"default"}'
    )
    status, _, _ = await post(url, body)
    assert status == 200
    decode = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode
    sent, original = decode(answer.requests[0].body), decode(body)
    assert bytes(sent.pop("model")) == b'"a-model"'
    del original["model"], original["profile"]
    assert "profile" not in sent
    assert {k: bytes(v) for k, v in sent.items()} == {k: bytes(v) for k, v in original.items()}


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ({"headers": {"x-coderouter-mode": "other"}}, "b"),
        ({"body": {"profile": "other"}}, "b"),
        ({"body": {"model": "other"}}, "b"),  # a model named like a profile selects it
        ({"body": {"model": "b"}}, "b"),  # ... or like a provider
        ({"body": {"model": "claude-sonnet-4"}}, "a"),  # anything else: the default profile
        ({"headers": {"x-coderouter-mode": "default"}, "body": {"profile": "other"}}, "a"),
        # A mode alias (mode_aliases: {second: other}), and the profile header.
        ({"headers": {"x-coderouter-mode": "second"}}, "b"),
        ({"headers": {"x-coderouter-profile": "other"}}, "b"),
        ({"headers": {"x-coderouter-profile": "default", "x-coderouter-mode": "second"}}, "a"),
    ],
)
async def test_profile_selection(
    start_daemon: StartDaemon, answer: FakeUpstream, how: dict, expected: str
) -> None:
    url = await two(start_daemon, answer)
    body = {
        "model": "m",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "x"}],
        **how.get("body", {}),
    }
    status, headers, _ = await post(url, body, how.get("headers"))
    assert status == 200
    assert headers["x-coderouter-provider"] == expected


@pytest.mark.parametrize(
    ("body", "headers", "field"),
    [
        (b"{not json", {}, "body"),
        (b"", {}, "body"),
        (b"[1, 2]", {}, "body"),
        (b'{"model": "m", "max_tokens": 5}', {}, "messages"),
        (b'{"model": 7, "messages": []}', {}, "model"),
        (b'{"model": "m", "messages": {}}', {}, "messages"),
        (b'{"model": "m", "messages": [], "stream": "yes"}', {}, "stream"),
        (b'{"model": "m", "messages": [{}], "profile": "nope"}', {}, "profile"),
        (b'{"model": "m", "messages": [{}]}', {"x-coderouter-mode": "nope"}, "x-coderouter-mode"),
        (
            b'{"model": "m", "messages": [{}]}',
            {"x-coderouter-profile": "second"},
            "x-coderouter-profile",
        ),
    ],
)
async def test_bad_input_gets_an_anthropic_error_naming_the_field(
    start_daemon: StartDaemon, answer: FakeUpstream, body: bytes, headers: dict, field: str
) -> None:
    url = await two(start_daemon, answer)
    status, resp_headers, err = await post(
        url, body, {"content-type": "application/json", **headers}
    )
    assert status == 400
    assert err["type"] == "error"
    assert err["error"]["type"] == "invalid_request_error"
    assert err["error"]["field"] == field
    assert err["error"]["message"].startswith(f"{field}: ")
    assert err["request_id"] == resp_headers["x-request-id"]
    assert answer.requests == []


async def test_body_over_the_cap_gets_413(start_daemon: StartDaemon, answer: FakeUpstream) -> None:
    d = await start_daemon(
        chain_yaml(provider_yaml("a", answer.url), top="server: {max_body_bytes: 2048}\n")
    )
    big = {"model": "m", "messages": [{"role": "user", "content": "x" * 4096}]}
    status, _, err = await post(d.url, big)
    assert status == 413
    assert err["error"]["type"] == "request_too_large"
    assert "2048" in err["error"]["message"]
    assert answer.requests == []


async def test_headers_forwarded_and_credentials_from_the_environment(
    start_daemon: StartDaemon, answer: FakeUpstream
) -> None:
    a = provider_yaml(
        "a", answer.url, extra="api_key_env: UPSTREAM_KEY\nextra_headers: {x-tenant: t1}"
    )
    d = await start_daemon(chain_yaml(a), env={"UPSTREAM_KEY": "sk-upstream-secret"})
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    client_headers = {
        "anthropic-version": "2099-01-01",
        "anthropic-beta": "tools-2024,other",
        "x-api-key": "client-key",
        "x-claude-code-session-id": "s-1",
    }
    await post(d.url, body, client_headers)
    await post(d.url, body)
    sent, bare = answer.requests[0].headers, answer.requests[1].headers
    assert sent["x-api-key"] == "sk-upstream-secret"
    assert sent["anthropic-version"] == "2099-01-01"
    assert sent["anthropic-beta"] == "tools-2024,other"
    assert sent["x-tenant"] == "t1"
    assert "authorization" not in sent and "x-claude-code-session-id" not in sent
    # A client that sends no version still gets a valid upstream request.
    assert bare["anthropic-version"] == "2023-06-01"
    assert "anthropic-beta" not in bare


async def test_betas_sent_on_two_header_lines_all_go_on(
    start_daemon: StartDaemon, answer: FakeUpstream
) -> None:
    d = await start_daemon(chain_yaml(provider_yaml("a", answer.url)))
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    lines = [("anthropic-beta", "interleaved-thinking-2025-05-14"), ("anthropic-beta", "ctx-1m")]
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{d.url}/v1/messages", json=body, headers=lines) as resp,
    ):
        assert resp.status == 200
    assert answer.requests[0].headers.getall("anthropic-beta") == [
        "interleaved-thinking-2025-05-14, ctx-1m"
    ]


async def test_client_key_never_forwarded_unless_configured(
    start_daemon: StartDaemon, answer: FakeUpstream
) -> None:
    closed = provider_yaml("closed", answer.url)
    fwd = provider_yaml("fwd", answer.url, extra="forward_client_key: true")
    profiles = "  - name: default\n    providers: [closed]\n  - name: fwd\n    providers: [fwd]\n"
    d = await start_daemon(chain_yaml(closed, fwd, profiles=profiles))
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    await post(d.url, body, {"x-api-key": "client-secret"})
    await post(d.url, body, {"x-api-key": "client-secret", "x-coderouter-mode": "fwd"})
    assert "x-api-key" not in answer.requests[0].headers
    assert answer.requests[1].headers["x-api-key"] == "client-secret"


async def test_missing_api_key_skips_the_provider(
    start_daemon: StartDaemon, answer: FakeUpstream
) -> None:
    keyed = provider_yaml("keyed", answer.url, extra="api_key_env: NOT_SET_ANYWHERE")
    d = await start_daemon(chain_yaml(keyed, provider_yaml("b", answer.url)), env={})
    status, headers, _ = await post(d.url, {"model": "m", "messages": [USER_HI]})
    assert status == 200
    assert headers["x-coderouter-fallback-reason"] == "keyed=missing_api_key"


async def test_request_id_honoured_or_generated(
    start_daemon: StartDaemon, answer: FakeUpstream
) -> None:
    url = await two(start_daemon, answer)
    body = {"model": "m", "messages": [USER_HI]}
    _, headers, _ = await post(url, body, {"x-request-id": "trace-123.abc"})
    assert headers["x-request-id"] == "trace-123.abc"
    _, headers, _ = await post(url, body, {"x-request-id": "bad id\twith spaces"})
    assert headers["x-request-id"].startswith("req_")
    # A retry with the same id is a request of its own: the request log keys on it.
    _, headers, _ = await post(url, body, {"x-request-id": "trace-123.abc"})
    generated = headers["x-request-id"]
    assert generated.startswith("req_")
    # So is a request sent with an id the daemon generated (a client echoing
    # what it got): that id names another request, maybe one still running.
    _, headers, _ = await post(url, body, {"x-request-id": generated})
    assert headers["x-request-id"].startswith("req_") and headers["x-request-id"] != generated


async def test_a_client_id_reused_after_a_restart_gets_a_new_one(
    start_daemon: StartDaemon, answer: FakeUpstream, tmp_path: Path
) -> None:
    state_dir = tmp_path / "kept-state"
    config = chain_yaml(provider_yaml("a", answer.url))
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    first = await start_daemon(config, state_dir=state_dir)
    _, headers, _ = await post(first.url, body, {"x-request-id": "trace-1"})
    assert headers["x-request-id"] == "trace-1"
    await first.runner.cleanup()
    await first.state.close()
    # The same state, a new process: the id is in the request log already.
    second = await start_daemon(config, state_dir=state_dir)
    _, headers, _ = await post(second.url, body, {"x-request-id": "trace-1"})
    assert headers["x-request-id"].startswith("req_")
    await second.state.writer.flush()
    with sqlite3.connect(second.state.path) as db:
        ids = {row[0] for row in db.execute("SELECT id FROM requests")}
    assert ids == {"trace-1", headers["x-request-id"]}
    assert second.state.writer.stats().failed_rows == 0


async def test_count_tokens_is_an_estimate(start_daemon: StartDaemon, answer: FakeUpstream) -> None:
    url = await two(start_daemon, answer)
    async with anthropic.AsyncAnthropic(base_url=url, api_key="k", max_retries=0) as client:
        small = await client.messages.count_tokens(
            model="m", messages=[{"role": "user", "content": "hi"}]
        )
        large = await client.messages.count_tokens(
            model="m", messages=[{"role": "user", "content": "hi " * 1000}]
        )
        # As Claude Code asks: its system prompt and tools count too.
        tool = {"name": "Read", "input_schema": {"type": "object"}, "description": "d " * 500}
        whole = await client.messages.count_tokens(
            model="m",
            system=[{"type": "text", "text": "s " * 1000}],
            tools=[tool],
            messages=[{"role": "user", "content": "hi"}],
        )
    assert 0 < small.input_tokens < 20
    assert 600 < large.input_tokens < 1200
    assert 700 < whole.input_tokens < 1500
    assert answer.requests == []


async def test_models_lists_profiles_and_providers_for_both_sdks(
    start_daemon: StartDaemon, answer: FakeUpstream
) -> None:
    url = await two(start_daemon, answer)
    # Strict: every field the Anthropic SDK's ModelInfo requires is there.
    async with anthropic.AsyncAnthropic(
        base_url=url, api_key="k", max_retries=0, _strict_response_validation=True
    ) as client:
        a_models = [m async for m in client.models.list()]
    a_ids = [m.id for m in a_models]
    assert {m.lifecycle for m in a_models} == {"active"}
    async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0) as client:
        o_ids = [m.id async for m in client.models.list()]
    assert a_ids == o_ids == ["default", "other", "a", "b"]


async def test_a_model_is_retrieved_by_id_with_either_sdk(
    start_daemon: StartDaemon, answer: FakeUpstream
) -> None:
    url = await two(start_daemon, answer)
    async with anthropic.AsyncAnthropic(base_url=url, api_key="k", max_retries=0) as client:
        got = await client.models.retrieve("other")
        assert (got.id, got.display_name) == ("other", "profile other: b")
        with pytest.raises(anthropic.NotFoundError, match="no model 'nope'"):
            await client.models.retrieve("nope")
    async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0) as client:
        assert (await client.models.retrieve("a")).id == "a"
        with pytest.raises(openai.NotFoundError):
            await client.models.retrieve("nope")


async def test_a_provider_named_like_a_profile_is_listed_once(
    start_daemon: StartDaemon, answer: FakeUpstream
) -> None:
    # `model: local` selects the profile, so only the profile is listed.
    profiles = "  - {name: local, providers: [cloud, local]}\n"
    d = await start_daemon(
        chain_yaml(
            provider_yaml("local", answer.url),
            provider_yaml("cloud", answer.url),
            profiles=profiles,
        )
    )
    async with openai.AsyncOpenAI(base_url=f"{d.url}/v1", api_key="k", max_retries=0) as client:
        listed = [(m.id, m.model_extra) async for m in client.models.list()]
    assert [i for i, _ in listed] == ["local", "cloud"]
    assert listed[0][1] is not None and listed[0][1]["display_name"].startswith("profile local")


@pytest.mark.parametrize("path", ["/", "/healthz"])
async def test_health_routes(start_daemon: StartDaemon, answer: FakeUpstream, path: str) -> None:
    url = await two(start_daemon, answer)
    async with aiohttp.ClientSession() as http:
        async with http.get(url + path) as resp:
            assert resp.status == 200
            assert (await resp.json())["status"] == "ok"
        async with http.head(url + path) as resp:
            assert resp.status == 200


async def test_unknown_route_and_method_get_json_errors(
    start_daemon: StartDaemon, answer: FakeUpstream
) -> None:
    url = await two(start_daemon, answer)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/v1/nothing") as resp:
            assert resp.status == 404
            assert (await resp.json())["error"]["type"] == "not_found_error"
        async with http.get(f"{url}/v1/messages") as resp:
            assert resp.status == 405
            assert "POST" in resp.headers["allow"]
            assert (await resp.json())["type"] == "error"
        # Routes only OpenAI clients call answer in their envelope.
        for path in ("/v1/chat/completions/extra", "/v1/responses", "/v1/embeddings"):
            async with http.post(f"{url}{path}", json={}) as resp:
                assert resp.status == 404
                body = await resp.json()
                assert "type" not in body and body["error"]["type"] == "not_found_error"
        async with http.get(f"{url}/v1/chat/completions") as resp:
            assert resp.status == 405 and "type" not in await resp.json()
