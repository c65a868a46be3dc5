"""The real Claude Code CLI, served by a Claude of another generation than
the one it names.

Claude Code shapes `thinking` and `output_config.effort` for the model it
asks for: its default (Opus 4.8) gets adaptive thinking at effort `high`,
Sonnet 4.5 a budget of 31999 tokens. The provider's Claude model takes only
the other shape (Sonnet 4, the README's example cloud provider, takes only
a budget and no effort; Opus 4.8 takes only adaptive thinking), and the
fake Anthropic upstream refuses what the real API refuses for the body's
model (tests/fakes/strict.generation_refusal): Claude Code must get its
answer all the same.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.e2e.claude_code import install_claude_code
from tests.e2e.test_claude_code import run_claude, write_target
from tests.fakes.strict import anthropic_refusal
from tests.fakes.transcripts import anthropic_error, anthropic_message, anthropic_text_stream
from tests.fakes.upstream import FakeUpstream, Recorded, Reply

pytestmark = pytest.mark.timeout(240)

ANSWER = "ANSWER-FROM-CLAUDE"


@pytest.fixture(scope="session")
def claude_cli() -> list[str]:
    return install_claude_code()


# The model Claude Code is told to use (None: its default), the provider's
# model, and the thinking type that model takes.
CASES = {
    "default-on-sonnet-4": (None, "claude-sonnet-4-20250514", "enabled"),
    "sonnet-4-5-on-opus-4-8": ("claude-sonnet-4-5", "claude-opus-4-8", "adaptive"),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_claude_code_answers_through_a_claude_of_another_generation(
    claude_cli: list[str],
    start_daemon: StartDaemon,
    fake_upstream: FakeUpstream,
    tmp_path: Path,
    case: tuple[str | None, str, str],
) -> None:
    asked, served, shape = case
    refused: list[str] = []

    def choose(req: Recorded) -> Reply:
        body = req.json or {}
        if (problem := anthropic_refusal(body)) is not None:
            refused.append(problem)
            return anthropic_error(400, "invalid_request_error", problem)
        if body.get("stream"):
            return Reply(events=anthropic_text_stream([ANSWER]))
        return Reply(json=anthropic_message(ANSWER))

    fake_upstream.responder = choose
    cloud = provider_yaml("cloud", fake_upstream.url).replace("cloud-model", served)
    d = await start_daemon(chain_yaml(cloud))
    env = {"ANTHROPIC_MODEL": asked} if asked else {}
    code, out, err = await run_claude(
        claude_cli, d.url, write_target(tmp_path), env, prompt="say hi"
    )
    assert not refused, f"the API refused what the daemon forwarded: {refused}"
    assert code == 0, f"claude exited {code}\nstdout:\n{out}\nstderr:\n{err[-2000:]}"
    assert ANSWER in out
    thought = [r.json["thinking"] for r in fake_upstream.requests if "thinking" in (r.json or {})]
    assert thought, "Claude Code asked for no thinking: nothing was reshaped"
    assert {t["type"] for t in thought} == {shape}
