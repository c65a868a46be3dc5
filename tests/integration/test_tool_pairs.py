"""Unpaired tool histories falling back from a lenient local backend to a
strict one of the other dialect: an OpenAI client's to Anthropic, an
Anthropic client's to an OpenAI backend."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
from structlog.testing import capture_logs

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.strict import anthropic_refusal, openai_refusal
from tests.fakes.transcripts import (
    anthropic_error,
    anthropic_message,
    openai_error,
    openai_text_stream,
)
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


# What an Anthropic client that trims its history from the front sends: the
# result of a call that was cut off, then two calls of which it answered one.
ANTHROPIC_HISTORY: list[dict[str, Any]] = [
    {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "src/main.py: 120 lines"},
            {"type": "text", "text": "now read both tests"},
        ],
    },
    {
        "role": "assistant",
        "content": [
            {"type": "tool_use", "id": f"toolu_{n}", "name": "Read", "input": {}} for n in (2, 3)
        ],
    },
    {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": "toolu_3",
                "content": "tests/test_b.py: 40 lines",
            }
        ],
    },
]


async def test_an_openai_fallback_gets_an_anthropic_clients_history_it_accepts(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    refused: list[str] = []

    def choose(req: Recorded) -> Reply:
        if req.path.endswith("/v1/messages"):
            return anthropic_error(529, "overloaded_error", "local backend busy")
        problem = openai_refusal(req.json or {})
        if problem is not None:
            refused.append(problem)
            return openai_error(400, problem, error_type="invalid_request_error")
        return Reply(dialect="openai", events=openai_text_stream(["read ", "them"]))

    fake_upstream.responder = choose
    local = provider_yaml("local", fake_upstream.url)
    cloud = provider_yaml("cloud", fake_upstream.url + "/v1", kind="openai_compat")
    d = await start_daemon(chain_yaml(local, cloud))
    with capture_logs() as logs:
        async with (
            anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0, timeout=10) as c,
            c.messages.stream(model="any", max_tokens=100, messages=ANTHROPIC_HISTORY) as s,
        ):
            message = await s.get_final_message()
    assert refused == []
    assert message.content[0].text == "read them"  # type: ignore[union-attr]
    # The local backend got the history as the client sent it.
    local_body = next(r.json for r in fake_upstream.requests if r.path.endswith("/v1/messages"))
    assert local_body["messages"] == ANTHROPIC_HISTORY
    sent = next(r.json for r in fake_upstream.requests if r.path.endswith("/completions"))
    assert [(m["role"], m.get("tool_call_id")) for m in sent["messages"]] == [
        ("user", None),
        ("assistant", None),
        ("tool", "toolu_3"),
        ("tool", "toolu_2"),
    ]
    assert "src/main.py: 120 lines" in sent["messages"][0]["content"]
    assert sent["messages"][3]["content"].startswith("Error: ")
    [degraded] = [e for e in logs if e["event"] == "capability.degraded"]
    assert degraded["provider"] == "cloud"
    assert [d.split(":")[0] for d in degraded["dropped"]] == [
        "messages.tool_result",
        "messages.tool_use",
    ]
