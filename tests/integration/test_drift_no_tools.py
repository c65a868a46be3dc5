"""Drift's tool silence counts only answers that could have called a tool: a
backend sent no tools, or told to call none, is not drifting for calling none."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anthropic
import openai

from coderouterd.state import reads
from coderouterd.status import status_of
from tests.conftest import RunningDaemon, StartDaemon, chain_yaml, provider_yaml, until
from tests.fakes.transcripts import anthropic_message, openai_completion
from tests.fakes.upstream import FakeUpstream, Reply

TOOLS: list[Any] = [
    {
        "name": "Read",
        "description": "read a file",
        "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
    }
]
ASK: Any = {"max_tokens": 50, "messages": [{"role": "user", "content": "what does a.py do?"}]}
ANSWERS = 8


async def judged(d: RunningDaemon, provider: str, outcomes: int) -> None:
    status_of(d.daemon)  # takes the summaries now
    await until(lambda: d.daemon.drift.verdict(provider)[1] == outcomes)  # type: ignore[index]


async def test_a_backend_sent_no_tools_is_not_drifting_for_calling_none(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    fake_upstream.default = Reply(
        json=openai_completion("here is the answer", completion_tokens=40), dialect="openai"
    )
    config = chain_yaml(
        provider_yaml(
            "local", fake_upstream.url, kind="openai_compat", extra="capabilities: {tools: false}"
        )
    )
    state_dir = tmp_path / "state"
    d = await start_daemon(config, state_dir=state_dir)
    async with anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0) as client:
        for _ in range(ANSWERS):
            await client.messages.create(model="m", tools=TOOLS, **ASK)
        assert all("tools" not in (r.json or {}) for r in fake_upstream.requests)
        await judged(d, "local", ANSWERS)
        raw = await client.messages.with_raw_response.create(model="m", tools=TOOLS, **ASK)
    assert d.daemon.drift.flagged == {}
    assert "x-coderouter-drift" not in raw.headers
    # The request log says what the backend was offered: a restart agrees.
    await d.state.writer.flush()
    [row] = await d.state.writer.maintain(
        lambda conn: reads.recent_requests(conn, since=None, provider="local", limit=1)
    )
    assert row.tools_offered is False
    again = await start_daemon(config, state_dir=state_dir)
    assert again.daemon.drift.flagged == {}


async def test_a_request_whose_tool_choice_is_none_offers_no_tool_to_call(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    def answer(req: Any) -> Reply:
        if req.path.endswith("/chat/completions"):
            return Reply(json=openai_completion("no tools, as told", completion_tokens=40))
        return Reply(json=anthropic_message("no tools, as told", output_tokens=40))

    fake_upstream.responder = answer
    config = chain_yaml(
        provider_yaml("a", fake_upstream.url),
        provider_yaml("o", fake_upstream.url + "/v1", kind="openai_compat"),
        profiles="  - {name: a, providers: [a]}\n  - {name: o, providers: [o]}\n",
    )
    d = await start_daemon(config)
    async with anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0) as client:
        for _ in range(ANSWERS):
            await client.messages.create(
                model="a", tools=TOOLS, tool_choice={"type": "none"}, **ASK
            )
    function: Any = {
        "type": "function",
        "function": {"name": "Read", "parameters": {"type": "object", "properties": {}}},
    }
    async with openai.AsyncOpenAI(
        base_url=f"{d.url}/v1", api_key="k", max_retries=0, timeout=10
    ) as oai:
        for _ in range(ANSWERS):
            await oai.chat.completions.create(
                model="o",
                tools=[function],
                tool_choice="none",
                messages=[{"role": "user", "content": "what does a.py do?"}],
            )
    await judged(d, "a", ANSWERS)
    await judged(d, "o", ANSWERS)
    assert d.daemon.drift.flagged == {}
    for name in ("a", "o"):
        verdict = d.daemon.drift.verdict(name)
        assert verdict is not None and "tool_silence_rate" not in verdict[0].signals
