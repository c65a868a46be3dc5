"""A whole (non-streamed) answer whose provider reports no usage, or leaves
out a count, is priced at estimated usage, marked estimated, as a stream
without its usage is (test_anthropic_stream_estimated_usage,
test_budget_usage): the input reported, else the prompt's estimate, and the
output at four bytes (or characters) a token of what the model produced.
A priced provider's budget so moves whichever way it is asked."""

from __future__ import annotations

from typing import Any, NamedTuple

import aiohttp
import pytest

from coderouterd.state.db import open_db
from tests.conftest import RunningDaemon, StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message, openai_completion
from tests.fakes.upstream import FakeUpstream, Reply

# $1 per input token, $2 per output token; a $5 budget any answer spends.
PRICED = """cost:
  input_tokens_per_million: 1000000
  output_tokens_per_million: 2000000
  monthly_budget_usd: 5
"""
# The answer read as it came (an openai_compat provider's default filters
# decode and rewrite it).
UNFILTERED = (
    PRICED
    + """output_filters:
  think: "off"
  strip_tool_markup: false
  repair_tool_calls: false
  strip_stop_markers: false
"""
)
TEXT = "hello world " * 10  # 120 characters
# What the estimate counts of the answer: an Anthropic message's content as
# JSON, `[{"type":"text","text":…}]`, 147 bytes; an OpenAI message's text.
ANTHROPIC_OUTPUT = 37
OPENAI_OUTPUT = 30
BODY: dict[str, Any] = {
    "model": "m",
    "max_tokens": 50,
    "messages": [{"role": "user", "content": "hi"}],
}


def answer(kind: str, usage: dict[str, int] | None) -> Reply:
    """A whole answer whose usage is `usage`, or none at all."""
    if kind == "anthropic":
        message = anthropic_message(TEXT)
        del message["usage"]
        if usage is not None:
            message["usage"] = usage
        return Reply(json=message)
    completion = openai_completion(TEXT)
    del completion["usage"]
    if usage is not None:
        completion["usage"] = usage
    return Reply(json=completion, dialect="openai")


async def rows(d: RunningDaemon) -> list[dict[str, Any]]:
    await d.state.writer.flush()
    conn = await open_db(d.state.path, readonly=True)
    try:
        found = await conn.execute_fetchall(
            "SELECT provider, input_tokens, output_tokens, cost_usd, usage_estimated,"
            " prompt_estimate, cache_outcome FROM requests ORDER BY ts"
        )
    finally:
        await conn.close()
    keys = ("provider", "input", "output", "cost", "estimated", "prompt", "cache")
    return [dict(zip(keys, r, strict=True)) for r in found]


class Way(NamedTuple):
    """How the client asks and the provider answers."""

    kind: str
    path: str
    extra: str = PRICED


ANTHROPIC = Way("anthropic", "/v1/messages")
OPENAI = Way("openai_compat", "/v1/chat/completions")
OPENAI_AS_SENT = Way("openai_compat", "/v1/chat/completions", UNFILTERED)
OPENAI_ON_ANTHROPIC = Way("anthropic", "/v1/chat/completions")


async def ask_twice(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, way: Way
) -> tuple[RunningDaemon, list[str]]:
    """`cloud` (priced, $5 a month) before `local`, asked twice: which answered."""
    url = fake_upstream.url if way.kind == "anthropic" else fake_upstream.url + "/v1"
    d = await start_daemon(
        chain_yaml(
            provider_yaml("cloud", url, kind=way.kind, extra=way.extra),
            provider_yaml("local", url, kind=way.kind),
        )
    )
    answered = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
        for _ in range(2):
            async with s.post(d.url + way.path, json=BODY) as resp:
                assert resp.status == 200, await resp.text()
                answered.append(resp.headers["x-coderouter-provider"])
    return d, answered


@pytest.mark.parametrize(
    ("way", "output"),
    [
        (ANTHROPIC, ANTHROPIC_OUTPUT),
        (OPENAI, OPENAI_OUTPUT),
        (OPENAI_AS_SENT, OPENAI_OUTPUT),
        (OPENAI_ON_ANTHROPIC, ANTHROPIC_OUTPUT),
    ],
    ids=[
        "anthropic-passthrough",
        "openai-passthrough-filtered",
        "openai-passthrough-as-sent",
        "openai-client-on-anthropic",
    ],
)
async def test_a_whole_answer_without_usage_is_charged_at_estimated_usage(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, way: Way, output: int
) -> None:
    """A gateway that leaves `usage` out of its non-streaming answers: the
    first answer is priced at the prompt's estimate in and the answer's
    estimate out, which spends the $5 budget, so the second request goes
    to `local`."""
    fake_upstream.default = answer(way.kind, None)
    d, answered = await ask_twice(start_daemon, fake_upstream, way)
    first = (await rows(d))[0]
    assert first["provider"] == "cloud"
    assert first["estimated"] == 1
    assert (first["input"], first["output"]) == (first["prompt"], output)
    assert first["cost"] == pytest.approx(first["prompt"] + 2.0 * output)
    assert first["cache"] == "unknown"
    assert answered == ["cloud", "local"], "the spent budget did not block the provider"


@pytest.mark.parametrize(
    ("way", "usage", "counts"),
    [
        (ANTHROPIC, {"input_tokens": 3}, (3, ANTHROPIC_OUTPUT)),
        (OPENAI_ON_ANTHROPIC, {"output_tokens": 4}, (None, 4)),
        (OPENAI, {"prompt_tokens": 3}, (3, OPENAI_OUTPUT)),
    ],
    ids=["anthropic-input-only", "openai-client-output-only", "openai-prompt-only"],
)
async def test_a_whole_answer_missing_one_count_has_only_that_one_estimated(
    start_daemon: StartDaemon,
    fake_upstream: FakeUpstream,
    way: Way,
    usage: dict[str, int],
    counts: tuple[int | None, int],
) -> None:
    """The count the provider gave is kept; the one it left out is estimated
    (None: the prompt's estimate), and the usage is marked estimated."""
    fake_upstream.default = answer(way.kind, usage)
    d, _ = await ask_twice(start_daemon, fake_upstream, way)
    first = (await rows(d))[0]
    input_tokens = first["prompt"] if counts[0] is None else counts[0]
    assert (first["provider"], first["estimated"]) == ("cloud", 1)
    assert (first["input"], first["output"]) == (input_tokens, counts[1])
    assert first["cost"] == pytest.approx(input_tokens + 2.0 * counts[1])
