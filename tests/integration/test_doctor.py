"""`coderouterd doctor NAME` as a real process against scripted backends: one a coding
agent can use, one that cannot call tools and forgets the start of a long prompt."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import chain_yaml, provider_yaml
from tests.fakes.transcripts import openai_completion, openai_text_stream
from tests.fakes.upstream import FakeUpstream, Recorded, Reply
from tests.integration.process import child_env, run_cli

WORD = "MARMALADE"


def backend(*, good: bool) -> Any:
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
    assert [c["verdict"] for c in checks.values()] == ["OK"] * 4
    assert checks["tools"]["detail"] == "a structured tool call"
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


async def test_an_unreachable_or_unknown_provider(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    fake_upstream.responder = backend(good=True)
    await fake_upstream.close()
    code, out, _ = await doctor(fake_upstream, tmp_path)
    assert code == 2
    assert out.splitlines()[1].split()[:2] == ["PROBLEM", "answer"]
    assert [line.split()[0] for line in out.splitlines()[2:]] == ["SKIP"] * 3
    config = tmp_path / "config.yaml"
    result = await run_cli(
        "doctor", "nope", "--config", str(config), env=child_env(tmp_path), timeout=30
    )
    assert result.returncode == 1
    assert "no provider 'nope' (configured: local)" in result.stderr
