"""Anthropic blocks that carry text reach an openai_compat backend as text:
`search_result` blocks (a search tool's findings inside its result, or an
app's retrieved context in a user turn) and custom-content documents
(`source: {type: "content"}`, for citations over chunks)."""

from __future__ import annotations

from typing import Any

from structlog.testing import capture_logs

from tests.conftest import StartDaemon, chain_yaml
from tests.fakes.transcripts import openai_completion
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.clients import a_sdk, dropped, local

SEARCH_RESULT: dict[str, Any] = {
    "type": "search_result",
    "source": "https://wiki.example/deploys",
    "title": "Deploy schedule",
    "content": [{"type": "text", "text": "Deploys run every weekday at 09:00 UTC."}],
}
SAID = "[search result: Deploy schedule (https://wiki.example/deploys)]\n" + (
    "Deploys run every weekday at 09:00 UTC."
)
SEARCH: dict[str, Any] = {
    "name": "Search",
    "description": "search the wiki",
    "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
}


async def sent(
    start_daemon: StartDaemon, fake: FakeUpstream, messages: list[Any], **kwargs: Any
) -> tuple[list[dict[str, Any]], list[str]]:
    """The messages an Anthropic client's request reaches the backend as, and
    what was logged as dropped."""
    fake.default = Reply(json=openai_completion("ok"), dialect="openai")
    d = await start_daemon(chain_yaml(local(fake.url)))
    with capture_logs() as logs:
        async with a_sdk(d.url) as client:
            await client.messages.create(model="m", max_tokens=100, messages=messages, **kwargs)
    body = fake.requests[-1].json
    assert isinstance(body, dict)
    return body["messages"], dropped(logs)


async def test_search_results_a_tool_returned_reach_the_model_in_its_tool_message(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    call = {"type": "tool_use", "id": "toolu_01", "name": "Search", "input": {"q": "deploys"}}
    result = {"type": "tool_result", "tool_use_id": "toolu_01", "content": [SEARCH_RESULT]}
    messages, degraded = await sent(
        start_daemon,
        fake_upstream,
        [
            {"role": "user", "content": "when do deploys run?"},
            {"role": "assistant", "content": [call]},
            {"role": "user", "content": [result]},
        ],
        tools=[SEARCH],
    )
    assert messages[-1] == {"role": "tool", "tool_call_id": "toolu_01", "content": SAID}
    assert degraded == []


async def test_a_search_result_the_user_sent_reaches_the_model(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    question = {"type": "text", "text": "when do deploys run?"}
    messages, degraded = await sent(
        start_daemon, fake_upstream, [{"role": "user", "content": [SEARCH_RESULT, question]}]
    )
    assert messages == [{"role": "user", "content": f"{SAID}\nwhen do deploys run?"}]
    assert degraded == []


async def test_a_custom_content_document_reaches_the_model_as_text(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    chunks = [{"type": "text", "text": "Deploys run at 09:00."}, {"type": "text", "text": "UTC."}]
    doc = {
        "type": "document",
        "title": "ops notes",
        "source": {"type": "content", "content": chunks},
    }
    one = {"type": "document", "source": {"type": "content", "content": "Freeze on Fridays."}}
    question = {"type": "text", "text": "when do deploys run?"}
    messages, degraded = await sent(
        start_daemon, fake_upstream, [{"role": "user", "content": [doc, one, question]}]
    )
    said = "[document: ops notes]\nDeploys run at 09:00.\nUTC.\nFreeze on Fridays."
    assert messages == [{"role": "user", "content": f"{said}\nwhen do deploys run?"}]
    assert degraded == []
