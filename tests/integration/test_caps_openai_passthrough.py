"""An OpenAI client's request to an openai_compat provider keeps what the
capability registry says the model cannot take away from it, as an
Anthropic client's does: Ollama answers 400 "does not support tools" for
gemma3 and "does not support thinking" for qwen3-coder, a 4xx handed to the
client, so the same provider would work or fail by the client's dialect."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from structlog.testing import capture_logs

from coderouterd.routing.call import Call
from coderouterd.translate.capabilities import load_registry
from coderouterd.translate.passthrough import OpenAIPassthroughCodec
from tests.conftest import StartDaemon, chain_yaml
from tests.fakes.transcripts import openai_completion
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.clients import dropped, o_sdk

O_FUNCTION: Any = {
    "name": "Read",
    "description": "read a file",
    "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
}
O_TOOLS: list[Any] = [{"type": "function", "function": O_FUNCTION}]
ASK: list[Any] = [{"role": "user", "content": "what is in a.py?"}]


def ollama(url: str, model: str) -> str:
    return (
        f"\n  - name: ollama\n    kind: openai_compat\n    base_url: {url}/v1\n    model: {model}\n"
    )


def codec(model: str) -> OpenAIPassthroughCodec:
    caps = load_registry(None).lookup("openai_compat", model)
    return OpenAIPassthroughCodec("ollama", model, max_output_tokens=None, caps=caps)


def call(**fields: Any) -> Call:
    return Call(
        request_id="r",
        dialect="openai",
        fields={k: msgspec.Raw(msgspec.json.encode(v)) for k, v in fields.items()},
        headers={},
        stream=False,
        requested_model="m",
        profile="p",
    )


def sent(model: str, **fields: Any) -> tuple[dict[str, Any], list[str]]:
    body, degraded = codec(model).request(call(model="m", messages=ASK, **fields))
    return msgspec.json.decode(body), [d.field for d in degraded]


def test_the_tools_of_any_form_do_not_reach_a_model_the_registry_says_has_none() -> None:
    body, fields = sent(
        "gemma3:4b", tools=O_TOOLS, tool_choice="auto", parallel_tool_calls=False, max_tokens=9
    )
    assert body == {"model": "gemma3:4b", "messages": ASK, "max_tokens": 9}
    assert fields == ["tools"]
    body, fields = sent("gemma3", functions=[O_FUNCTION], function_call="auto")
    assert body == {"model": "gemma3", "messages": ASK}
    assert fields == ["tools"]


@pytest.mark.parametrize(
    "reasoning", [{"reasoning_effort": "high"}, {"reasoning": {"effort": "high"}}]
)
def test_reasoning_does_not_reach_a_model_the_registry_says_cannot_think(
    reasoning: dict[str, Any],
) -> None:
    body, fields = sent("qwen3-coder:30b", tools=O_TOOLS, **reasoning)
    assert body == {"model": "qwen3-coder:30b", "messages": ASK, "tools": O_TOOLS}
    assert fields == list(reasoning)


def test_a_model_that_can_call_tools_and_think_gets_the_request_as_sent() -> None:
    body, fields = sent("qwen3:32b", tools=O_TOOLS, tool_choice="auto", reasoning_effort="high")
    assert body == {
        "model": "qwen3:32b",
        "messages": ASK,
        "tools": O_TOOLS,
        "tool_choice": "auto",
        "reasoning_effort": "high",
    }
    assert fields == []


async def test_an_openai_clients_tools_do_not_reach_a_model_the_registry_says_has_none(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(dialect="openai", json=openai_completion("a.py is a parser"))
    d = await start_daemon(chain_yaml(ollama(fake_upstream.url, "gemma3:4b")))
    with capture_logs() as logs:
        async with o_sdk(d.url) as client:
            await client.chat.completions.create(
                model="m", max_tokens=100, tools=O_TOOLS, tool_choice="auto", messages=ASK
            )
    sent = fake_upstream.requests[0].json
    assert "tools" not in sent
    assert "tool_choice" not in sent
    assert any(d.startswith("tools") for d in dropped(logs))
    [done] = [e for e in logs if e["event"] == "request.completed"]
    assert done["tools_offered"] is False


async def test_an_openai_clients_reasoning_does_not_reach_a_model_that_cannot_think(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(dialect="openai", json=openai_completion("ok"))
    d = await start_daemon(chain_yaml(ollama(fake_upstream.url, "qwen3-coder:30b")))
    with capture_logs() as logs:
        async with o_sdk(d.url) as client:
            await client.chat.completions.create(
                model="m", max_tokens=100, reasoning_effort="high", messages=ASK
            )
    assert "reasoning_effort" not in fake_upstream.requests[0].json
    assert any(d.startswith("reasoning_effort") for d in dropped(logs))
