"""Table-driven: the same upstream content, answered whole and streamed (in
pieces cut at awkward places), reaches each client dialect the same way:
blocks / content, reasoning, lifted calls, stop reason and usage."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import StartDaemon, chain_yaml
from tests.fakes.upstream import FakeUpstream
from tests.integration.clients import local
from tests.integration.filter_parity import (
    A_TOOLS,
    MESSAGES,
    O_TOOLS,
    a_shape,
    anthropic_of_stream,
    openai_of_stream,
    openai_of_unary,
    post,
    sse,
    stream_reply,
    unary_reply,
)

CALL = '<tool_call>{"name": "Read", "arguments": {"path": "a.py"}}</tool_call>'


def native(i: int, call_id: str, name: str, args: str) -> dict[str, Any]:
    return {
        "index": i,
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": args},
    }


CASES: dict[str, list[dict[str, Any]]] = {
    "text_call_text": [
        {"content": "Reading.\n<tool_"},
        {"content": CALL[6:30]},
        {"content": CALL[30:] + "\nDone."},
    ],
    "reasoning_then_call": [{"reasoning_content": "think"}, {"content": CALL}],
    "think_tags_split": [{"content": "<thi"}, {"content": "nk>hmm</th"}, {"content": "ink>Answer"}],
    "ollama_reused_index": [
        {"tool_calls": [native(0, "c1", "Read", '{"path": "a"}')]},
        {"tool_calls": [native(0, "c2", "Read", '{"path": "b"}')]},
    ],
    "whitespace_only": [{"content": "  \n "}],
    "unoffered_tool": [{"content": '<tool_call>{"name": "Nope", "arguments": {}}</tool_call>'}],
    "json_fence": [{"content": '```json\n{"name": "Bash", "arguments": {"path": "ls"}}\n```'}],
    "bare_object_split": [
        {"content": '{"name": "Ba'},
        {"content": 'sh", "arguments": {"path": "ls"}}'},
    ],
    "two_tagged_calls": [{"content": CALL + "\n" + CALL.replace("a.py", "b.py")}],
    "malformed_call": [
        {"content": '<tool_call>{"name": "Read", "arguments": {"path": </tool_call>'}
    ],
    "stop_marker_split": [{"content": "Hi<|im_"}, {"content": "end|>"}],
    "think_unclosed": [{"content": "<think>never ends"}],
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("finish", ["stop", "length", "content_filter"])
async def test_both_dialects_get_the_same_answer_whole_and_streamed(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, case: str, finish: str
) -> None:
    deltas = CASES[case]
    fake_upstream.script(
        unary_reply(deltas, finish),
        stream_reply(deltas, finish),
        unary_reply(deltas, finish),
        stream_reply(deltas, finish),
    )
    d = await start_daemon(chain_yaml(local(fake_upstream.url)))
    a_body = {"model": "m", "max_tokens": 100, "messages": MESSAGES, "tools": A_TOOLS}
    status, a_unary = await post(d.url, "/v1/messages", a_body)
    assert status == 200, a_unary
    a_stream = anthropic_of_stream(await sse(d.url, "/v1/messages", {**a_body, "stream": True}))
    o_body = {"model": "m", "messages": MESSAGES, "tools": O_TOOLS}
    status, o_unary = await post(d.url, "/v1/chat/completions", o_body)
    assert status == 200, o_unary
    o_stream = openai_of_stream(
        await sse(
            d.url,
            "/v1/chat/completions",
            {**o_body, "stream": True, "stream_options": {"include_usage": True}},
        )
    )
    assert a_shape(a_unary) == a_shape(a_stream)
    assert openai_of_unary(o_unary) == o_stream
    native_calls = any("tool_calls" in d for d in deltas)
    lifted = not native_calls and any(b[0] == "tool_use" for b in a_shape(a_unary)[0])
    if finish != "stop":
        # A cut answer says so, a call lifted from it or not: it must not run.
        assert a_shape(a_unary)[1] == {"length": "max_tokens", "content_filter": "refusal"}[finish]
        assert o_stream["finish"] == finish
    elif lifted:
        assert a_shape(a_unary)[1] == "tool_use"
        assert o_stream["finish"] == "tool_calls"
