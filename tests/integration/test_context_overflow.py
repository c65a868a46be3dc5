"""A prompt that outgrew a backend's context window: the next provider takes it,
and when none can, the client gets the error it acts on (Claude Code compacts);
a `context_action: skip` profile then skips that backend for prompts as long."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from structlog.testing import capture_logs

from coderouterd.ctl.render import render_status
from coderouterd.status import status_of
from coderouterd.translate.estimate import BYTES_PER_TOKEN
from tests.conftest import RunningDaemon, StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message, anthropic_text_stream, openai_completion
from tests.fakes.upstream import FakeUpstream, Recorded, Reply
from tests.integration.process import child_env, run_cli
from tests.unit.wire.test_overflow import CLAUDE_CODE, LLAMA_CPP, VLLM

MESSAGES = [{"role": "user", "content": "summarise the repository"}]
SELF_HEALING = "self_healing: {recovery_initial_interval_s: 30, recovery_jitter: 0}\n"


def too_long_for(name: str) -> Reply:
    if name == "local":  # llama.cpp
        return Reply(status=400, json=LLAMA_CPP, dialect="openai")
    vllm = {"error": {"message": VLLM, "type": "BadRequestError", "param": None, "code": 400}}
    return Reply(status=400, json=vllm, dialect="openai")


def model_of(req: Recorded) -> str:
    return str((req.json or {}).get("model", "")).removesuffix("-model")


async def start(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, *, big: str | None
) -> RunningDaemon:
    """`local` (llama.cpp) and `vllm` are too small; `big` (an Anthropic
    provider), when named, takes the prompt."""
    providers = [
        provider_yaml("local", fake_upstream.url + "/v1", kind="openai_compat"),
        provider_yaml("vllm", fake_upstream.url + "/v1", kind="openai_compat"),
    ]
    if big:
        providers.append(provider_yaml(big, fake_upstream.url))
    names = ", ".join(["local", "vllm", *([big] if big else [])])
    profiles = (
        f"  - {{name: default, providers: [{names}], backend_health_action: exclude, "
        "backend_health_threshold: 2}\n"
    )
    return await start_daemon(
        chain_yaml(*providers, profiles=profiles, top=SELF_HEALING),
        env={"ANTHROPIC_API_KEY": "k"},
    )


def client(d: RunningDaemon) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0, timeout=10)


async def test_a_prompt_too_long_for_local_windows_is_answered_by_a_larger_one_and_counts_no_failure(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    def choose(req: Recorded) -> Reply:
        name = model_of(req)
        return Reply(json=anthropic_message("done")) if name == "big" else too_long_for(name)

    fake_upstream.responder = choose
    d = await start(start_daemon, fake_upstream, big="big")
    with capture_logs() as logs:
        async with client(d) as c:
            # More than the health threshold: a healthy backend is never excluded for it.
            for _ in range(4):
                raw = await c.messages.with_raw_response.create(
                    model="any", max_tokens=100, messages=MESSAGES
                )
                message = await raw.parse()
                assert message.content[0].text == "done"  # type: ignore[union-attr]
    assert raw.headers["x-coderouter-provider"] == "big"
    assert raw.headers["x-coderouter-fallback-path"] == "local,vllm,big"
    assert raw.headers["x-coderouter-fallback-reason"] == (
        "local=context_exceeded, vllm=context_exceeded"
    )
    for name in ("local", "vllm"):
        health = d.daemon.healing.book.health(name)
        assert (health.streak, health.excluded) == (0, None)
    [done, *_] = [e for e in logs if e["event"] == "request.completed"]
    local = done["attempts"][0]
    assert (local["outcome"], local["reason"], local["status"]) == (
        "too_long",
        "context_exceeded",
        400,
    )
    assert local["detail"].startswith("request (40960 tokens) exceeds the available context size")


async def test_when_no_window_is_large_enough_an_anthropic_client_is_told_the_prompt_is_too_long(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.responder = lambda req: too_long_for(model_of(req))
    d = await start(start_daemon, fake_upstream, big=None)
    with capture_logs() as logs:
        async with client(d) as c:
            with pytest.raises(anthropic.BadRequestError) as info:
                await c.messages.create(model="any", max_tokens=100, messages=MESSAGES)
    error: Any = info.value.body
    message = error["error"]["message"]
    assert error["error"]["type"] == "invalid_request_error"
    # The last provider tried said it: vLLM, counting the messages alone.
    assert message.startswith("prompt is too long: 38000 tokens > 32768 maximum (vllm: ")
    match = CLAUDE_CODE.search(message)
    assert match is not None and match.groups() == ("38000", "32768")
    assert "x-coderouter-provider" not in info.value.response.headers
    assert info.value.response.headers["x-coderouter-fallback-path"] == "local,vllm"
    [done] = [e for e in logs if e["event"] == "request.completed"]
    assert (done["status"], done["provider"]) == (400, None)
    assert [a["outcome"] for a in done["attempts"]] == ["too_long", "too_long"]


async def test_an_openai_client_gets_context_length_exceeded(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.responder = lambda req: too_long_for(model_of(req))
    d = await start(start_daemon, fake_upstream, big=None)
    async with openai.AsyncOpenAI(base_url=f"{d.url}/v1", api_key="k", max_retries=0) as c:
        with pytest.raises(openai.BadRequestError) as info:
            await c.chat.completions.create(model="any", messages=MESSAGES)  # type: ignore[arg-type]
    assert info.value.code == "context_length_exceeded"
    assert info.value.param == "messages"
    assert VLLM in info.value.message


async def test_a_stream_already_kept_alive_carries_the_same_error_in_its_error_event(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    # A slow local backend: pings have committed the stream before it answers.
    def choose(req: Recorded) -> Reply:
        return dataclasses.replace(too_long_for(model_of(req)), delay_before_headers=0.3)

    fake_upstream.responder = choose
    providers = provider_yaml("local", fake_upstream.url + "/v1", kind="openai_compat")
    d = await start_daemon(
        chain_yaml(providers, top="server: {keepalive_after_s: 0.05, keepalive_interval_s: 0.05}\n")
    )
    async with client(d) as c:
        stream = await c.messages.create(
            model="any", max_tokens=100, messages=MESSAGES, stream=True
        )
        with pytest.raises(anthropic.APIStatusError) as info:
            async for _ in stream:
                pass
    said = json.dumps(info.value.body)
    assert "prompt is too long: 40960 tokens > 32768 maximum (local: " in said


async def test_a_memory_error_mentioning_the_context_is_memory_pressure_not_overflow(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    oom = {"error": {"message": "failed to allocate buffer for kv cache: context size 131072"}}

    def choose(req: Recorded) -> Reply:
        if model_of(req) == "local":
            return Reply(status=500, json=oom, dialect="openai")
        return Reply(json=anthropic_message("ok"))

    fake_upstream.responder = choose
    d = await start_daemon(
        chain_yaml(
            provider_yaml("local", fake_upstream.url + "/v1", kind="openai_compat"),
            provider_yaml("big", fake_upstream.url),
        )
    )
    async with client(d) as c:
        raw = await c.messages.with_raw_response.create(
            model="any", max_tokens=100, messages=MESSAGES
        )
    assert raw.headers["x-coderouter-fallback-reason"] == "local=memory_pressure"


async def test_a_skip_profile_skips_a_window_its_backend_said_was_outgrown_even_after_a_restart(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    # The local backend takes short prompts and refuses long ones, counting
    # 40960 tokens against its 32768.
    def choose(req: Recorded) -> Reply:
        if model_of(req) == "big":
            return Reply(json=anthropic_message("big", input_tokens=len(req.body) // 4))
        if len(json.dumps(req.json)) > 20_000:
            return too_long_for("local")
        return Reply(json=openai_completion("local"), dialect="openai")

    fake_upstream.responder = choose
    state_dir = tmp_path / "state"
    config = chain_yaml(
        provider_yaml("local", fake_upstream.url + "/v1", kind="openai_compat"),
        provider_yaml("big", fake_upstream.url),
        profiles="  - {name: default, providers: [local, big], context_action: skip}\n",
        top=f"server: {{state_dir: {state_dir}}}\n",
    )
    d = await start_daemon(config, state_dir=state_dir)
    long_prompt = [{"role": "user", "content": "read this: " + "x" * 40_000}]

    async def ask(d: RunningDaemon, messages: list[dict[str, Any]]) -> tuple[str, str, str]:
        async with client(d) as c:
            raw = await c.messages.with_raw_response.create(
                model="any", max_tokens=100, messages=messages
            )
        message = await raw.parse()
        text = message.content[0].text  # type: ignore[union-attr]
        return (
            text,
            raw.headers.get("x-coderouter-fallback-reason", ""),
            raw.headers["x-request-id"],
        )

    text, fallback, refused_id = await ask(d, long_prompt)
    assert (text, fallback) == ("big", "local=context_exceeded")
    d.daemon.deferred.flush()  # what the daemon does within a second
    asked = len(fake_upstream.requests)
    # The next turn is longer still: local is not asked again.
    longer = [
        *long_prompt,
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "more"},
    ]
    assert (await ask(d, longer))[:2] == ("big", "local=context_too_small")
    assert [model_of(r) for r in fake_upstream.requests[asked:]] == ["big"]
    # A short prompt still fits it.
    assert (await ask(d, MESSAGES))[:2] == ("local", "")
    shown = render_status(status_of(d.daemon))
    assert "prompt too long for window 32768 tokens" in shown
    provider = next(p for p in status_of(d.daemon).providers if p.name == "local")
    assert provider.context_window is not None and provider.context_window.window == 32768

    # A daemon restarted on the same state reads the refusal back from the
    # request log: the long conversation still goes straight to big.
    await d.state.writer.flush()
    again = await start_daemon(config, state_dir=state_dir)
    asked = len(fake_upstream.requests)
    assert (await ask(again, longer))[:2] == ("big", "local=context_too_small")
    assert [model_of(r) for r in fake_upstream.requests[asked:]] == ["big"]
    before, after = d.daemon.windows.learned("local"), again.daemon.windows.learned("local")
    assert before is not None and after is not None
    assert (after[0].limit, after[0].window) == (before[0].limit, before[0].window)
    # And `coderouterd requests ID` shows what the backend said.
    run = await run_cli("requests", refused_id, "--config", str(again.config_path),
                        env=child_env(tmp_path))  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert (
        "1. local, too_long, context_exceeded, status 400, prompt 40960 tokens > window 32768"
        in run.stdout
    )
    assert f"  prompt     ~{estimate_prompt_tokens_of(long_prompt)} tokens" in run.stdout


def estimate_prompt_tokens_of(messages: list[dict[str, Any]]) -> int:
    """The daemon's estimate of a body holding only `messages`: its compact JSON, four bytes a token."""
    return math.ceil(len(json.dumps(messages, separators=(",", ":"))) / BYTES_PER_TOKEN)


def stream_refusal(error: dict[str, Any]) -> Reply:
    """A 200 whose first frame says the prompt does not fit, as sglang (and
    llama.cpp before it answered 400) stream it, with the [DONE] after;
    older llama.cpp servers wrote the error as an `error:` field of its own
    (marked `"field": "error"` here)."""
    if error.get("field") == "error":
        inner = {k: v for k, v in error.items() if k != "field"}
        frame = b"error: " + json.dumps(inner).encode() + b"\n\n"
    else:
        frame = b"data: " + json.dumps({"error": error}).encode() + b"\n\n"
    return Reply(dialect="openai", writes=[frame, b"data: [DONE]\n\n"])


SGLANG = {
    "object": "error",
    "message": "The input (40960 tokens) is longer than the model's context length (32768 tokens).",
    "type": "BadRequestError",
    "param": None,
    "code": 400,
}
STREAMED_REFUSALS = [
    pytest.param(LLAMA_CPP["error"], id="llama.cpp"),
    pytest.param({**LLAMA_CPP["error"], "field": "error"}, id="llama.cpp-error-field"),
    pytest.param(SGLANG, id="sglang"),
]


@pytest.mark.parametrize("error", STREAMED_REFUSALS)
async def test_a_stream_whose_first_frame_says_the_prompt_does_not_fit_goes_on_and_counts_no_failure(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, error: dict[str, Any]
) -> None:
    def choose(req: Recorded) -> Reply:
        if model_of(req) == "big":
            return Reply(events=anthropic_text_stream(["done"]))
        return stream_refusal(error)

    fake_upstream.responder = choose
    d = await start_daemon(
        chain_yaml(
            provider_yaml("local", fake_upstream.url + "/v1", kind="openai_compat"),
            provider_yaml("big", fake_upstream.url),
            # Tried every time: a healthy backend is never excluded for it.
            profiles="  - {name: default, providers: [local, big], backend_health_action: exclude, "
            "backend_health_threshold: 2, context_action: off}\n",
        )
    )
    with capture_logs() as logs:
        async with client(d) as c:
            for _ in range(4):
                async with c.messages.stream(model="any", max_tokens=100, messages=MESSAGES) as s:
                    assert await s.get_final_text() == "done"
    assert s.response.headers["x-coderouter-fallback-reason"] == "local=context_exceeded"
    assert d.daemon.healing.book.excluded() == frozenset()
    health = d.daemon.healing.book.health("local")
    assert (health.streak, health.excluded) == (0, None)
    [done, *_] = [e for e in logs if e["event"] == "request.completed"]
    local = done["attempts"][0]
    assert (local["outcome"], local["reason"], local["prompt_tokens"], local["context_window"]) == (
        "too_long",
        "context_exceeded",
        40960,
        32768,
    )
    d.daemon.deferred.flush()
    learned = d.daemon.windows.learned("local")
    assert learned is not None and learned[0].window == 32768


@pytest.mark.parametrize("error", STREAMED_REFUSALS)
async def test_when_a_stream_is_refused_by_every_window_the_client_is_told_the_prompt_is_too_long(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, error: dict[str, Any]
) -> None:
    fake_upstream.responder = lambda req: stream_refusal(error)
    d = await start_daemon(
        chain_yaml(provider_yaml("local", fake_upstream.url + "/v1", kind="openai_compat"))
    )
    async with client(d) as c:
        with pytest.raises(anthropic.BadRequestError) as info:
            async with c.messages.stream(model="any", max_tokens=100, messages=MESSAGES) as s:
                await s.get_final_message()
    message = info.value.body["error"]["message"]  # type: ignore[index]
    match = CLAUDE_CODE.search(message)
    assert match is not None and match.groups() == ("40960", "32768"), message
    assert message.startswith("prompt is too long: 40960 tokens > 32768 maximum (local: ")
    async with openai.AsyncOpenAI(base_url=f"{d.url}/v1", api_key="k", max_retries=0) as o:
        with pytest.raises(openai.BadRequestError) as refused:
            await o.chat.completions.create(model="any", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    assert (refused.value.code, refused.value.param) == ("context_length_exceeded", "messages")


VLLM_MAX_TOKENS = (
    "This model's maximum context length is 32768 tokens. However, you requested 32000 output "
    "tokens and your prompt contains at least 1200 input tokens, for a total of at least 33200 "
    "tokens. Please reduce the length of the input prompt or the number of requested output "
    "tokens. (parameter=input_tokens, value=1200)"
)
MAX_TOKENS_REFUSALS = [
    pytest.param(VLLM_MAX_TOKENS, id="vllm"),
    pytest.param(
        "'max_tokens' or 'max_completion_tokens' is too large: 32000. This model's maximum "
        "context length is 32768 tokens and your request has 1200 input tokens "
        "(32000 > 32768 - 1200).",
        id="older vllm",
    ),
    pytest.param(
        "This model's maximum context length is 32768 tokens. However, you requested 33200 "
        "tokens (1200 in the messages, 32000 in the completion). Please reduce the length of "
        "the messages or completion.",
        id="openai",
    ),
    pytest.param(
        "This endpoint's maximum context length is 32768 tokens. However, you requested about "
        "33200 tokens (1200 of text input, 32000 in the output). Please reduce the length of "
        'either one, or use the "middle-out" transform to compress your prompt automatically.',
        id="openrouter",
    ),
]


def max_tokens_refusal(said: str) -> Reply:
    error = {"message": said, "type": "BadRequestError", "param": None, "code": 400}
    return Reply(status=400, dialect="openai", json={"error": error})


@pytest.mark.parametrize("said", MAX_TOKENS_REFUSALS)
async def test_a_max_tokens_too_large_is_told_as_such_not_as_a_prompt_longer_than_the_window(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, said: str
) -> None:
    fake_upstream.default = max_tokens_refusal(said)
    d = await start_daemon(
        chain_yaml(provider_yaml("vllm", fake_upstream.url + "/v1", kind="openai_compat"))
    )
    async with client(d) as c:
        with pytest.raises(anthropic.BadRequestError) as info:
            await c.messages.create(model="any", max_tokens=32000, messages=MESSAGES)
    message = info.value.body["error"]["message"]  # type: ignore[index]
    # Anthropic's own words for it; a "prompt is too long" would make Claude
    # Code compact a conversation that fits.
    assert message.startswith(
        "input length and `max_tokens` exceed context limit: 1200 + 32000 > 32768, "
        "decrease input length or `max_tokens` and try again (vllm: "
    ), message
    assert CLAUDE_CODE.search(message) is None


@pytest.mark.parametrize("said", [MAX_TOKENS_REFUSALS[0], MAX_TOKENS_REFUSALS[3]])
async def test_a_max_tokens_too_large_teaches_no_window_smaller_than_the_prompt(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, said: str
) -> None:
    # vllm refuses only a max_tokens too large for its window beside the prompt.
    def choose(req: Recorded) -> Reply:
        if model_of(req) == "big":
            return Reply(json=anthropic_message("big"))
        if (req.json or {}).get("max_tokens", 0) > 30_000:
            return max_tokens_refusal(said)
        return Reply(json=openai_completion("vllm"), dialect="openai")

    fake_upstream.responder = choose
    d = await start_daemon(
        chain_yaml(
            provider_yaml("vllm", fake_upstream.url + "/v1", kind="openai_compat"),
            provider_yaml("big", fake_upstream.url),
        )
    )

    async def ask(max_tokens: int) -> tuple[str, str]:
        async with client(d) as c:
            raw = await c.messages.with_raw_response.create(
                model="any", max_tokens=max_tokens, messages=MESSAGES
            )
        text = (await raw.parse()).content[0].text  # type: ignore[union-attr]
        return text, raw.headers.get("x-coderouter-fallback-reason", "")

    assert await ask(32000) == ("big", "vllm=context_exceeded")
    d.daemon.deferred.flush()
    # The same prompt with room for the answer: vllm takes it.
    assert await ask(1000) == ("vllm", "")
    learned = d.daemon.windows.learned("vllm")
    assert learned is not None
    assert learned[0].window == 32768
    assert learned[0].limit > estimate_prompt_tokens_of(MESSAGES)
