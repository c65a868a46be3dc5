"""A prompt measured as a provider is sent it: whole, or without the fields
that declare and pick tools (a model that cannot call them); each way
measured once, and only when asked."""

from __future__ import annotations

import msgspec

from coderouterd.translate.estimate import MediaScan, SentPrompt, estimate_prompt_tokens


def raw(value: object) -> msgspec.Raw:
    return msgspec.Raw(msgspec.json.encode(value))


MESSAGES = raw([{"role": "user", "content": "y" * 400}])
FIELDS = {
    "model": raw("m"),
    "messages": MESSAGES,
    "tools": raw([{"name": "Bash", "description": "x" * 4000}]),
    "tool_choice": raw({"type": "auto"}),
    "functions": raw([{"name": "f", "description": "z" * 400}]),
    "function_call": raw("auto"),
}


def test_a_prompt_sent_without_tools_is_measured_without_every_tool_field() -> None:
    prompt = SentPrompt(FIELDS, MediaScan(MESSAGES))
    assert set(prompt.fields(bare=True)) == {"model", "messages"}
    assert prompt.fields(bare=False) is FIELDS
    assert prompt.size(bare=True).tokens == estimate_prompt_tokens({"messages": MESSAGES})
    assert prompt.size(bare=False).tokens == estimate_prompt_tokens(FIELDS)


def test_each_way_of_sending_is_measured_once_when_first_asked() -> None:
    prompt = SentPrompt(FIELDS, None)
    assert prompt.size(bare=True) is prompt.size(bare=True)
    assert prompt.size(bare=False) is prompt.size(bare=False)
