"""A provider the plan skipped as too small for the prompt, the rest all
failing: the client is told the prompt is too long (400, which Claude Code
compacts on), as it would have been had that provider been tried and
refused, not 503 (which has it send the same prompt again, and get 503
again for as long as the window is held)."""

from __future__ import annotations

import re
from typing import Any

import anthropic
import msgspec
import openai
import pytest

from coderouterd.clock import SystemClock
from coderouterd.config.model import ProviderConfig
from coderouterd.providers.anthropic import AnthropicAdapter
from coderouterd.providers.openai_compat import OpenAICompatAdapter
from coderouterd.routing.all_failed import window_overflow
from coderouterd.routing.call import Call
from coderouterd.routing.engine import Engine
from coderouterd.routing.plan import SKIP_CONTEXT, Plan, Skip
from coderouterd.routing.records import BaseObserver, RequestSummary
from coderouterd.routing.streams import KeepAlive
from coderouterd.routing.upstream import ProviderRoute
from coderouterd.routing.windows import Learned, LearnedWindows
from coderouterd.translate.capabilities import ModelCapabilities
from coderouterd.translate.codecs import codecs_for
from tests.conftest import RunningDaemon, StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_error, anthropic_message
from tests.fakes.upstream import FakeUpstream, Recorded, Reply
from tests.unit.wire.test_overflow import LLAMA_CPP

LONG = [{"role": "user", "content": "read this: " + "x" * 40_000}]
LONGER = [*LONG, {"role": "assistant", "content": "ok"}, {"role": "user", "content": "more"}]
TOO_LONG = re.compile(r"prompt is too long: (\d+) tokens > (\d+) maximum \((\w+): not tried")


def model_of(req: Recorded) -> str:
    return str((req.json or {}).get("model", "")).removesuffix("-model")


async def local_taught_then_cloud_down(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> RunningDaemon:
    """A daemon whose `local` (llama.cpp, a 32768-token window) refused LONG,
    which `cloud` then answered; `cloud` is down from then on."""
    cloud_up = True

    def choose(req: Recorded) -> Reply:
        if model_of(req) == "local":
            return Reply(status=400, json=LLAMA_CPP, dialect="openai")
        if cloud_up:
            # Usage as a real backend reports it for this prompt (else the cut
            # detector would learn a tiny window for cloud too).
            return Reply(json=anthropic_message("cloud", input_tokens=10_000))
        return anthropic_error(503, "overloaded_error", "cloud is down")

    fake_upstream.responder = choose
    d = await start_daemon(
        chain_yaml(
            provider_yaml("local", fake_upstream.url + "/v1", kind="openai_compat"),
            provider_yaml("cloud", fake_upstream.url),
        )
    )
    async with anthropic.AsyncAnthropic(
        base_url=d.url, api_key="k", max_retries=0, timeout=10
    ) as client:
        raw = await client.messages.with_raw_response.create(
            model="any",
            max_tokens=100,
            messages=LONG,  # type: ignore[arg-type]
        )
    assert raw.headers["x-coderouter-fallback-reason"] == "local=context_exceeded"
    d.daemon.deferred.flush()  # what the daemon does within a second
    cloud_up = False
    return d


async def test_a_provider_skipped_for_its_learned_window_still_answers_prompt_too_long(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    d = await local_taught_then_cloud_down(start_daemon, fake_upstream)
    async with anthropic.AsyncAnthropic(
        base_url=d.url, api_key="k", max_retries=0, timeout=10
    ) as client:
        with pytest.raises(anthropic.BadRequestError) as info:
            await client.messages.create(model="any", max_tokens=100, messages=LONGER)  # type: ignore[arg-type]
    err = info.value
    assert [model_of(r) for r in fake_upstream.requests] == ["local", "cloud", "cloud"]
    assert err.response.headers["x-coderouter-fallback-reason"] == (
        "local=context_too_small, cloud=http_503"
    )
    assert "x-coderouter-provider" not in err.response.headers
    body = err.body
    assert isinstance(body, dict) and body["error"]["type"] == "invalid_request_error"
    said = TOO_LONG.match(body["error"]["message"])
    assert said is not None, body
    # In the backend's own counts: the window it named, and this prompt
    # counted as its tokenizer counted the one it refused (40960 tokens for
    # a few tokens fewer).
    tokens, window, provider = int(said[1]), int(said[2]), said[3]
    assert (window, provider) == (32768, "local")
    assert 40960 < tokens < 41200


async def test_an_openai_client_gets_context_length_exceeded_for_the_skipped_provider(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    d = await local_taught_then_cloud_down(start_daemon, fake_upstream)
    async with openai.AsyncOpenAI(
        base_url=f"{d.url}/v1", api_key="k", max_retries=0, timeout=10
    ) as client:
        with pytest.raises(openai.BadRequestError) as info:
            await client.chat.completions.create(model="any", messages=LONGER)  # type: ignore[arg-type]
    err = info.value
    assert err.code == "context_length_exceeded"
    assert err.param == "messages"
    assert isinstance(err.body, dict) and err.body["type"] == "invalid_request_error"
    said = err.body["message"]
    assert said.startswith("local: not tried: about 4"), said
    assert "over its context window of 32768" in said


async def test_a_provider_skipped_for_its_declared_window_answers_prompt_too_long_too(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """context_action: skip goes by the window a provider's capabilities declare."""
    fake_upstream.default = anthropic_error(503, "overloaded_error", "cloud is down")
    d = await start_daemon(
        chain_yaml(
            provider_yaml(
                "small", fake_upstream.url, extra="capabilities: {max_context_tokens: 2000}"
            ),
            provider_yaml("cloud", fake_upstream.url),
            profiles="  - {name: default, providers: [small, cloud], context_action: skip}\n",
        )
    )
    async with anthropic.AsyncAnthropic(
        base_url=d.url, api_key="k", max_retries=0, timeout=10
    ) as client:
        with pytest.raises(anthropic.BadRequestError) as info:
            await client.messages.create(model="any", max_tokens=100, messages=LONG)  # type: ignore[arg-type]
    assert [model_of(r) for r in fake_upstream.requests] == ["cloud"]
    body = info.value.body
    assert isinstance(body, dict)
    said = TOO_LONG.match(body["error"]["message"])
    assert said is not None, body
    assert (int(said[2]), said[3]) == (2000, "small")
    assert int(said[1]) > 10_000


class Learning(BaseObserver):
    """Hands each request's summary to the learned windows, as the daemon's
    deferred consumers do."""

    def __init__(self, windows: LearnedWindows) -> None:
        self._windows = windows

    def request_finished(self, summary: RequestSummary) -> None:
        self._windows.take([summary])


def provider(name: str, kind: str, url: str) -> ProviderConfig:
    fields = {"name": name, "kind": kind, "base_url": url, "model": f"{name}-model"}
    return msgspec.convert(fields, ProviderConfig)


def call(rid: str, messages: list[Any]) -> Call:
    body = {"model": "m", "max_tokens": 100, "messages": messages}
    fields = {k: msgspec.Raw(msgspec.json.encode(v)) for k, v in body.items()}
    return Call(rid, "anthropic", fields, {}, stream=False, requested_model="m", profile="p")


async def test_the_engine_answers_by_the_window_it_is_given_for_a_provider_the_plan_skipped(
    fake_upstream: FakeUpstream,
) -> None:
    """The engine alone, given what the windows learned: the answer the
    daemon gives once its windows are handed to the engine it builds."""
    fake_upstream.script(
        Reply(status=400, json=LLAMA_CPP, dialect="openai"),
        Reply(json=anthropic_message("cloud", input_tokens=10_000)),
    )
    fake_upstream.default = anthropic_error(503, "overloaded_error", "cloud is down")
    clock = SystemClock()
    windows = LearnedWindows(clock)
    local = provider("local", "openai_compat", fake_upstream.url + "/v1")
    cloud = provider("cloud", "anthropic", fake_upstream.url)
    adapters = {
        "local": OpenAICompatAdapter(local, api_key=None),
        "cloud": AnthropicAdapter(cloud, api_key=None),
    }
    routes = {
        p.name: ProviderRoute(adapters[p.name], codecs_for(p, ModelCapabilities()))
        for p in (local, cloud)
    }
    engine = Engine(routes, Learning(windows), clock, KeepAlive(30, 30), learned=windows.learned)
    try:
        first = await engine.unary(call("a", LONG), Plan("p", (local, cloud), ()))
        assert first.status == 200
        skipped = Plan("p", (cloud,), (Skip("local", SKIP_CONTEXT),))
        reply = await engine.unary(call("b", LONGER), skipped)
    finally:
        for adapter in adapters.values():
            await adapter.close()
    assert reply.status == 400
    said = TOO_LONG.match(msgspec.json.decode(reply.body)["error"]["message"])
    assert said is not None, reply.body
    assert (int(said[2]), said[3]) == (32768, "local")


@pytest.mark.parametrize(
    ("learned", "configured", "counts", "how"),
    [
        # 40960 tokens refused by a 32768 window at an estimate of 10000.
        ((Learned(8000, 32768, 0.0), 30.0), None, (40960, 32768), "from its refusal 30 s ago"),
        # No counts given: the limit is on the estimate, and so is what is told.
        ((Learned(9999, None, 0.0), 200.0), None, (10000, 9999), "from its refusal 3 min ago"),
        (
            (Learned(9000, None, 0.0, cut=True), 600.0),
            None,
            (10000, 9000),
            "a prompt it cut 10 min",
        ),
        (None, 2000, (10000, 2000), "as its capabilities declare"),
        ((Learned(12000, 40000, 0.0), 5.0), 2000, (10000, 2000), "as its capabilities declare"),
        ((Learned(12000, 40000, 0.0), 5.0), None, None, ""),
    ],
)
def test_what_a_skipped_provider_would_have_said(
    learned: tuple[Learned, float] | None,
    configured: int | None,
    counts: tuple[int, int] | None,
    how: str,
) -> None:
    found = window_overflow(10_000, learned, configured)
    if counts is None:
        assert found is None
        return
    assert found is not None
    overflow = found[1]
    assert (overflow.prompt_tokens, overflow.window) == counts
    assert overflow.message.startswith(f"not tried: about {counts[0]} tokens of prompt")
    assert how in overflow.message
