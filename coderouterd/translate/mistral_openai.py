"""An OpenAI client's history as a Mistral-family backend takes it (pure).

The backends with `tool_id_format: mistral` (ModelCapabilities.mistral_roles)
refuse a tool call id that is not 9 letters or digits and a role order
mistral_common does not take (mistral_order). An OpenAI client's history
breaks both in ordinary use: the `call_…` ids another provider of its chain
gave, a system message between turns, a prefill. Its messages get what an
Anthropic client's get on the translating path: each id of a call and of
its result as `tools_a2o.tool_id` makes it, then `mistral_order` and
`prefixed`.

The history is passthrough bytes: a first read takes only each message's
role and ids, and the messages are decoded and encoded again only when they
need a change. A history that cannot be read goes as sent, for the backend
to judge as it would.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from coderouterd.translate.capabilities import ModelCapabilities
from coderouterd.translate.mistral_order import (
    Message,
    mistral_order,
    needs_mistral_order,
    prefixed,
)
from coderouterd.translate.tools_a2o import tool_id

_encode = msgspec.json.Encoder().encode
# A JSON string of 9 letters or digits, as raw bytes.
_MISTRAL_ID = re.compile(rb'"[A-Za-z0-9]{9}"')
# An absent id. msgspec takes Raw alone, not in a union with None.
_ABSENT = msgspec.Raw(b"")


class _Call(msgspec.Struct):
    id: msgspec.Raw = _ABSENT


class _Seen(msgspec.Struct):
    """What of a message says whether it needs a change; the rest is skipped."""

    role: str | None = None
    tool_call_id: msgspec.Raw = _ABSENT
    tool_calls: list[_Call] | None = None


_seen = msgspec.json.Decoder(list[_Seen])


def for_mistral(raw: msgspec.Raw, caps: ModelCapabilities) -> msgspec.Raw | None:
    """The raw `messages` of an OpenAI request with Mistral's ids and role
    order; None when they have both already, or cannot be read."""
    try:
        seen = _seen.decode(raw)
        if not _needs_change(seen):
            return None
        messages: list[Message] = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return None
    with_ids = [_with_ids(m, caps) for m in messages]
    return msgspec.Raw(_encode(prefixed(mistral_order(with_ids))))


def _needs_change(seen: list[_Seen]) -> bool:
    if needs_mistral_order(s.role or "" for s in seen):
        return True
    ids = [c.id for s in seen for c in s.tool_calls or ()] + [s.tool_call_id for s in seen]
    return any(i and not _MISTRAL_ID.fullmatch(bytes(i)) for i in ids)


def _with_ids(message: Message, caps: ModelCapabilities) -> Message:
    """`message` with the ids of its tool calls, or of the call it answers,
    as the backend takes them: the same function of the id for both."""
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        message = {**message, "tool_calls": [_with_id(c, caps) for c in calls]}
    answered = message.get("tool_call_id")
    if isinstance(answered, str):
        message = {**message, "tool_call_id": tool_id(answered, caps)}
    return message


def _with_id(call: Any, caps: ModelCapabilities) -> Any:
    if isinstance(call, dict) and isinstance(call.get("id"), str):
        return {**call, "id": tool_id(call["id"], caps)}
    return call
