"""The real Claude Code CLI on local-model quirks the daemon smooths over.

A model that prints its tool call as `<tool_call>{…}</tool_call>` text
asked to write code mentioning `<think>`: the call is lifted whole and the
file written as given. Devstral (Mistral's coding-agent model) behind a
server that takes only 9-letter-or-digit tool call ids: the tool loop gets
past its first call.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.e2e.claude_code import install_claude_code
from tests.e2e.test_claude_code import run_claude, text_reply, write_target
from tests.fakes.upstream import FakeUpstream, Recorded, Reply

pytestmark = pytest.mark.timeout(240)

FINAL = "The file is written."
SOURCE = (
    "def strip_reasoning(text):\n"
    "    # models wrap their reasoning in <think>...</think>\n"
    "    return text.split('</think>')[-1]\n"
)
MISTRAL_ID = re.compile(r"[a-zA-Z0-9]{9}")


@pytest.fixture(scope="session")
def claude_cli() -> list[str]:
    return install_claude_code()


def tool_names(req: Recorded) -> set[str]:
    return {t.get("function", {}).get("name") for t in (req.json or {}).get("tools") or []}


def has_tool_result(req: Recorded) -> bool:
    return any(m.get("role") == "tool" for m in (req.json or {}).get("messages", []))


async def test_claude_code_writes_code_that_mentions_think_tags_from_a_text_tool_call(
    claude_cli: list[str], start_daemon: StartDaemon, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    target = write_target(tmp_path).with_name("strip.py")
    call = json.dumps({"name": "Write", "arguments": {"file_path": str(target), "content": SOURCE}})

    def choose(req: Recorded) -> Reply:
        if "Write" not in tool_names(req):
            return text_reply("ok")
        if has_tool_result(req):
            return text_reply(FINAL)
        return text_reply("I will write it.\n<tool_call>", call[:40], call[40:], "</tool_call>")

    fake_upstream.responder = choose
    backend = provider_yaml("local", fake_upstream.url + "/v1", kind="openai_compat")
    d = await start_daemon(chain_yaml(backend))
    prompt = f"Write a helper that strips think tags to {target}."
    code, out, err = await run_claude(claude_cli, d.url, target, prompt=prompt)
    assert code == 0, f"claude exited {code}\nstdout:\n{out}\nstderr:\n{err}"
    assert target.exists(), f"the Write call was never lifted; Claude Code printed:\n{out}"
    assert target.read_text() == SOURCE
    assert FINAL in out


def mistral_refusal(body: dict[str, Any]) -> str | None:
    """What mistral_common answers to a history whose tool call ids are not 9 alphanumerics."""
    for m in body.get("messages", []):
        ids = [c.get("id") for c in m.get("tool_calls") or []]
        ids += [m.get("tool_call_id")] if m.get("role") == "tool" else []
        for i in ids:
            if not isinstance(i, str) or not MISTRAL_ID.fullmatch(i):
                return f"Tool call id was {i} but must be a-z, A-Z, 0-9, with a length of 9."
    return None


def devstral_write(target: Path, content: str) -> Reply:
    """A streamed Write call with an id of Mistral's own."""
    arguments = json.dumps({"file_path": str(target), "content": content})
    start = {"index": 0, "id": "Ab3dE6gH9", "type": "function",
             "function": {"name": "Write", "arguments": ""}}  # fmt: skip
    deltas: list[dict[str, Any]] = [
        {"role": "assistant", "content": ""},
        {"tool_calls": [start]},
        {"tool_calls": [{"index": 0, "function": {"arguments": arguments}}]},
    ]
    events = [("", chunk(delta, None)) for delta in deltas]
    return Reply(events=[*events, ("", chunk({}, "tool_calls"))], dialect="openai")


def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [choice]}  # fmt: skip


async def test_claude_code_tool_loop_on_devstral_gets_past_its_first_call(
    claude_cli: list[str], start_daemon: StartDaemon, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    target = write_target(tmp_path)
    content = "hello from devstral"
    refused: list[str] = []

    def choose(req: Recorded) -> Reply:
        problem = mistral_refusal(req.json or {})
        if problem is not None:
            refused.append(problem)
            error = {"object": "error", "message": problem, "type": "BadRequestError",
                     "param": None, "code": 400}  # fmt: skip
            return Reply(status=400, json=error, dialect="openai")
        if "Write" not in tool_names(req):
            return text_reply("ok")
        return text_reply(FINAL) if has_tool_result(req) else devstral_write(target, content)

    fake_upstream.responder = choose
    backend = provider_yaml("devstral", fake_upstream.url + "/v1", kind="openai_compat")
    d = await start_daemon(
        chain_yaml(backend.replace("devstral-model", "mistralai/Devstral-Small-2507"))
    )
    prompt = f"Write the text '{content}' to the file {target}."
    code, out, err = await run_claude(claude_cli, d.url, target, prompt=prompt)
    assert target.read_text() == content
    assert not refused, f"the backend refused the history: {refused}"
    assert code == 0, f"claude exited {code}\nstdout:\n{out}\nstderr:\n{err}"
    assert FINAL in out
