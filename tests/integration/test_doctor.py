"""`coderouterd doctor NAME` as a real process against scripted backends: one a coding
agent can use, one that cannot call tools and forgets the start of a long prompt."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import chain_yaml, provider_yaml
from tests.fakes.transcripts import (
    anthropic_error,
    anthropic_message,
    anthropic_text_stream,
    openai_completion,
    openai_text_stream,
)
from tests.fakes.upstream import FakeUpstream, Recorded, Reply
from tests.integration.process import child_env, run_cli
from tests.unit.wire.test_overflow import LLAMA_CPP

WORD = "MARMALADE"


def backend(*, good: bool) -> Any:
    cached: list[str] = []

    def answer(req: Recorded) -> Reply:
        body = req.json or {}
        prompt = json.dumps(body.get("messages", []))
        if body.get("stream"):
            return Reply(dialect="openai", events=openai_text_stream(["1 2 ", "3 4 5"]))
        if body.get("tools"):
            if not good:
                return Reply(dialect="openai", json=openai_completion("I would record blue."))
            done = openai_completion("", finish_reason="tool_calls")
            done["choices"][0]["message"]["tool_calls"] = [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "record_answer", "arguments": '{"value": "blue"}'},
                }
            ]
            return Reply(dialect="openai", json=done)
        if "code word" in prompt:
            # A backend with a small window only sees the end of the prompt.
            seen = WORD if good else "I do not know."
            return Reply(dialect="openai", json=openai_completion(seen, prompt_tokens=2048))
        if "cached" in prompt:
            # A prefix cache like vLLM's: the good one reports what it read again.
            done = openai_completion("cached", prompt_tokens=5000)
            if good:
                cached.append(prompt)
                details = {"cached_tokens": 4992 if len(cached) > 1 else 0}
                done["usage"]["prompt_tokens_details"] = details
            return Reply(dialect="openai", json=done)
        return Reply(dialect="openai", json=openai_completion("ready"))

    return answer


async def doctor(fake: FakeUpstream, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    config = tmp_path / "config.yaml"
    config.write_text(chain_yaml(provider_yaml("local", fake.url + "/v1", kind="openai_compat")))
    result = await run_cli(
        "doctor", "local", "--config", str(config), "--context-tokens", "3000", *args,
        env=child_env(tmp_path),
        timeout=30,
    )  # fmt: skip
    return result.returncode, result.stdout, result.stderr


async def test_a_backend_fit_for_an_agent_passes_every_check(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    fake_upstream.responder = backend(good=True)
    code, out, err = await doctor(fake_upstream, tmp_path, "--json")
    assert code == 0, out + err
    checks = {c["name"]: c for c in json.loads(out)}
    assert [c["verdict"] for c in checks.values()] == ["OK"] * 5
    assert checks["tools"]["detail"] == "a structured tool call"
    assert checks["cache"]["detail"] == (
        "the second request read 4992 cached tokens (the first wrote 0)"
    )
    assert "2048 input tokens" in checks["context"]["detail"]
    # The long prompt really was long: about 3000 tokens of four bytes.
    longest = max(len(r.body) for r in fake_upstream.requests)
    assert longest > 3000 * 4


async def test_a_backend_that_cannot_serve_an_agent_is_told_what_to_change(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    fake_upstream.responder = backend(good=False)
    code, out, _ = await doctor(fake_upstream, tmp_path)
    assert code == 2
    lines = {line.split()[1]: line for line in out.splitlines()[1:]}
    assert lines["answer"].split()[0] == "OK"
    assert lines["stream"].split()[0] == "OK"
    assert "PROBLEM" in lines["tools"] and "answered in text" in lines["tools"]
    assert "PROBLEM" in lines["context"] and "OLLAMA_CONTEXT_LENGTH" in lines["context"]
    assert "SKIP" in lines["cache"] and "reports no cached tokens" in lines["cache"]


async def test_a_backend_that_refuses_a_long_prompt_is_told_its_window(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    good = backend(good=True)

    def answer(req: Recorded) -> Reply:
        if "code word" in json.dumps((req.json or {}).get("messages", [])):
            return Reply(status=400, json=LLAMA_CPP, dialect="openai")
        return good(req)

    fake_upstream.responder = answer
    code, out, _ = await doctor(fake_upstream, tmp_path)
    assert code == 2
    lines = {line.split()[1]: line for line in out.splitlines()[1:]}
    assert "PROBLEM" in lines["context"]
    assert "does not fit the backend's context window of 32768 tokens" in lines["context"]
    assert "llama.cpp: -c" in lines["context"]


async def test_an_unreachable_or_unknown_provider(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    fake_upstream.responder = backend(good=True)
    await fake_upstream.close()
    code, out, _ = await doctor(fake_upstream, tmp_path)
    assert code == 2
    assert out.splitlines()[1].split()[:2] == ["PROBLEM", "answer"]
    assert [line.split()[0] for line in out.splitlines()[2:]] == ["SKIP"] * 4
    config = tmp_path / "config.yaml"
    result = await run_cli(
        "doctor", "nope", "--config", str(config), env=child_env(tmp_path), timeout=30
    )
    assert result.returncode == 1
    assert "no provider 'nope' (configured: local)" in result.stderr


def anthropic_backend(cache: str) -> Any:
    """An Anthropic-kind backend fit for an agent, whose prompt cache `works`,
    is `absent` (it reports no reads) or `refused` (cache_control is a 400)."""
    written: set[str] = set()

    def answer(req: Recorded) -> Reply:
        body = req.json or {}
        if body.get("stream"):
            return Reply(events=anthropic_text_stream(["1 2 ", "3 4 5"]))
        if body.get("tools"):
            done = anthropic_message("", stop_reason="tool_use")
            done["content"] = [
                {
                    "type": "tool_use",
                    "id": "t1",
                    "name": "record_answer",
                    "input": {"value": "blue"},
                }
            ]
            return Reply(json=done)
        if "code word" in json.dumps(body.get("messages")):
            return Reply(json=anthropic_message(WORD))
        system = body.get("system")
        if not isinstance(system, list):
            return Reply(json=anthropic_message("ready"))
        if cache == "refused":
            return anthropic_error(400, "invalid_request_error", "cache_control: unknown field")
        message = anthropic_message("cached", input_tokens=8)
        prefix = system[0]["text"]
        tokens = len(prefix) // 4
        key = "cache_read_input_tokens" if prefix in written else "cache_creation_input_tokens"
        written.add(prefix)
        message["usage"][key] = tokens if cache == "works" else 0
        return Reply(json=message)

    return answer


async def anthropic_doctor(fake: FakeUpstream, tmp_path: Path) -> tuple[int, dict[str, Any]]:
    config = tmp_path / "config.yaml"
    config.write_text(chain_yaml(provider_yaml("claude", fake.url)))
    result = await run_cli(
        "doctor", "claude", "--config", str(config), "--context-tokens", "3000", "--json",
        env=child_env(tmp_path),
        timeout=30,
    )  # fmt: skip
    return result.returncode, {c["name"]: c for c in json.loads(result.stdout)}


async def test_a_working_prompt_cache_is_read_on_the_second_request(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    fake_upstream.responder = anthropic_backend("works")
    code, checks = await anthropic_doctor(fake_upstream, tmp_path)
    assert code == 0
    assert checks["cache"]["verdict"] == "OK"
    # About 5000 tokens of four bytes, above every model's least cacheable prefix.
    assert checks["cache"]["detail"] == (
        "the second request read 4988 cached tokens (the first wrote 4988)"
    )
    cached = [
        r.json for r in fake_upstream.requests if isinstance((r.json or {}).get("system"), list)
    ]
    assert len(cached) == 2
    assert cached[0]["system"][0]["cache_control"] == {"type": "ephemeral"}


async def test_a_cache_that_reads_nothing_warns_and_one_refused_is_a_problem(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    fake_upstream.responder = anthropic_backend("absent")
    code, checks = await anthropic_doctor(fake_upstream, tmp_path)
    assert code == 0
    assert checks["cache"]["verdict"] == "WARN"
    assert "read nothing from the cache (the first wrote 0)" in checks["cache"]["detail"]
    fake_upstream.responder = anthropic_backend("refused")
    code, checks = await anthropic_doctor(fake_upstream, tmp_path)
    assert code == 2
    assert checks["cache"]["verdict"] == "PROBLEM"
    assert "status 400 for a request with cache_control" in checks["cache"]["detail"]
    assert [c["verdict"] for n, c in checks.items() if n != "cache"] == ["OK"] * 4
