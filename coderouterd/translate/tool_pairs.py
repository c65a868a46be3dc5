"""Every tool result answers a call, every call gets its result (pure).

Anthropic's Messages API answers 400 to a request where a user turn holds a
`tool_result` naming no `tool_use` of the assistant turn right before it,
or where an assistant turn's `tool_use` has no `tool_result` in the user
turn right after it. OpenAI clients built for lenient local backends send
both: a history trimmed from the front keeps a result whose call is gone,
and a client that gave up on a call sends no result for it. Sent as they
are, such requests fail on an Anthropic provider, typically at the worst
moment: when the local backend has died and the session falls back.

Strict OpenAI backends (OpenAI itself, and those behind OpenRouter that
check) refuse the same two things in their own words: a `tool` message that
does not follow the assistant message with its `tool_calls`, and tool calls
not answered by the `tool` messages right after them. An Anthropic client
can send both to a lenient local Anthropic backend; its fallback may be
strict.

`pair_tool_results` mends Anthropic-shaped turns in place and
`pair_tool_messages` OpenAI-shaped messages, the same way:

- a result whose call is not in the turn before (or that answers a call a
  second time) becomes text carrying its content, so the model is still
  told what the tool said;
- a call with no result gets an error result saying that none was sent.

Each kind of mend is recorded once as a Degradation. `pairs_up` tells from
each message's call and answer ids alone whether a history needs mending,
so a history that pairs up (nearly every one) is never decoded for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from coderouterd.translate.types import Notes

ORPHAN_FIELD = "messages.tool_result"
UNANSWERED_FIELD = "messages.tool_use"
NO_RESULT = "the client sent no result for this tool call"
# OpenAI tool messages have no error flag: an error's text starts with this.
TOOL_ERROR_PREFIX = "Error: "
_ORPHAN_NOTE = "a tool result answering no call just before it is sent as text"
_UNANSWERED_NOTE = "a tool call the client sent no result for is answered with an error"


class Pairing(Protocol):
    """A message's tool call ids (an assistant's) and the ids its tool results answer."""

    @property
    def calls(self) -> tuple[str, ...]: ...

    @property
    def answers(self) -> tuple[str, ...]: ...


def pairs_up(messages: Sequence[Pairing], start: int = 0) -> bool:
    """Whether, from `messages[start]` on, each message answers exactly the
    calls of the one before it (in any order, each once): what both dialects
    require, except of the last message's calls, which nothing follows."""
    before = messages[start - 1].calls if start else ()
    for m in messages[start:]:
        if m.answers != before and sorted(m.answers) != sorted(before):
            return False
        before = m.calls
    return True


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
                notes.add(ORPHAN_FIELD, _ORPHAN_NOTE)
                mended.append(_as_text(block))
        unanswered = [c for c in calls if c not in answered]
        if unanswered:
            notes.add(UNANSWERED_FIELD, _UNANSWERED_NOTE)
            mended[:0] = [_no_result(c) for c in unanswered]
        turn["content"] = mended


def pair_tool_messages(messages: list[dict[str, Any]], notes: Notes) -> list[dict[str, Any]]:
    """`messages` (OpenAI-shaped) mended so that every `tool` message answers
    a call of the assistant message before its run of tool messages, once,
    and every call of an assistant message followed by another message is
    answered in that run. Orphaned results are said, as text, in the user
    message after the run (one is added if the run is followed by none). A
    system message between calls and their results (Claude Code sends one
    mid-conversation) goes after the run: OpenAI ends a run at any other
    message, which would leave the calls unanswered."""
    out: list[dict[str, Any]] = []
    unanswered: list[str] = []  # calls of the assistant message before this run
    orphans: list[str] = []
    held: list[dict[str, Any]] = []  # system messages waiting for the run to end
    in_run = False  # a tool message came since the last other message
    for sent in messages:
        if sent.get("role") == "system" and unanswered:
            held.append(sent)
            continue
        if sent.get("role") == "tool":
            in_run = True
            call_id = sent.get("tool_call_id")
            if call_id in unanswered:
                unanswered.remove(call_id)
                out.append(sent)
            else:
                notes.add(ORPHAN_FIELD, _ORPHAN_NOTE)
                orphans.append(_orphan_text(call_id, _tool_text(sent), is_error=False))
            continue
        _close_run(out, unanswered, notes)
        out += held
        held = []
        m = sent
        if orphans:
            said = "\n\n".join(orphans)
            if m.get("role") == "user":
                m = {**m, "content": _prepend(said, m.get("content"))}
            else:
                out.append({"role": "user", "content": said})
            orphans = []
        out.append(m)
        calls = m.get("tool_calls") if m.get("role") == "assistant" else None
        unanswered = [c.get("id") for c in calls] if isinstance(calls, list) else []
        in_run = False
    # The last message's own calls are the client's business; a run after them is not.
    if in_run:
        _close_run(out, unanswered, notes)
    out += held
    if orphans:
        out.append({"role": "user", "content": "\n\n".join(orphans)})
    return out


def _close_run(out: list[dict[str, Any]], unanswered: list[str], notes: Notes) -> None:
    if unanswered:
        notes.add(UNANSWERED_FIELD, _UNANSWERED_NOTE)
        out += [
            {"role": "tool", "tool_call_id": c, "content": TOOL_ERROR_PREFIX + NO_RESULT}
            for c in unanswered
        ]


def _tool_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "\n".join(p["text"] for p in content if isinstance(p, dict) and "text" in p)
    return content if isinstance(content, str) else ""


def _prepend(text: str, content: object) -> object:
    if isinstance(content, list):
        return [{"type": "text", "text": text}, *content]
    return f"{text}\n\n{content}" if content else text


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
