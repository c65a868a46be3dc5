"""The passthrough codecs' requests: what they read and change of the client's values."""

from __future__ import annotations

import msgspec
import pytest

from coderouterd.errors import InvalidRequestError
from coderouterd.routing.call import Call
from coderouterd.translate.passthrough import AnthropicPassthroughCodec, OpenAIPassthroughCodec


def call(**fields: bytes) -> Call:
    raw = {"messages": b'[{"role":"user","content":"hi"}]', **fields}
    return Call(
        request_id="r",
        dialect="openai",
        fields={k: msgspec.Raw(v) for k, v in raw.items()},
        headers={},
        stream=True,
        requested_model="m",
        profile="p",
    )


def sent(c: Call) -> dict[str, object]:
    body, _ = OpenAIPassthroughCodec("p", "model", max_output_tokens=None).request(c)
    decoded = msgspec.json.decode(body)
    assert isinstance(decoded, dict)
    return decoded


def test_stream_options_ask_for_usage_and_keep_the_clients_own() -> None:
    assert sent(call())["stream_options"] == {"include_usage": True}
    got = sent(call(stream_options=b'{"include_obfuscation":false}'))
    assert got["stream_options"] == {"include_obfuscation": False, "include_usage": True}


def test_stream_options_too_deep_to_read_are_a_400_naming_them() -> None:
    # Read deeper in the stack than the body's first read: what that let
    # through may still be too deep here.
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(InvalidRequestError) as caught:
        sent(call(stream_options=deep))
    assert caught.value.field == "stream_options"


def claude_sent(limit: int, max_tokens: int, budget: int) -> tuple[dict[str, object], list[str]]:
    thinking = msgspec.json.encode({"type": "enabled", "budget_tokens": budget})
    c = call(max_tokens=str(max_tokens).encode(), thinking=thinking)
    body, degraded = AnthropicPassthroughCodec("p", "m", max_output_tokens=limit).request(c)
    return msgspec.json.decode(body), [d.field for d in degraded]


@pytest.mark.parametrize(
    ("limit", "max_tokens", "budget", "thinking"),
    [
        # Claude Code's 31999 of 32000, clamped to 8192: the budget follows.
        (8192, 32000, 31999, {"type": "enabled", "budget_tokens": 8191}),
        # A budget that still fits is left alone.
        (8192, 32000, 4000, {"type": "enabled", "budget_tokens": 4000}),
        # No budget Anthropic takes (1024 or more) fits: thinking goes.
        (1024, 32000, 31999, None),
    ],
)
def test_a_clamped_max_tokens_keeps_the_thinking_budget_below_it(
    limit: int, max_tokens: int, budget: int, thinking: dict[str, object] | None
) -> None:
    sent, degraded = claude_sent(limit, max_tokens, budget)
    assert sent["max_tokens"] == limit
    assert sent.get("thinking") == thinking
    assert "max_tokens" in degraded
