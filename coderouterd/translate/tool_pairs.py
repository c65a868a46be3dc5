"""Every tool result answers a call, every call gets its result (pure).

Anthropic's Messages API answers 400 to a request where a user turn holds a
`tool_result` naming no `tool_use` of the assistant turn right before it,
or where an assistant turn's `tool_use` has no `tool_result` in the user
turn right after it. OpenAI clients built for lenient local backends send
both: a history trimmed from the front keeps a result whose call is gone,
and a client that gave up on a call sends no result for it. Sent as they
are, such requests fail on an Anthropic provider, typically at the worst
moment: when the local backend has died and the session falls back.

`pair_tool_results` mends Anthropic-shaped turns in place:

- a result whose call is not in the turn before (or that answers a call a
  second time) becomes a text block carrying its content, so the model is
  still told what the tool said;
- a call with no result gets an error result saying that none was sent.

Each kind of mend is recorded once as a Degradation.
"""

from __future__ import annotations

from typing import Any

from coderouterd.translate.types import Notes

ORPHAN_FIELD = "messages.tool_result"
UNANSWERED_FIELD = "messages.tool_use"
NO_RESULT = "the client sent no result for this tool call"


def pair_tool_results(turns: list[dict[str, Any]], notes: Notes) -> None:
    """Mend `turns` (alternating, Anthropic blocks as lists) so that every
    tool_result answers a tool_use of the turn before and every tool_use of
    an assistant turn followed by a user turn is answered there."""
    for i, turn in enumerate(turns):
        if turn["role"] != "user":
            continue
        before = turns[i - 1] if i else None
        calls = _call_ids(before) if before is not None and before["role"] == "assistant" else []
        answered: set[str] = set()
        mended: list[dict[str, Any]] = []
        for block in turn["content"]:
            if block.get("type") != "tool_result":
                mended.append(block)
            elif (call_id := block.get("tool_use_id")) in calls and call_id not in answered:
                answered.add(call_id)
                mended.append(block)
            else:
                notes.add(
                    ORPHAN_FIELD, "a tool result answering no call just before it is sent as text"
                )
                mended.append(_as_text(block))
        unanswered = [c for c in calls if c not in answered]
        if unanswered:
            notes.add(
                UNANSWERED_FIELD,
                "a tool call the client sent no result for is answered with an error",
            )
            mended[:0] = [_no_result(c) for c in unanswered]
        turn["content"] = mended


def _orphan_text(call_id: object, text: str, *, is_error: bool) -> str:
    what = "error of" if is_error else "result of"
    return f"[{what} tool call {call_id}, whose call is not in this conversation]\n{text}"


def _call_ids(turn: dict[str, Any]) -> list[str]:
    ids = []
    for block in turn["content"]:
        if block.get("type") == "tool_use" and (call_id := block.get("id")) not in ids:
            ids.append(call_id)
    return ids


def _as_text(block: dict[str, Any]) -> dict[str, Any]:
    content = block.get("content")
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        text = "\n".join(b["text"] for b in content if b.get("type") == "text" and "text" in b)
    else:
        text = ""
    call_id = block.get("tool_use_id")
    return {
        "type": "text",
        "text": _orphan_text(call_id, text, is_error=block.get("is_error") is True),
    }


def _no_result(call_id: str) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": call_id, "is_error": True, "content": NO_RESULT}
