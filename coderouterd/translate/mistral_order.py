"""OpenAI messages in the role order Mistral's models take (pure).

mistral_common (Mistral's API, vLLM's mistral tokenizer mode for Devstral,
Mistral Small, Magistral) checks a chat's roles before anything else: after
a `tool` message only another `tool` or an `assistant` may come, a `system`
only after a `system` or a `user`, and the last message must be a `user`
or `tool` one, or an `assistant` one marked `prefix: true` (the text the
answer continues). It answers 400 otherwise ("Unexpected role 'user' after
role 'tool'"). The registry says which backends serve such models: those
with `tool_id_format: mistral` (ModelCapabilities.mistral_roles).

An Anthropic tool loop makes the orders it refuses on every turn: Claude
Code puts text (a `<system-reminder>`, "[Request interrupted by user]")
beside its tool results, and a system message between calls and their
results goes after the results (tool_pairs). For these backends:

- a user or system message of text only right after a tool message goes
  into that tool message's content, after a blank line and a line naming
  its role: the model reads it where the client put it, after the results,
  and no turn is made up for it;
- a user message with images there (a tool result's images, which a tool
  message cannot carry) gets a short assistant message before it saying
  where the images are: the images would otherwise be lost;
- a system message right after an assistant one goes as a user message
  naming its role;
- a last assistant message of text (a prefill) is marked `prefix: true`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Message = dict[str, Any]

# mistral_common's _validate_message_order: the roles that may follow each role.
_AFTER = {
    "system": frozenset({"system", "user", "assistant"}),
    "user": frozenset({"system", "user", "assistant"}),
    "assistant": frozenset({"assistant", "user", "tool"}),
    "tool": frozenset({"assistant", "tool"}),
}
BRIDGE = "[The images of the tool results are in the next message.]"


def needs_mistral_order(roles: Iterable[str]) -> bool:
    """Whether messages of these roles, in this order, need `mistral_order`."""
    before = ""
    for role in roles:
        if role not in _AFTER.get(before, _AFTER.keys()):
            return True
        before = role
    return before == "assistant"


def mistral_order(messages: list[Message]) -> list[Message]:
    """`messages` in an order Mistral takes, but for a last assistant message."""
    out: list[Message] = []
    for sent in messages:
        m, role = sent, sent.get("role")
        before = out[-1].get("role") if out else None
        if before == "tool" and role in ("user", "system"):
            text = _text_only(m.get("content"))
            # A tool message's content may be text parts (OpenAI clients).
            result = _text_only(out[-1].get("content"))
            if text is not None and result is not None:
                if text:
                    out[-1] = {**out[-1], "content": f"{result}\n\n{_said(role, text)}"}
                continue
            out.append({"role": "assistant", "content": BRIDGE})
        elif before == "assistant" and role == "system":
            m = {"role": "user", "content": _said(role, _text_only(m.get("content")) or "")}
        out.append(m)
    return out


def prefixed(messages: list[Message]) -> list[Message]:
    """`messages` with a last assistant message of text marked as the prefix
    the answer continues."""
    last = messages[-1] if messages else {}
    if last.get("role") == "assistant" and last.get("content") and not last.get("tool_calls"):
        return [*messages[:-1], {**last, "prefix": True}]
    return messages


def _said(role: object, text: str) -> str:
    return f"[{role} message]\n{text}"


def _text_only(content: object) -> str | None:
    """The text of content with no images; None if it has some."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    if any(not isinstance(p, dict) or p.get("type") != "text" for p in content):
        return None
    return "\n".join(str(p.get("text") or "") for p in content)
