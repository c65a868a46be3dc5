"""Think tags the model writes in its answer's code (a ```python block, an
inline code span) reach the client as written, whole and streamed, in both
dialects, while its reasoning before the answer is still reasoning: a user
who asks how to strip reasoning tags gets a working program, not
`re.sub(r"", …)` with `.*?` turned into a thinking block."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import openai_completion, openai_text_stream
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.clients import a_sdk, local, o_sdk

CODE = 'clean = re.sub(r"<think>.*?</think>", "", reply, flags=re.S)'
ANSWER = (
    f"Strip the reasoning like this:\n\n```python\n{CODE}\n```\n\n"
    "The `<think>` tag opens it and `</think>` closes it."
)
REASONING = "They want a regex."
NAMING = "They want the `<think>` blocks gone: a regex."
MESSAGES: list[Any] = [{"role": "user", "content": "how do I strip the reasoning?"}]
# What the model writes: no reasoning, a think block, or (a chat template
# that opens the block, as for DeepSeek-R1 distills) only its closing tag.
WRITTEN = {
    "no reasoning": ("local", ANSWER, ""),
    "think block": ("local", f"<think>{REASONING}</think>\n\n{ANSWER}", REASONING),
    "template opened": ("deepseek-r1-distill", f"{REASONING}</think>\n\n{ANSWER}", REASONING),
    # Its reasoning names `<think>` in backticks before its `</think>`.
    "template opened, tag named": ("deepseek-r1-distill", f"{NAMING}</think>\n\n{ANSWER}", NAMING),
}


def reply(text: str, streamed: bool) -> Reply:
    if streamed:
        pieces = [text[i : i + 9] for i in range(0, len(text), 9)]
        return Reply(dialect="openai", events=openai_text_stream(pieces))
    return Reply(dialect="openai", json=openai_completion(text))


async def daemon_for(written: str, start_daemon: StartDaemon, fake_upstream: FakeUpstream) -> str:
    name = WRITTEN[written][0]
    if name == "local":
        d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    else:
        # The bundled registry knows this model's template opens `<think>`.
        url = fake_upstream.url + "/v1"
        d = await start_daemon(chain_yaml(provider_yaml(name, url, kind="openai_compat")))
    return d.url


@pytest.mark.parametrize("written", WRITTEN)
@pytest.mark.parametrize("streamed", [False, True])
async def test_an_anthropic_client_gets_the_think_tags_of_the_answers_code(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, written: str, streamed: bool
) -> None:
    _, text, reasoning = WRITTEN[written]
    fake_upstream.script(reply(text, streamed))
    url = await daemon_for(written, start_daemon, fake_upstream)
    kw: dict[str, Any] = {"model": "m", "max_tokens": 100, "messages": MESSAGES}
    async with a_sdk(url) as client:
        if streamed:
            async with client.messages.stream(**kw) as stream:
                message = await stream.get_final_message()
        else:
            message = await client.messages.create(**kw)
    blocks = [
        (b.type, b.thinking if b.type == "thinking" else b.text)  # type: ignore[union-attr]
        for b in message.content
    ]
    expected = [("thinking", reasoning)] if reasoning else []
    assert blocks == [*expected, ("text", ANSWER)]


@pytest.mark.parametrize("written", WRITTEN)
@pytest.mark.parametrize("streamed", [False, True])
async def test_an_openai_client_gets_the_think_tags_of_the_answers_code(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, written: str, streamed: bool
) -> None:
    _, text, reasoning = WRITTEN[written]
    fake_upstream.script(reply(text, streamed))
    url = await daemon_for(written, start_daemon, fake_upstream)
    async with o_sdk(url) as client:
        if streamed:
            stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
            deltas = [c.choices[0].delta async for c in stream if c.choices]
            content = "".join(d.content or "" for d in deltas)
            thought = "".join((d.model_extra or {}).get("reasoning_content") or "" for d in deltas)
        else:
            completion = await client.chat.completions.create(model="m", messages=MESSAGES)
            message = completion.choices[0].message
            content = message.content or ""
            thought = (message.model_extra or {}).get("reasoning_content") or ""
    assert (content, thought) == (ANSWER, reasoning)
