"""The real Claude Code CLI, pointed at the daemon, served by a scripted OpenAI-compatible backend.

Claude Code asks for a file to be written; the backend answers with a Write
tool call (properly, as text that repair must lift, or after <think>
reasoning), Claude Code runs the tool, and the file must exist afterwards.
Side requests Claude Code makes on its own (titles, quota checks) get a
short plain answer. Further: the task finished on an Anthropic provider
when the local backend dies mid task, and a model reading one file in a
loop that gets out once the daemon tells it (tool_loop_action: inject); a
conversation that outgrows the local model's context window, finished by a
provider with a larger one, or reported as Claude Code's own "prompt is too
long" when there is none.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from coderouterd.ingress.tool_loop import HINT
from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.e2e.claude_code import claude_env, install_claude_code
from tests.fakes.strict import anthropic_refusal
from tests.fakes.transcripts import (
    anthropic_error,
    anthropic_message,
    anthropic_text_stream,
    openai_error,
    openai_text_stream,
)
from tests.fakes.upstream import FakeUpstream, Recorded, Reply
from tests.unit.wire.test_overflow import LLAMA_CPP

CONTENT = "hello from coderouterd"
THOUGHT = "SECRET-REASONING-the user wants a file"
FINAL = "The file is written."

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="session")
def claude_cli() -> list[str]:
    return install_claude_code()


def _chunk(delta: dict[str, Any], finish: str | None = None) -> tuple[str, dict[str, Any]]:
    return (
        "",
        {
            "id": "chatcmpl-e2e",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        },
    )


def text_reply(*pieces: str) -> Reply:
    return Reply(events=openai_text_stream(list(pieces)), dialect="openai")


def tool_call_reply(
    path: Path, name: str = "Write", call_id: str = "call_e2e_1", **args: str
) -> Reply:
    arguments = json.dumps({"file_path": str(path), **(args or {"content": CONTENT})})
    return Reply(
        dialect="openai",
        events=[
            _chunk({"role": "assistant", "content": ""}),
            _chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": call_id,
                            "type": "function",
                            "function": {"name": name, "arguments": ""},
                        }
                    ]
                }
            ),
            _chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments[:20]}}]}),
            _chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments[20:]}}]}),
            _chunk({}, "tool_calls"),
        ],
    )


def text_tool_call_reply(path: Path) -> Reply:
    call = json.dumps({"name": "Write", "arguments": {"file_path": str(path), "content": CONTENT}})
    return text_reply("I will write it.\n<tool_", f"call>{call[:30]}", f"{call[30:]}</tool_call>")


def thinking_tool_call_reply(path: Path) -> Reply:
    call = json.dumps({"name": "Write", "arguments": {"file_path": str(path), "content": CONTENT}})
    return text_reply("<think>", THOUGHT, "</think>", f"<tool_call>{call}</tool_call>")


def responder(first: Reply, final: Reply) -> Callable[[Recorded], Reply]:
    def choose(req: Recorded) -> Reply:
        body = req.json or {}
        messages = body.get("messages", [])
        names = {t.get("function", {}).get("name") for t in body.get("tools", [])}
        if any(m.get("role") == "tool" for m in messages):
            return final
        if "Write" in names:
            return first
        return text_reply("ok")

    return choose


def write_target(tmp_path: Path) -> Path:
    """The file Claude Code is asked to write, in a working directory of its own."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    return workdir / "hello.txt"


async def run_claude(
    cli: list[str],
    url: str,
    target: Path,
    extra_env: dict[str, str] | None = None,
    *,
    prompt: str | None = None,
    tool: str = "Write",
) -> tuple[int, str, str]:
    """Claude Code asked to write CONTENT to `target` (or `prompt`, with
    `tool` allowed), run in its directory."""
    workdir = target.parent
    home = workdir / "home"
    home.mkdir()
    proc = await asyncio.create_subprocess_exec(
        *cli,
        "-p",
        prompt or f"Write the text '{CONTENT}' to the file {target} using the Write tool.",
        "--allowedTools",
        tool,
        "--output-format",
        "text",
        cwd=workdir,
        env={**claude_env(home, url), **(extra_env or {})},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=180)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return proc.returncode or 0, out.decode(), err.decode()


@pytest.mark.parametrize("variant", ["tool_calls", "repaired_text", "think_then_text_call"])
async def test_claude_code_writes_a_file_through_the_daemon(
    claude_cli: list[str],
    start_daemon: StartDaemon,
    fake_upstream: FakeUpstream,
    tmp_path: Path,
    variant: str,
) -> None:
    target = write_target(tmp_path)
    first = {
        "tool_calls": tool_call_reply,
        "repaired_text": text_tool_call_reply,
        "think_then_text_call": thinking_tool_call_reply,
    }[variant](target)
    final = (
        text_reply("<think>", THOUGHT, "</think>", FINAL)
        if variant.startswith("think")
        else text_reply(FINAL)
    )
    fake_upstream.responder = responder(first, final)
    backend = provider_yaml("local", fake_upstream.url + "/v1", kind="openai_compat")
    d = await start_daemon(chain_yaml(backend))
    code, out, err = await run_claude(claude_cli, d.url, target)
    assert code == 0, f"claude exited {code}\nstdout:\n{out}\nstderr:\n{err}"
    assert target.read_text() == CONTENT
    assert FINAL in out
    assert THOUGHT not in out
    assert "<tool_call>" not in out
    tooled = [r for r in fake_upstream.requests if r.json and r.json.get("tools")]
    assert tooled, "Claude Code never reached the backend with its tools"


async def test_claude_code_finishes_on_anthropic_when_the_local_backend_dies_mid_task(
    claude_cli: list[str],
    start_daemon: StartDaemon,
    fake_upstream: FakeUpstream,
    tmp_path: Path,
) -> None:
    # The local model thinks and calls Write; when Claude Code sends the tool's
    # result back, the local backend is gone and an Anthropic provider takes
    # over, with the local model's unsigned thinking in the history and
    # thinking on. The fake Anthropic upstream refuses what the real one would.
    target = write_target(tmp_path)
    refused: list[str] = []

    def choose(req: Recorded) -> Reply:
        body = req.json or {}
        if req.path.endswith("/chat/completions"):
            names = {t.get("function", {}).get("name") for t in body.get("tools", [])}
            if any(m.get("role") == "tool" for m in body.get("messages", [])):
                return openai_error(503, "model unloaded")
            return thinking_tool_call_reply(target) if "Write" in names else text_reply("ok")
        problem = anthropic_refusal(body)
        if problem is not None:
            refused.append(problem)
            return anthropic_error(400, "invalid_request_error", problem)
        if body.get("stream"):
            return Reply(events=anthropic_text_stream([FINAL]))
        return Reply(json=anthropic_message(FINAL))

    fake_upstream.responder = choose
    local = provider_yaml("local", fake_upstream.url + "/v1", kind="openai_compat")
    claude = provider_yaml("claude", fake_upstream.url)
    d = await start_daemon(chain_yaml(local, claude))
    code, out, err = await run_claude(
        claude_cli, d.url, target, extra_env={"MAX_THINKING_TOKENS": "2048"}
    )
    assert code == 0, f"claude exited {code}\nstdout:\n{out}\nstderr:\n{err}\nrefused: {refused}"
    assert target.read_text() == CONTENT
    assert FINAL in out and THOUGHT not in out
    assert not refused
    taken = [
        r.json
        for r in fake_upstream.requests
        if r.path.endswith("/v1/messages") and r.json and r.json.get("tools")
    ]
    assert taken, "the Anthropic provider never took over the task"
    assert any(
        b.get("type") == "tool_result"
        for m in taken[-1]["messages"]
        if isinstance(m.get("content"), list)
        for b in m["content"]
    )


async def test_claude_code_leaves_a_tool_loop_when_the_daemon_tells_its_model(
    claude_cli: list[str],
    start_daemon: StartDaemon,
    fake_upstream: FakeUpstream,
    tmp_path: Path,
) -> None:
    # A local model that reads the same file again and again, until its
    # system prompt says it is looping (tool_loop_action: inject).
    target = write_target(tmp_path)
    target.write_text(CONTENT)
    calls = itertools.count(1)

    def choose(req: Recorded) -> Reply:
        body = req.json or {}
        names = {t.get("function", {}).get("name") for t in body.get("tools", [])}
        if "Read" not in names:
            return text_reply("ok")
        system = [m for m in body.get("messages", []) if m.get("role") == "system"]
        if HINT in json.dumps(system):
            return text_reply(FINAL)
        return tool_call_reply(target, "Read", f"call_loop_{next(calls)}", limit="100")

    fake_upstream.responder = choose
    backend = provider_yaml("local", fake_upstream.url + "/v1", kind="openai_compat")
    profile = "  - {name: default, providers: [local], tool_loop_action: inject}\n"
    d = await start_daemon(chain_yaml(backend, profiles=profile))

    code, out, err = await run_claude(
        claude_cli,
        d.url,
        target,
        prompt=f"Read the file {target} and say what it holds.",
        tool="Read",
    )

    assert code == 0, f"claude exited {code}\nstdout:\n{out}\nstderr:\n{err}"
    assert FINAL in out
    # The first read returns the file, the next ones Claude Code's "unchanged
    # since last read" note: three of those (same call, same result) make the
    # loop; the fifth turn is told of it.
    assert next(calls) == 5


def outgrown(target: Path) -> Callable[[Recorded], Reply]:
    """The local model (llama.cpp) calls Write; the turn that sends the
    tool's result back no longer fits its window. An Anthropic provider,
    when the chain has one, has room for it."""

    def choose(req: Recorded) -> Reply:
        body = req.json or {}
        if not req.path.endswith("/chat/completions"):
            if body.get("stream"):
                return Reply(events=anthropic_text_stream([FINAL]))
            return Reply(json=anthropic_message(FINAL))
        if any(m.get("role") == "tool" for m in body.get("messages", [])):
            return Reply(status=400, json=LLAMA_CPP, dialect="openai")
        names = {t.get("function", {}).get("name") for t in body.get("tools", [])}
        return tool_call_reply(target) if "Write" in names else text_reply("ok")

    return choose


@pytest.mark.parametrize("larger", [True, False], ids=["a_larger_window", "no_larger_window"])
async def test_claude_code_goes_on_when_the_local_window_is_outgrown(
    claude_cli: list[str],
    start_daemon: StartDaemon,
    fake_upstream: FakeUpstream,
    tmp_path: Path,
    larger: bool,
) -> None:
    target = write_target(tmp_path)
    fake_upstream.responder = outgrown(target)
    providers = [provider_yaml("local", fake_upstream.url + "/v1", kind="openai_compat")]
    if larger:
        providers.append(provider_yaml("claude", fake_upstream.url))
    d = await start_daemon(chain_yaml(*providers))
    code, out, err = await run_claude(claude_cli, d.url, target)
    if larger:
        assert code == 0, f"claude exited {code}\nstdout:\n{out}\nstderr:\n{err}"
        assert target.read_text() == CONTENT
        assert FINAL in out
        # A healthy backend whose window was outgrown is no failure.
        assert d.daemon.healing.book.health("local").streak == 0
    else:
        # Claude Code recognised the error as its own "prompt is too long", not
        # an opaque API error (in -p mode it stops there; interactively it compacts).
        assert code == 1
        assert out.strip() == "Prompt is too long", f"stdout:\n{out}\nstderr:\n{err}"
