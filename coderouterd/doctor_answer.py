"""An answer as `coderouterd doctor` reads it (pure).

The doctor asks as an Anthropic client, and an `anthropic` backend's answer
is passed through as it came: null, a string or a list may stand where a
block or an object belongs. Every check reads answers through here, so
that such an answer is a finding, never a crash.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from coderouterd.routing.records import RequestSummary
from coderouterd.wire.errors import error_message_of
from coderouterd.wire.overflow import Overflow, overflow_in


@dataclass(frozen=True, slots=True)
class ToolCall:
    name: object
    # As the backend wrote it: not necessarily an object.
    input: object


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes
    summary: RequestSummary | None
    text: str
    calls: tuple[ToolCall, ...]
    thinking_chars: int = 0
    stop_reason: object = None


def read_answer(status: int, body: bytes, summary: RequestSummary | None) -> Answer:
    try:
        message = msgspec.json.decode(body) if body else {}
    except msgspec.DecodeError:
        message = {}
    message = message if isinstance(message, dict) else {}
    text, thinking, calls = read_content(message.get("content"))
    return Answer(status, body, summary, text, calls, thinking, message.get("stop_reason"))


def read_content(blocks: object) -> tuple[str, int, tuple[ToolCall, ...]]:
    """The text, the characters of thinking and the tool calls of an
    Anthropic message's content, whatever its shape."""
    if isinstance(blocks, str):
        return blocks, 0, ()
    text: list[str] = []
    thinking = 0
    calls: list[ToolCall] = []
    for block in blocks if isinstance(blocks, list) else ():
        if not isinstance(block, dict):
            continue
        if block.get("type") == "tool_use":
            calls.append(ToolCall(block.get("name"), block.get("input")))
        elif isinstance(block.get("text"), str):
            text.append(block["text"])
        elif block.get("type") == "thinking" and isinstance(block.get("thinking"), str):
            thinking += len(block["thinking"])
    return "".join(text), thinking, tuple(calls)


def cut_unanswered(answer: Answer, max_tokens: int) -> str | None:
    """How an answer reads that was cut at max_tokens before any text or
    call (a model still reasoning: Qwen3 and DeepSeek-R1 count their
    reasoning against max_tokens); None for any other answer."""
    if answer.status != 200 or answer.stop_reason != "max_tokens":
        return None
    if answer.text.strip() or answer.calls:
        return None
    thinking = answer.thinking_chars
    still = (
        f" while the model was still reasoning ({thinking} characters of thinking)"
        if thinking
        else ""
    )
    return (
        f"the answer reached max_tokens (the doctor allows {max_tokens}){still} with no answer yet"
    )


def refusal(status: int, body: bytes, what: str = "") -> str:
    """`status N for WHAT (it said: ...)`: an error status and the backend's words."""
    said = error_message_of(body)
    return (
        f"status {status}"
        + (f" for {what}" if what else "")
        + (f" (it said: {said})" if said else "")
    )


def too_long(answer: Answer) -> Overflow | None:
    """What the backend said when the prompt did not fit its context window:
    the engine's record of it, else its own words in an error answer."""
    for attempt in answer.summary.attempts if answer.summary else ():
        if attempt.outcome == "too_long":
            return Overflow(attempt.detail or "", attempt.prompt_tokens, attempt.context_window)
    return overflow_in(answer.body) if answer.status != 200 else None
