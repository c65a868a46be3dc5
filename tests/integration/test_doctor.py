"""`coderouterd doctor NAME` as a real process against scripted backends: one a coding
agent can use, one that cannot call tools and forgets the start of a long prompt."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

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


async def anthropic_doctor(
    fake: FakeUpstream, tmp_path: Path, *args: str
) -> tuple[int, dict[str, Any]]:
    config = tmp_path / "config.yaml"
    config.write_text(chain_yaml(provider_yaml("claude", fake.url)))
    result = await run_cli(
        "doctor", "claude", "--config", str(config), "--context-tokens", "3000", "--json", *args,
        env=child_env(tmp_path),
        timeout=30,
    )  # fmt: skip
    assert "Traceback" not in result.stderr, result.stderr[-600:]
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


def check_of(req: Recorded) -> str:
    """Which of the doctor's checks an Anthropic-dialect request is."""
    body = req.json or {}
    if body.get("stream"):
        return "stream"
    if body.get("tools"):
        return "tools"
    if "code word" in json.dumps(body.get("messages")):
        return "context"
    return "cache" if isinstance(body.get("system"), list) else "answer"


def anthropic_but(check: str, reply: Reply) -> Any:
    """The Anthropic-kind backend fit for an agent, but `check` gets `reply`."""
    good = anthropic_backend("works")
    return lambda req: reply if check_of(req) == check else good(req)


@pytest.mark.parametrize(
    "given", [None, '{"value": "blue"}', ["blue"]], ids=["null", "string", "list"]
)
async def test_a_tool_call_whose_input_is_not_an_object_is_a_problem(
    fake_upstream: FakeUpstream, tmp_path: Path, given: object
) -> None:
    # An anthropic backend's answer is passed through as it came.
    done = anthropic_message("", stop_reason="tool_use")
    done["content"] = [{"type": "tool_use", "id": "t1", "name": "record_answer", "input": given}]
    fake_upstream.responder = anthropic_but("tools", Reply(json=done))
    code, checks = await anthropic_doctor(fake_upstream, tmp_path)
    assert code == 2
    assert checks["tools"]["verdict"] == "PROBLEM"
    assert "a tool call whose input is not an object" in checks["tools"]["detail"]
    assert [c["verdict"] for n, c in checks.items() if n != "tools"] == ["OK"] * 4


async def test_null_text_or_content_in_an_answer_is_a_problem(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    done = anthropic_message("")
    done["content"] = [{"type": "text", "text": None}]
    fake_upstream.responder = anthropic_but("answer", Reply(json=done))
    code, checks = await anthropic_doctor(fake_upstream, tmp_path)
    assert code == 2
    assert checks["answer"]["verdict"] == "PROBLEM"
    assert checks["answer"]["detail"] == "an empty answer"
    done["content"] = None
    fake_upstream.responder = anthropic_but("tools", Reply(json=done))
    code, checks = await anthropic_doctor(fake_upstream, tmp_path)
    assert code == 2
    assert checks["tools"]["verdict"] == "PROBLEM"
    # A `content` that is no list is no message: no answer (answer_check).
    assert "response is not a message with content" in checks["tools"]["detail"]


async def test_a_window_too_small_for_the_cached_prompt_is_not_blamed_on_the_markers(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    good = anthropic_backend("works")

    def answer(req: Recorded) -> Reply:
        # A 4096-token window: the ~3000-token context check fits, the ~5000-token
        # system prompt does not, with or without cache_control.
        tokens = len(req.body) // 4
        if tokens > 4096:
            message = f"prompt is too long: {tokens} tokens > 4096 maximum"
            return anthropic_error(400, "invalid_request_error", message)
        return good(req)

    fake_upstream.responder = answer
    code, checks = await anthropic_doctor(fake_upstream, tmp_path)
    assert code == 2
    cache = checks["cache"]
    assert cache["verdict"] == "PROBLEM"
    assert cache["detail"].startswith(
        "a ~5000-token system prompt does not fit the backend's context window of 4096 tokens "
        "(it said: prompt is too long: "
    )
    assert "llama.cpp: -c" in cache["detail"]
    assert "cache_control" not in cache["detail"]
    assert checks["context"]["verdict"] == "OK"


async def test_a_cached_prompt_refused_for_its_size_names_the_status_and_why(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    said = "Request exceeds the maximum allowed number of bytes."
    fake_upstream.responder = anthropic_but(
        "cache", anthropic_error(413, "request_too_large", said)
    )
    code, checks = await anthropic_doctor(fake_upstream, tmp_path)
    assert code == 2
    assert checks["cache"] == {
        **checks["cache"],
        "verdict": "PROBLEM",
        "detail": f"status 413 for a ~5000-token system prompt (it said: {said})",
    }


async def test_a_count_the_daemon_estimated_is_not_called_the_backends(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    poor = backend(good=False)

    def answer(req: Recorded) -> Reply:
        reply = poor(req)
        if "code word" in json.dumps((req.json or {}).get("messages", [])):
            (reply.json or {}).pop("usage")
        return reply

    fake_upstream.responder = answer
    _, out, _ = await doctor(fake_upstream, tmp_path, "--json")
    context = {c["name"]: c for c in json.loads(out)}["context"]
    assert context["verdict"] == "PROBLEM"
    assert "the start of a ~3000-token prompt was lost:" in context["detail"]
    assert "counted" not in context["detail"]


async def test_a_stream_refused_with_an_error_status_says_the_status_and_why(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    fake_upstream.responder = anthropic_but(
        "stream", anthropic_error(400, "invalid_request_error", "streaming is not supported")
    )
    code, checks = await anthropic_doctor(fake_upstream, tmp_path)
    assert code == 2
    assert checks["stream"]["verdict"] == "PROBLEM"
    assert checks["stream"]["detail"] == "status 400 (it said: streaming is not supported)"


async def test_the_cache_checks_two_requests_share_one_timeout(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    good = anthropic_backend("works")

    def answer(req: Recorded) -> Reply:
        reply = good(req)
        if check_of(req) == "cache":
            return Reply(json=reply.json, delay_before_headers=1.0)
        return reply

    fake_upstream.responder = answer
    code, checks = await anthropic_doctor(fake_upstream, tmp_path, "--timeout", "1.5")
    assert code == 2
    # Each request alone is in time; both together are not.
    assert checks["cache"]["verdict"] == "PROBLEM"
    assert checks["cache"]["detail"].startswith("no answer in time")
    assert checks["cache"]["seconds"] < 1.8


async def test_a_provider_that_gave_no_answer_is_named(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    fake_upstream.responder = lambda req: anthropic_error(529, "overloaded_error", "Overloaded")
    code, checks = await anthropic_doctor(fake_upstream, tmp_path)
    assert code == 2
    assert checks["answer"]["detail"] == "claude gave no answer (http_529: overloaded_error)"


async def test_a_context_size_below_one_token_is_refused(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(chain_yaml(provider_yaml("claude", fake_upstream.url)))
    result = await run_cli(
        "doctor", "claude", "--config", str(config), "--context-tokens", "0",
        env=child_env(tmp_path),
        timeout=30,
    )  # fmt: skip
    assert result.returncode == 2  # a usage error
    assert "--context-tokens: 0: must be at least 1" in result.stderr
    assert fake_upstream.requests == []


async def test_a_provider_that_forwards_client_keys_is_asked_with_the_clients_key(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    answer = anthropic_backend("works")

    def keyed(req: Recorded) -> Reply:
        if req.headers.get("x-api-key") != "sk-client":
            return anthropic_error(401, "authentication_error", "invalid x-api-key")
        return answer(req)

    fake_upstream.responder = keyed
    config = tmp_path / "config.yaml"
    config.write_text(
        chain_yaml(provider_yaml("claude", fake_upstream.url, extra="forward_client_key: true"))
    )
    env = {
        k: v
        for k, v in child_env(tmp_path).items()
        if k not in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "OPENAI_API_KEY")
    }
    args = ("doctor", "claude", "--config", str(config), "--context-tokens", "3000", "--json")
    result = await run_cli(*args, env={**env, "ANTHROPIC_API_KEY": "sk-client"}, timeout=30)
    assert result.returncode == 0, result.stdout
    assert {c["verdict"] for c in json.loads(result.stdout)} == {"OK"}
    # With no key to send, it says what to set instead of blaming the backend.
    result = await run_cli(*args, env=env, timeout=30)
    assert result.returncode == 1
    assert "forward_client_key" in result.stderr and "ANTHROPIC_API_KEY" in result.stderr
    assert "sk-client" not in result.stderr + result.stdout
