"""`coderouterd replay ID` in text: the backend's words outside the answer's
own text (a tool's name, the stop reason) are shown on their line, their
control characters escaped; the answer's lines are the model's."""

from __future__ import annotations

from tests.conftest import chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.process import StartServe, child_env, run_cli
from tests.integration.state.test_state_process import cli_args, post, wait_committed

MESSAGES = [{"role": "user", "content": "hi"}]


def answer() -> dict:
    body = anthropic_message("two\nlines", stop_reason="tool_use\x1b[2J")
    body["content"].append(
        {"type": "tool_use", "id": "toolu_1", "name": "Read\nstatus 999", "input": {"p": "a"}}
    )
    return body


async def test_a_replayed_answer_keeps_the_backends_names_on_their_lines(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=answer())
    d = await serve_process(chain_yaml(provider_yaml("a", fake_upstream.url)))
    status, _, rid = await post(d.url, {"model": "m", "max_tokens": 5, "messages": MESSAGES})
    assert status == 200
    await wait_committed(d, 2)
    run = await run_cli(
        "replay", rid, "--socket", str(d.socket_path), *cli_args(d), env=child_env(d.root)
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("status 200 ") and lines[0].endswith("stop_reason tool_use\\x1b[2J")
    assert [line for line in lines if line.startswith("status")] == [lines[0]]
    assert lines[1:3] == ["two", "lines"]
    assert 'tool call Read\\nstatus 999: {"p": "a"}' in lines
    assert "\x1b" not in run.stdout
