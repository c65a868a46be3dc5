"""The OpenAI passthrough codec's request: what it reads of the client's values."""

from __future__ import annotations

import msgspec
import pytest

from coderouterd.errors import InvalidRequestError
from coderouterd.routing.call import Call
from coderouterd.translate.passthrough import OpenAIPassthroughCodec


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
