"""An OpenAI client's unpaired tool history, falling back from a lenient local backend to Anthropic."""

from __future__ import annotations

from typing import Any

import openai
from structlog.testing import capture_logs

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.strict import anthropic_refusal
from tests.fakes.transcripts import anthropic_error, anthropic_message, openai_error
from tests.fakes.upstream import FakeUpstream, Recorded, Reply

# What a client that keeps only its last messages sends: the result of a
# call that was cut off, then a call it gave up on (one of two answered).
HISTORY: list[dict[str, Any]] = [
    {"role": "tool", "tool_call_id": "call_1", "content": "src/main.py: 120 lines"},
    {"role": "user", "content": "now read both tests"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": f"call_{n}", "type": "function", "function": {"name": "Read", "arguments": "{}"}}
            for n in (2, 3)
        ],
    },
    {"role": "tool", "tool_call_id": "call_3", "content": "tests/test_b.py: 40 lines"},
]


async def test_an_anthropic_fallback_gets_a_history_it_accepts_and_nothing_the_client_said_is_lost(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    refused: list[str] = []

    def choose(req: Recorded) -> Reply:
        if req.path.endswith("/chat/completions"):
            return openai_error(503, "model unloaded")
        problem = anthropic_refusal(req.json or {})
        if problem is not None:
            refused.append(problem)
            return anthropic_error(400, "invalid_request_error", problem)
        return Reply(json=anthropic_message("read them"))

    fake_upstream.responder = choose
    local = provider_yaml("local", fake_upstream.url + "/v1", kind="openai_compat")
    claude = provider_yaml("claude", fake_upstream.url)
    d = await start_daemon(chain_yaml(local, claude))
    with capture_logs() as logs:
        async with openai.AsyncOpenAI(
            base_url=f"{d.url}/v1", api_key="k", max_retries=0, timeout=10
        ) as client:
            raw = await client.chat.completions.with_raw_response.create(
                model="any", messages=HISTORY
            )
    assert refused == []
    assert raw.parse().choices[0].message.content == "read them"
    assert raw.headers["x-coderouter-provider"] == "claude"
    # The local backend got the history as the client sent it.
    local_body = next(r.json for r in fake_upstream.requests if r.path.endswith("/completions"))
    assert [m.get("tool_call_id") for m in local_body["messages"]] == [
        "call_1",
        None,
        None,
        "call_3",
    ]
    sent = next(r.json for r in fake_upstream.requests if r.path.endswith("/v1/messages"))
    first, _, answers = sent["messages"]
    assert "src/main.py: 120 lines" in first["content"][0]["text"]
    assert [(b["tool_use_id"], b.get("is_error", False)) for b in answers["content"]] == [
        ("call_2", True),
        ("call_3", False),
    ]
    [degraded] = [e for e in logs if e["event"] == "capability.degraded"]
    assert degraded["provider"] == "claude"
    assert [d.split(":")[0] for d in degraded["dropped"]] == [
        "messages.tool_result",
        "messages.tool_use",
    ]
