"""What Anthropic's Messages API and OpenAI's Chat Completions refuse (400)
that lenient local backends accept.

Fake upstreams call `anthropic_refusal` or `openai_refusal` on each request
body they receive and answer 400 with its text, as the real API would, so a
test fails when the daemon forwards a request only a lenient backend takes.
"""

from __future__ import annotations

import re
from typing import Any

# Claude generations by model id (a dated id or its alias), as Anthropic's
# docs list what each takes; other names (`claude-model`) are refused nothing.
_BUDGET_ONLY = re.compile(
    r"claude-(3-7-|opus-4-(0|1|5|2025)|sonnet-4-(0|5|2025)|haiku-4-5)", re.IGNORECASE
)
_ADAPTIVE_ONLY = re.compile(r"claude-opus-4-[78]", re.IGNORECASE)
_NO_EFFORT = re.compile(
    r"claude-(3-|opus-4-(0|1|2025)|sonnet-4-(0|5|2025)|haiku-4-5)", re.IGNORECASE
)


def anthropic_refusal(body: dict[str, Any]) -> str | None:
    """What Anthropic's Messages API would answer 400 to in this request, if anything."""
    if (problem := generation_refusal(body)) is not None:
        return problem
    messages = body.get("messages", [])
    for check in (_block_refusal, tool_pairing_refusal, _unique_ids_refusal):
        if (problem := check(messages)) is not None:
            return problem
    for i, tool in enumerate(body.get("tools") or []):
        # A client tool (one with a schema; server tools have a `type` instead).
        schema = tool.get("input_schema")
        if isinstance(schema, dict) and schema.get("type") != "object":
            return f"tools.{i}.custom.input_schema.type: Field required"
    thinking = body.get("thinking") or {}
    if thinking.get("type", "disabled") == "disabled":
        return None
    return _thinking_refusal(messages)


def generation_refusal(body: dict[str, Any]) -> str | None:
    """What the body's Claude `model` refuses of its thinking shape, effort
    level and sampling parameters, in the API's words: adaptive thinking
    before Opus 4.6 and Sonnet 4.6, a thinking budget (and temperature,
    top_p, top_k) on Opus 4.7 and 4.8, an effort level before Opus 4.5."""
    model = str(body.get("model"))
    kind = (body.get("thinking") or {}).get("type")
    if kind == "adaptive" and _BUDGET_ONLY.match(model):
        return f"thinking.type.adaptive is not supported for model {model}"
    if kind == "enabled" and _ADAPTIVE_ONLY.match(model):
        return (
            '"thinking.type.enabled" is not supported for this model. Use '
            '"thinking.type.adaptive" and "output_config.effort" to control thinking behavior.'
        )
    if "effort" in (body.get("output_config") or {}) and _NO_EFFORT.match(model):
        return f"output_config.effort: this model ({model}) does not support the effort parameter"
    if _ADAPTIVE_ONLY.match(model):
        for name in ("temperature", "top_p", "top_k"):
            if name in body:
                return f"`{name}` is deprecated for this model."
    return None


def _block_refusal(messages: list[dict[str, Any]]) -> str | None:
    for i, m in enumerate(messages):
        for block in _blocks(m):
            if block.get("type") == "thinking" and not block.get("signature"):
                return f"messages.{i}: a thinking block without a valid signature"
            if block.get("type") == "text" and not str(block.get("text") or "").strip():
                # Anthropic words it "must be non-empty" for "", this for blanks.
                return f"messages.{i}: text content blocks must contain non-whitespace text"
    return None


def _unique_ids_refusal(messages: list[dict[str, Any]]) -> str | None:
    ids = [b.get("id") for m in messages for b in _blocks(m) if b.get("type") == "tool_use"]
    return "`tool_use` ids must be unique" if len(set(ids)) != len(ids) else None


def _thinking_refusal(messages: list[dict[str, Any]]) -> str | None:
    """With thinking on: a final assistant message (a prefill), and the
    assistant message whose tool calls are answered, must start with
    (signed) thinking."""
    last = messages[-1] if messages else {}
    if last.get("role") == "assistant" and not _starts_thinking(last):
        return (
            "When `thinking` is enabled, a final `assistant` message must start"
            " with a thinking block"
        )
    answers = [
        i
        for i, m in enumerate(messages)
        if m.get("role") == "user" and any(b.get("type") == "tool_result" for b in _blocks(m))
    ]
    answered = answers[-1] if answers and answers[-1] == len(messages) - 1 else 0
    if answered > 0 and not _starts_thinking(messages[answered - 1]):
        return "a final assistant message must start with a thinking block"
    return None


def _starts_thinking(message: dict[str, Any]) -> bool:
    content = _blocks(message)
    return bool(content) and content[0].get("type") in ("thinking", "redacted_thinking")


def tool_pairing_refusal(messages: list[dict[str, Any]]) -> str | None:
    """Each tool_result answers a tool_use of the message just before, once,
    and comes before any other block of its message; each tool_use of an
    assistant message followed by another message is answered in it."""
    for i, m in enumerate(messages):
        blocks = _blocks(m)
        if m.get("role") == "assistant":
            calls = [b.get("id") for b in blocks if b.get("type") == "tool_use"]
            if calls and i + 1 < len(messages):
                after = messages[i + 1]
                answered = {b.get("tool_use_id") for b in _blocks(after) if _is_result(b)}
                missing = [c for c in calls if c not in answered]
                if missing or after.get("role") != "user":
                    return (
                        f"messages.{i}: `tool_use` ids were found without `tool_result` blocks "
                        f"immediately after: {', '.join(map(str, missing or calls))}"
                    )
            continue
        before = (
            _blocks(messages[i - 1]) if i and messages[i - 1].get("role") == "assistant" else []
        )
        calls = {b.get("id") for b in before if b.get("type") == "tool_use"}
        seen: set[object] = set()
        for j, block in enumerate(blocks):
            if not _is_result(block):
                continue
            call_id = block.get("tool_use_id")
            if call_id not in calls or call_id in seen:
                return (
                    f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` "
                    f"blocks: {call_id}. Each `tool_result` block must have a corresponding "
                    "`tool_use` block in the previous message."
                )
            if any(not _is_result(b) for b in blocks[:j]):
                return f"messages.{i}.content.{j}: tool_result blocks must come first"
            seen.add(call_id)
    return None


def _is_result(block: dict[str, Any]) -> bool:
    return block.get("type") == "tool_result"


def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    return content if isinstance(content, list) else []


def openai_refusal(body: dict[str, Any]) -> str | None:
    """What OpenAI's Chat Completions would answer 400 to in this request's
    tool messages, in its words: a `tool` message must answer a call of the
    assistant message before its run of tool messages (once), and the calls
    of an assistant message followed by another message must all be answered
    in that run."""
    unanswered: list[object] = []
    messages = body.get("messages", [])
    for i, m in enumerate(messages):
        if m.get("role") == "tool":
            if m.get("tool_call_id") not in unanswered:
                return (
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    f"preceeding message with 'tool_calls'. (messages.[{i}].role)"
                )
            unanswered.remove(m.get("tool_call_id"))
            continue
        if unanswered:
            return _unanswered(unanswered)
        calls = m.get("tool_calls") if m.get("role") == "assistant" else None
        unanswered = [c.get("id") for c in calls or []]
    if unanswered and messages[-1].get("role") == "tool":
        return _unanswered(unanswered)
    return None


def _unanswered(ids: list[object]) -> str:
    return (
        "An assistant message with 'tool_calls' must be followed by tool messages responding "
        "to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
        + ", ".join(map(str, ids))
    )
