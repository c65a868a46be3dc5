"""Text added after a request's system prompt, in either dialect (pure).

A profile's or a provider's `append_system_prompt` and the tool-loop hint
go there:
Anthropic's `system` field (a string gets a blank line and the text, a list
of blocks one more text block, so the blocks before keep their
cache_control), or an OpenAI client's first message when it is a system
(or developer) message, else a system message of its own in front. The
text goes after what the client sent, so a prompt cache keeps its prefix.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from coderouterd.translate.types import read_json

MESSAGES = "messages"

_list = msgspec.json.Decoder(list[msgspec.Raw])


def after_system(
    fields: Mapping[str, msgspec.Raw], dialect: str, text: str
) -> dict[str, msgspec.Raw]:
    """The fields of a body in `dialect` ("anthropic" or "openai") with
    `text` after the system prompt."""
    out = dict(fields)
    if dialect == "openai":
        messages = read_json(fields[MESSAGES], MESSAGES, _list)
        first = read_json(messages[0], f"{MESSAGES}[0]") if messages else None
        if isinstance(first, dict) and first.get("role") in ("system", "developer"):
            first["content"] = _appended(first.get("content"), text)
            parts = [msgspec.json.encode(first), *(bytes(m) for m in messages[1:])]
        else:
            parts = [msgspec.json.encode({"role": "system", "content": text})]
            parts += [bytes(m) for m in messages]
        out[MESSAGES] = msgspec.Raw(b"[" + b",".join(parts) + b"]")
        return out
    system = read_json(fields["system"], "system") if "system" in fields else None
    out["system"] = msgspec.Raw(msgspec.json.encode(_appended(system, text)))
    return out


def _appended(content: object, text: str) -> object:
    """A system prompt's content with `text` after it: blocks (or parts), a
    string, or nothing."""
    if isinstance(content, list):
        return [*content, {"type": "text", "text": text}]
    if isinstance(content, str) and content:
        return f"{content}\n\n{text}"
    return text
