"""The official openai SDK against the daemon: /v1/chat/completions to OpenAI-compatible providers."""

from __future__ import annotations

import asyncio

import aiohttp
import openai
import pytest
from structlog.testing import capture_logs

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import (
    anthropic_message,
    anthropic_stream_error,
    anthropic_text_stream,
    openai_completion,
    openai_error,
    openai_text_stream,
)
from tests.fakes.upstream import FakeUpstream, Reply

MESSAGES = [{"role": "user", "content": "hello"}]


def oai(url: str, extra: str = "") -> str:
    return provider_yaml("o", url + "/v1", kind="openai_compat", extra=extra)


def sdk(url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="client-key", max_retries=0, timeout=10)


async def test_non_streaming_passthrough(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Reply(json=openai_completion("hi there"), dialect="openai"))
    d = await start_daemon(
        chain_yaml(oai(fake_upstream.url, "api_key_env: OAI_KEY")), env={"OAI_KEY": "sk-oai"}
    )
    async with sdk(d.url) as client:
        raw = await client.chat.completions.with_raw_response.create(model="x", messages=MESSAGES)
    completion = raw.parse()
    assert completion.choices[0].message.content == "hi there"
    assert raw.headers["x-coderouter-provider"] == "o"
    sent = fake_upstream.requests[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.json["model"] == "o-model"
    assert sent.headers["authorization"] == "Bearer sk-oai"


# The usage-only chunk has `choices: []`, or `null` (vLLM); the client did
# not ask for usage, or said it wants none.
@pytest.mark.parametrize("choices", [[], None], ids=["empty", "null"])
@pytest.mark.parametrize("options", [{}, {"stream_options": {"include_usage": False}}])
async def test_streaming_passthrough_requests_usage_but_hides_it(
    start_daemon: StartDaemon,
    fake_upstream: FakeUpstream,
    choices: list | None,
    options: dict,
) -> None:
    events = openai_text_stream(["Hel", "lo"])
    events[-1][1]["choices"] = choices
    fake_upstream.script(Reply(events=events, dialect="openai"))
    d = await start_daemon(chain_yaml(oai(fake_upstream.url)))
    with capture_logs() as logs:
        async with sdk(d.url) as client:
            stream = await client.chat.completions.create(
                model="x", messages=MESSAGES, stream=True, **options
            )
            chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello"
    # The client did not ask for usage: it gets no usage-only chunk ...
    assert all(c.choices for c in chunks)
    # ... but usage was requested upstream and accounted.
    assert fake_upstream.requests[0].json["stream_options"] == {"include_usage": True}
    done = next(e for e in logs if e["event"] == "request.completed")
    # Without prompt_tokens_details nothing is known of the cache: no zeros.
    assert done["usage"] == {"input_tokens": 10, "output_tokens": 5}


async def test_usage_chunk_forwarded_when_asked(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Reply(events=openai_text_stream(["a"]), dialect="openai"))
    d = await start_daemon(chain_yaml(oai(fake_upstream.url)))
    async with sdk(d.url) as client:
        stream = await client.chat.completions.create(
            model="x", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        chunks = [c async for c in stream]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 5


async def test_fallback_and_openai_error_envelope(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(
        openai_error(503, "loading model"),
        Reply(json=openai_completion("second"), dialect="openai"),
        openai_error(400, "bad param", error_type="invalid_request_error"),
    )
    d = await start_daemon(
        chain_yaml(
            oai(fake_upstream.url),
            provider_yaml("p", fake_upstream.url + "/v1", kind="openai_compat"),
        )
    )
    async with sdk(d.url) as client:
        raw = await client.chat.completions.with_raw_response.create(model="x", messages=MESSAGES)
        assert raw.headers["x-coderouter-fallback-reason"] == "o=http_503"
        with pytest.raises(openai.BadRequestError) as info:
            await client.chat.completions.create(model="x", messages=MESSAGES)
    assert info.value.body["message"] == "bad param"


async def test_bad_input_names_the_param(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    d = await start_daemon(chain_yaml(oai(fake_upstream.url)))
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{d.url}/v1/chat/completions", json={"model": "x", "messages": "hi"}) as resp,
    ):
        body = await resp.json()
        assert resp.status == 400
    assert body["error"]["param"] == "messages"
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"].startswith("messages: ")


async def test_all_failed_is_an_openai_error(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = openai_error(500, "boom")
    d = await start_daemon(chain_yaml(oai(fake_upstream.url)))
    async with sdk(d.url) as client:
        with pytest.raises(openai.InternalServerError) as info:
            await client.chat.completions.create(model="x", messages=MESSAGES)
    assert info.value.status_code == 503
    assert info.value.body["attempts"][0]["reason"] == "http_500"


async def raw_chat_stream(url: str) -> bytes:
    """A streamed chat completion's bytes, as they came."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{url}/v1/chat/completions",
            json={"model": "x", "messages": MESSAGES, "stream": True},
        ) as resp,
    ):
        return await resp.read()


async def test_keepalive_comments_and_in_stream_error(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(
        Reply(
            events=openai_text_stream(["a", "b", "c"]),
            dialect="openai",
            delay_before_first_event=0.4,
            disconnect_after_events=3,
        )
    )
    top = "server: {keepalive_after_s: 0.1, keepalive_interval_s: 0.1}\n"
    d = await start_daemon(chain_yaml(oai(fake_upstream.url), top=top))
    raw = await raw_chat_stream(d.url)
    assert raw.startswith(b": keep-alive\n\n")
    assert raw.rstrip().endswith(b"}")
    last = raw.rstrip().rsplit(b"\n\n", 1)[-1]
    assert last.startswith(b'data: {"error":')
    async with sdk(d.url) as client:
        fake_upstream.script(
            Reply(
                events=openai_text_stream(["a", "b"]), dialect="openai", disconnect_after_events=2
            )
        )
        with pytest.raises(openai.APIError):
            stream = await client.chat.completions.create(model="x", messages=MESSAGES, stream=True)
            async for _ in stream:
                pass


async def test_keepalive_comments_mid_stream_are_skipped_by_the_sdk(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    def silent_after_a() -> Reply:
        resume = asyncio.Event()
        asyncio.get_running_loop().call_later(0.5, resume.set)
        return Reply(
            events=openai_text_stream(["a", "b"]),
            dialect="openai",
            pause_after_frames=2,
            resume=resume,
        )

    top = "server: {keepalive_after_s: 0.1, keepalive_interval_s: 0.1}\n"
    d = await start_daemon(chain_yaml(oai(fake_upstream.url), top=top))
    fake_upstream.script(silent_after_a())
    raw = await raw_chat_stream(d.url)
    a, b = raw.index(b'"content":"a"'), raw.index(b'"content":"b"')
    assert raw[a:b].count(b"\n: keep-alive\n\n") >= 2
    fake_upstream.script(silent_after_a())
    async with sdk(d.url) as client:
        stream = await client.chat.completions.create(model="x", messages=MESSAGES, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "ab"


async def test_max_output_tokens_clamps(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Reply(json=openai_completion("ok"), dialect="openai"))
    d = await start_daemon(chain_yaml(oai(fake_upstream.url, "max_output_tokens: 100")))
    with capture_logs() as logs:
        async with sdk(d.url) as client:
            await client.chat.completions.create(model="x", messages=MESSAGES, max_tokens=5000)
    assert fake_upstream.requests[0].json["max_tokens"] == 100
    [degraded] = [e for e in logs if e["event"] == "capability.degraded"]
    assert degraded["provider"] == "o" and "max_tokens" in degraded["dropped"][0]


async def test_an_anthropic_providers_error_mid_stream_reaches_an_openai_client_in_its_words(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    events = anthropic_text_stream(["partial "])[:3]
    events.append(anthropic_stream_error("overloaded_error", "the GPU is busy elsewhere"))
    fake_upstream.script(Reply(events=events))
    d = await start_daemon(chain_yaml(provider_yaml("claude", fake_upstream.url)))
    text = ""
    async with sdk(d.url) as client:
        stream = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "go"}], stream=True
        )
        with pytest.raises(openai.APIError) as caught:
            async for chunk in stream:
                text += "".join(c.delta.content or "" for c in chunk.choices)
    assert text == "partial "
    assert "the GPU is busy elsewhere" in caught.value.message
    assert isinstance(caught.value.body, dict) and caught.value.body["type"] == "overloaded_error"


@pytest.mark.parametrize("kind", ["anthropic", "openai_compat"])
async def test_null_stream_and_profile_are_fields_left_out(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, kind: str
) -> None:
    """OpenAI's schema allows `stream: null` (clients that serialise every
    field of their own request type send it): an answer, not a 400."""
    fake_upstream.default = (
        Reply(json=anthropic_message("ok"))
        if kind == "anthropic"
        else Reply(json=openai_completion("ok"), dialect="openai")
    )
    url = fake_upstream.url + ("/v1" if kind == "openai_compat" else "")
    d = await start_daemon(chain_yaml(provider_yaml("p", url, kind=kind)))
    body = {"model": "x", "messages": MESSAGES, "stream": None, "profile": None}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{d.url}/v1/chat/completions", json=body) as resp,
    ):
        assert resp.status == 200, await resp.text()
        answer = await resp.json()
    assert answer["choices"][0]["message"]["content"] == "ok"
    assert "profile" not in (fake_upstream.requests[0].json or {})


@pytest.mark.parametrize("where", ["provider", "registry"])
@pytest.mark.parametrize(
    "path",
    [
        ("openai", "openai_compat", "max_tokens"),
        ("openai", "openai_compat", "max_completion_tokens"),
        ("openai", "anthropic", "max_tokens"),
        ("openai", "anthropic", "max_completion_tokens"),
        ("anthropic", "anthropic", "max_tokens"),
        ("anthropic", "openai_compat", "max_tokens"),
    ],
    ids="-".join,
)
async def test_the_output_ceiling_holds_on_every_path(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, where: str, path: tuple[str, str, str]
) -> None:
    """`max_output_tokens`, the provider's own or the capability registry's,
    clamps what any client asks of any kind of provider."""
    client, kind, key = path
    fake_upstream.default = (
        Reply(json=anthropic_message("ok"))
        if kind == "anthropic"
        else Reply(json=openai_completion("ok"), dialect="openai")
    )
    url = fake_upstream.url + ("/v1" if kind == "openai_compat" else "")
    ceiling = (
        "max_output_tokens: 1000"
        if where == "provider"
        else "capabilities: {max_output_tokens: 1000}"
    )
    d = await start_daemon(chain_yaml(provider_yaml("p", url, kind=kind, extra=ceiling)))
    route = "/v1/chat/completions" if client == "openai" else "/v1/messages"
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{d.url}{route}", json={"model": "x", "messages": MESSAGES, key: 5000}) as resp,
    ):
        assert resp.status == 200, await resp.text()
    sent = fake_upstream.requests[0].json
    asked = [sent[k] for k in ("max_tokens", "max_completion_tokens") if k in sent]
    assert asked and max(asked) == 1000


async def test_the_clients_other_stream_options_reach_the_provider(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Reply(dialect="openai", events=openai_text_stream(["ok"])))
    d = await start_daemon(chain_yaml(oai(fake_upstream.url)))
    async with sdk(d.url) as client:
        stream = await client.chat.completions.create(
            model="x",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_obfuscation": False},  # type: ignore[typeddict-unknown-key]
        )
        [c async for c in stream]
    sent = fake_upstream.requests[0].json["stream_options"]
    assert sent == {"include_obfuscation": False, "include_usage": True}
