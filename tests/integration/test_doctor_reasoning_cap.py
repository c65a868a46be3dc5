"""`coderouterd doctor` and a model that reasons before it answers (Qwen3,
DeepSeek-R1 distills): the reasoning counts against max_tokens, so the
doctor gives it room, and an answer cut there while the model still
reasons is a warning, not an empty answer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from coderouterd.config import load_config
from coderouterd.doctor import Check, examine, exit_status
from tests.conftest import chain_yaml, provider_yaml
from tests.fakes.transcripts import openai_completion, openai_text_stream
from tests.fakes.upstream import FakeUpstream, Recorded, Reply

REASONING = "Okay, the user wants me to " + "think " * 200


def reasoning_backend(*, room_needed: int, shows_reasoning: bool = True) -> Any:
    """Answers every check well when max_tokens is at least `room_needed`;
    below that, it is cut while still reasoning (finish_reason `length`, no
    text), its reasoning shown as `reasoning_content` or kept hidden."""

    def answer(req: Recorded) -> Reply:
        body = req.json or {}
        limit = body.get("max_tokens") or body.get("max_completion_tokens") or 10**9
        if body.get("stream"):
            return Reply(dialect="openai", events=openai_text_stream(["1 2 ", "3 4 5"]))
        if limit < room_needed:
            cut = openai_completion("", finish_reason="length", completion_tokens=limit)
            message = cut["choices"][0]["message"]
            message["content"] = None
            if shows_reasoning:
                message["reasoning_content"] = REASONING
            return Reply(dialect="openai", json=cut)
        if body.get("tools"):
            done = openai_completion("", finish_reason="tool_calls")
            done["choices"][0]["message"]["tool_calls"] = [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "record_answer", "arguments": '{"value": "blue"}'},
                }
            ]
            return Reply(dialect="openai", json=done)
        if "code word" in json.dumps(body.get("messages")):
            return Reply(dialect="openai", json=openai_completion("MARMALADE", prompt_tokens=400))
        return Reply(dialect="openai", json=openai_completion("ready"))

    return answer


async def run_doctor(fake_upstream: FakeUpstream, tmp_path: Path) -> list[Check]:
    path = tmp_path / "config.yaml"
    path.write_text(
        chain_yaml(provider_yaml("local", fake_upstream.url + "/v1", kind="openai_compat"))
    )
    return await examine(load_config(path), "local", context_tokens=100, timeout_s=10)


async def test_a_model_that_reasons_for_a_thousand_tokens_passes_every_check(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    fake_upstream.responder = reasoning_backend(room_needed=1024)
    checks = await run_doctor(fake_upstream, tmp_path)
    verdicts = {c.name: c.verdict for c in checks}
    assert verdicts == {
        "answer": "OK",
        "stream": "OK",
        "tools": "OK",
        "context": "OK",
        "cache": "SKIP",  # the backend reports no cached tokens
    }, checks
    assert exit_status(checks) == 0


@pytest.mark.parametrize("shows_reasoning", [True, False], ids=["shown", "hidden"])
async def test_a_model_cut_at_max_tokens_while_reasoning_is_a_warning_and_the_checks_go_on(
    fake_upstream: FakeUpstream, tmp_path: Path, shows_reasoning: bool
) -> None:
    fake_upstream.responder = reasoning_backend(room_needed=10**9, shows_reasoning=shows_reasoning)
    checks = await run_doctor(fake_upstream, tmp_path)
    by_name = {c.name: c for c in checks}
    assert {c.name: c.verdict for c in checks} == {
        "answer": "WARN",
        "stream": "OK",
        "tools": "WARN",
        "context": "WARN",
        "cache": "SKIP",
    }, checks
    assert exit_status(checks) == 0
    detail = by_name["answer"].detail
    assert "reached max_tokens" in detail and "with no answer yet" in detail
    assert ("characters of thinking" in detail) is shows_reasoning
    assert "could not tell whether it calls tools" in by_name["tools"].detail
    assert "could not tell whether the prompt's start was kept" in by_name["context"].detail
