"""Models whose chat template opens <think> itself: their reasoning never reaches the text."""

from __future__ import annotations

from typing import Any

import anthropic
import openai

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import openai_text_stream
from tests.fakes.upstream import FakeUpstream, Reply

MESSAGES: list[Any] = [{"role": "user", "content": "what is six times seven?"}]
REASONING = ["The user asks for 6", " x 7.\nThat is 42", ".\n</thi", "nk>\n\n"]
ANSWER = ["The answer", " is 42."]
LEAKS = ("asks for", "That is", "</think>", "<think>")


def closing_tag_only() -> Reply:
    """What llama.cpp streams for DeepSeek-R1 distills: reasoning first, then only `</think>`."""
    return Reply(dialect="openai", events=openai_text_stream(REASONING + ANSWER))


def provider(url: str, name: str, extra: str = "") -> str:
    return provider_yaml(name, url + "/v1", kind="openai_compat", extra=extra)


async def anthropic_answer(url: str, model: str = "m") -> anthropic.types.Message:
    async with (
        anthropic.AsyncAnthropic(base_url=url, api_key="k", max_retries=0, timeout=10) as client,
        client.messages.stream(model=model, max_tokens=100, messages=MESSAGES) as stream,
    ):
        return await stream.get_final_message()


def texts(message: anthropic.types.Message) -> list[str]:
    return [b.text for b in message.content if b.type == "text"]


async def test_a_registry_model_whose_template_opens_think_keeps_its_reasoning_out_of_the_text(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(closing_tag_only())
    # The provider's model is "deepseek-r1-distill-model": the bundled rules know it.
    d = await start_daemon(chain_yaml(provider(fake_upstream.url, "deepseek-r1-distill")))
    message = await anthropic_answer(d.url)
    assert texts(message) == ["The answer is 42."]
    [thinking] = [b for b in message.content if b.type == "thinking"]
    assert thinking.thinking == "The user asks for 6 x 7.\nThat is 42.\n"
    assert [b.type for b in message.content] == ["thinking", "text"]


async def test_assume_think_open_in_output_filters_overrides_the_registry(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(closing_tag_only(), closing_tag_only())
    on = provider(fake_upstream.url, "plain", "output_filters: {assume_think_open: true}")
    off = provider(
        fake_upstream.url, "deepseek-r1-off", "output_filters: {assume_think_open: false}"
    )
    profiles = (
        "  - name: on\n    providers: [plain]\n  - name: off\n    providers: [deepseek-r1-off]\n"
    )
    d = await start_daemon(chain_yaml(on, off, profiles=profiles))
    assert texts(await anthropic_answer(d.url, "on")) == ["The answer is 42."]
    # Told that the template opens nothing, the filter cannot tell reasoning from text.
    assert "That is 42" in "".join(texts(await anthropic_answer(d.url, "off")))


async def test_an_openai_client_gets_the_reasoning_as_reasoning_content(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(closing_tag_only())
    d = await start_daemon(chain_yaml(provider(fake_upstream.url, "deepseek-r1-distill")))
    async with openai.AsyncOpenAI(base_url=f"{d.url}/v1", api_key="k", max_retries=0) as client:
        stream = await client.chat.completions.create(model="x", messages=MESSAGES, stream=True)
        deltas = [c.choices[0].delta async for c in stream if c.choices]
    content = "".join(d.content or "" for d in deltas)
    reasoning = "".join(getattr(d, "reasoning_content", None) or "" for d in deltas)
    assert content == "The answer is 42."
    assert reasoning == "The user asks for 6 x 7.\nThat is 42.\n"
    assert not any(leak in content for leak in LEAKS)
