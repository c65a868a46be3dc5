"""Anthropic clients on OpenAI-compatible providers: what the backend is sent.

Documents and the images of tool results reach the model, or are said to
be missing, and Claude Code's effort level becomes the backend's reasoning
effort. The daemon runs in process against the scripted fake upstream; the
official `anthropic` SDK is the client, and the test reads the request the
backend got.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.upstream import FakeUpstream, Reply

READ_TOOL = {
    "name": "Read",
    "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}},
}
PNG_DATA = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def oai(url: str, extra: str = "") -> str:
    return provider_yaml("local", url + "/v1", kind="openai_compat", extra=extra)


def ok() -> Reply:
    body = {"choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}]}
    return Reply(dialect="openai", events=[("", body)])


async def send(url: str, messages: list[Any], **kwargs: Any) -> None:
    async with (
        anthropic.AsyncAnthropic(base_url=url, api_key="k", max_retries=0, timeout=10) as c,
        c.messages.stream(model="m", max_tokens=100, messages=messages, **kwargs) as s,
    ):
        await s.get_final_message()


def read_history(file: str, *inner: dict[str, Any]) -> list[Any]:
    """Claude Code's Read tool called on `file`, its result holding `inner`."""
    call = {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"file_path": file}}
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": list(inner)}
    return [
        {"role": "user", "content": f"what is in {file}?"},
        {"role": "assistant", "content": [call]},
        {"role": "user", "content": [result]},
    ]


async def test_a_pdf_a_tool_read_is_said_to_be_missing_not_sent_as_an_empty_result(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """An empty tool message tells the model the file is empty."""
    pdf = {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQK"}
    fake_upstream.script(ok())
    d = await start_daemon(chain_yaml(oai(fake_upstream.url)))
    await send(
        d.url, read_history("spec.pdf", {"type": "document", "source": pdf}), tools=[READ_TOOL]
    )
    [tool] = [m for m in fake_upstream.requests[0].json["messages"] if m["role"] == "tool"]
    assert tool["content"] == "[document omitted: this backend cannot read documents]"


async def test_a_plain_text_document_reaches_the_model_with_its_title(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    doc = {
        "type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": "Deploys run at 09:00."},
        "title": "ops notes",
    }
    question = {"type": "text", "text": "when do deploys run?"}
    fake_upstream.script(ok())
    d = await start_daemon(chain_yaml(oai(fake_upstream.url)))
    await send(d.url, [{"role": "user", "content": [doc, question]}])
    [user] = fake_upstream.requests[0].json["messages"]
    assert user == {
        "role": "user",
        "content": "[document: ops notes]\nDeploys run at 09:00.\nwhen do deploys run?",
    }


async def test_a_screenshot_a_tool_read_reaches_a_vision_model_after_the_tool_message(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """OpenAI tool messages carry text only: the image follows them in a user message."""
    png = {"type": "base64", "media_type": "image/png", "data": PNG_DATA}
    fake_upstream.script(ok())
    d = await start_daemon(chain_yaml(oai(fake_upstream.url, "capabilities: {vision: true}")))
    await send(d.url, read_history("shot.png", {"type": "image", "source": png}), tools=[READ_TOOL])
    sent = fake_upstream.requests[0].json["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "user"]
    assert sent[2]["content"] == "[image: in the user message after the tool results]"
    assert sent[3]["content"] == [
        {"type": "text", "text": "Images from the result of tool call toolu_1:"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_DATA}"}},
    ]
    assert "cannot view images" not in json.dumps(sent)


async def test_claude_codes_effort_level_is_the_backends_reasoning_effort(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """`/effort low` with adaptive thinking: `output_config.effort`."""
    fake_upstream.script(ok(), ok())
    caps = "capabilities: {thinking: true, reasoning_param: reasoning_effort}"
    d = await start_daemon(chain_yaml(oai(fake_upstream.url, caps)))
    for effort in ("low", "max"):
        await send(
            d.url,
            [{"role": "user", "content": "hi"}],
            thinking={"type": "adaptive"},
            extra_body={"output_config": {"effort": effort}},
        )
    assert [r.json["reasoning_effort"] for r in fake_upstream.requests] == ["low", "high"]


def chunk(delta: dict[str, Any], finish: str | None = None) -> tuple[str, dict[str, Any]]:
    return "", {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


async def test_deepseek_reasoning_goes_back_as_reasoning_content_on_the_tool_turn(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    # DeepSeek's reasoners need their reasoning sent back with the tool turn:
    # the client gets it as an unsigned thinking block and sends that back.
    call = {"index": 0, "id": "call_0", "type": "function"}
    call["function"] = {"name": "Read", "arguments": '{"file_path":"x"}'}
    fake_upstream.script(
        Reply(
            dialect="openai",
            events=[
                chunk({"role": "assistant", "reasoning_content": "I should read x."}),
                chunk({"tool_calls": [call]}),
                chunk({}, "tool_calls"),
            ],
        ),
        ok(),
    )
    provider = oai(fake_upstream.url).replace("local-model", "deepseek-reasoner")
    d = await start_daemon(chain_yaml(provider))
    messages: list[Any] = [{"role": "user", "content": "read x"}]
    ask: dict[str, Any] = {"model": "m", "max_tokens": 100, "tools": [READ_TOOL]}
    ask["thinking"] = {"type": "enabled", "budget_tokens": 2048}
    async with (
        anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0, timeout=10) as c,
        c.messages.stream(messages=messages, **ask) as s,
    ):
        first = await s.get_final_message()
    thinking, use = first.content
    assert (thinking.type, use.type) == ("thinking", "tool_use")
    messages.append({"role": "assistant", "content": [b.model_dump() for b in first.content]})
    result = {"type": "tool_result", "tool_use_id": use.id, "content": "X"}  # type: ignore[union-attr]
    messages.append({"role": "user", "content": [result]})
    await send(d.url, messages, tools=[READ_TOOL], thinking=ask["thinking"])
    sent = fake_upstream.requests[1].json["messages"]  # type: ignore[index]
    assert sent[1]["reasoning_content"] == "I should read x."
    assert sent[2] == {"role": "tool", "tool_call_id": use.id, "content": "X"}  # type: ignore[union-attr]
