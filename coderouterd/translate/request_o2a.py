"""An OpenAI Chat Completions request as an Anthropic Messages request (pure).

Anthropic's rules the OpenAI dialect does not have, and how they are met:

- One top-level `system`: every system/developer message, wherever it
  stands, is folded into it (joined with "\n\n"); as text blocks, one a
  part, when a part carries a prompt-cache marker (cache_o2a).
- Alternating turns starting with a user turn: consecutive same-role
  messages are merged (so consecutive `role: "tool"` messages become one
  user message of tool_result blocks, in order), tool_result blocks are moved
  to the front of their user turn, and a conversation that starts with the
  assistant, or holds only system messages, gets the user turn
  `CONTINUE_PLACEHOLDER` in front.
- Every tool result answers a call of the turn before, every call gets a
  result: a history trimmed from the front or a call left unanswered is
  mended as `tool_pairs` says.
- Tool ids of `^[a-zA-Z0-9_-]+$` only, none used by two calls: an id an
  OpenAI-compatible backend made with other characters (Kimi's
  `functions.Read:0`) is rewritten the same way in the call and in its
  result, and a call repeating an id of the history (backends that number
  calls per answer) gets one of its own, as do the results answering it; a
  legacy `function_call` and the `role: "function"` message answering it,
  which have none, share one made for them (o2a_tool_messages).
- Image media types of the four Anthropic takes, matching the bytes: an
  inline image's type is read from its bytes (o2a_parts).
- No empty or whitespace-only text blocks: they are left out, and a message
  left with nothing is left out. A final assistant turn (a prefill) cannot
  end with whitespace: its last text is cut at its last visible character.
- A tool call's `input` is an object: arguments that are not a JSON object
  (a local model's call cut at max_tokens, kept in the client's history)
  go as `{"_raw": "<the arguments>"}`, with a Degradation.
- Prompt-cache markers (`cache_control`) go on the blocks made from what
  carried them, at most 4 of them (cache_o2a).
- A tool's input_schema says `type: object`: parameters that say no type
  (`{}`) get it (params_o2a).
- No `response_format`: the format asked for is said in the system prompt
  instead, with a Degradation (o2a_response_format).
- A `file` part is a `document` block when it holds a PDF inline; any
  other is left out, with a Degradation (o2a_parts).
- `max_tokens` is required: `DEFAULT_MAX_TOKENS` (params_o2a) when the
  client sent none (plus the thinking budget when reasoning was asked for).
- With thinking on, temperature must be 1 and top_p at least 0.95, and tool
  use cannot be forced: the conflicting setting is dropped (for forced tool
  use, the thinking) with a Degradation. temperature and top_p are not both
  taken (recent Claude models refuse them together): top_p is dropped, with
  a Degradation.
- With thinking on, a final assistant message (a prefill) must start with
  thinking, which an OpenAI client's never does: thinking is off for such a
  request, with a Degradation.
- With thinking on, a backend that checks thinking signatures (Claude)
  requires the assistant message whose tool calls are being answered to
  start with signed thinking, which an OpenAI client never has: thinking is
  off for such a request, with a Degradation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from coderouterd.errors import InvalidRequestError
from coderouterd.translate.cache_o2a import CacheMarks, system_prompt
from coderouterd.translate.o2a_parts import content_blocks, part_text, parts, text, text_blocks
from coderouterd.translate.o2a_response_format import format_instruction, with_instruction
from coderouterd.translate.o2a_tool_messages import (
    FunctionCalls,
    ToolIds,
    tool_message_result,
    tool_use,
)
from coderouterd.translate.params_o2a import limits, sampling, tools
from coderouterd.translate.tool_pairs import pair_tool_results
from coderouterd.translate.types import Degradation, Notes

CONTINUE_PLACEHOLDER = "(continue)"

_HANDLED = frozenset(
    {"model", "messages", "max_tokens", "max_completion_tokens", "stop", "temperature"}
    | {"top_p", "tools", "tool_choice", "parallel_tool_calls", "reasoning_effort", "user"}
    | {"stream", "stream_options", "cache_control", "functions", "function_call"}
    | {"response_format"}
)
_DROPPED = {
    "n": "Anthropic returns a single choice",
    "logprobs": "Anthropic returns no log probabilities",
    "top_logprobs": "Anthropic returns no log probabilities",
    "seed": "Anthropic has no sampling seed",
    "presence_penalty": "Anthropic has no presence penalty",
    "frequency_penalty": "Anthropic has no frequency penalty",
    "logit_bias": "Anthropic has no logit bias",
}


def openai_to_anthropic_request(
    body: Mapping[str, Any],
    *,
    model: str,
    max_output_tokens: int | None,
    signed_thinking: bool = False,
    can_think: bool = True,
    cache_control: bool = True,
) -> tuple[dict[str, Any], list[Degradation]]:
    """`signed_thinking`: the backend checks thinking signatures (Claude);
    `can_think` false: it cannot think at all (capabilities), so
    reasoning_effort is dropped before max_tokens and sampling are set;
    `cache_control` false: it takes no prompt-cache markers (capabilities),
    so they are dropped."""
    notes = Notes()
    marks = CacheMarks(notes, carry=cache_control)
    system, turns = _conversation(body.get("messages"), notes, marks)
    system = with_instruction(system, format_instruction(body.get("response_format"), notes))
    out: dict[str, Any] = {"model": model}
    if system:
        out["system"] = system
    out["messages"] = turns
    out.update(tools(body, notes, marks))
    out.update(
        limits(
            body,
            tool_choice=out.get("tool_choice"),
            turns=turns,
            max_output_tokens=max_output_tokens,
            signed_thinking=signed_thinking,
            can_think=can_think,
            notes=notes,
        )
    )
    out.update(sampling(body, thinking="thinking" in out, notes=notes))
    user = body.get("user")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}
    if body.get("stream") is True:
        out["stream"] = True
    marks.copy(body, out)
    marks.cap(out)
    for key, value in body.items():
        if key not in _HANDLED and _loses(key, value):
            notes.add(key, _DROPPED.get(key, "unknown field, not forwarded"))
    return out, notes.items()


def _loses(key: str, value: object) -> bool:
    """Whether dropping this field changes anything (defaults and empty values do not)."""
    if value is None or value is False or value in (0, "", [], {}):
        return False
    if key == "n":
        return value != 1
    return True


# Messages.


def _conversation(
    raw: object, notes: Notes, marks: CacheMarks
) -> tuple[str | list[Any], list[dict[str, Any]]]:
    if not isinstance(raw, list):
        raise InvalidRequestError("must be a list of messages", field="messages")
    systems: list[list[dict[str, Any]]] = []
    turns: list[dict[str, Any]] = []
    legacy = FunctionCalls()
    ids = ToolIds(raw)
    for i, message in enumerate(raw):
        path = f"messages[{i}]"
        if not isinstance(message, Mapping):
            raise InvalidRequestError("must be an object", field=path)
        role = message.get("role")
        if role in ("system", "developer"):
            systems.append(_system_blocks(message, f"{path}.content", marks))
        elif role == "user":
            _append(turns, "user", _user_blocks(message, f"{path}.content", notes, marks))
        elif role == "assistant":
            blocks = _assistant_blocks(message, i, notes, marks, legacy=legacy, ids=ids)
            _append(turns, "assistant", blocks)
        elif role == "tool":
            _append(turns, "user", [tool_message_result(message, path, notes, marks, ids)])
        elif role == "function":
            _append(turns, "user", [legacy.result(message, i, notes, marks)])
        elif role is None:
            raise InvalidRequestError("missing required field 'role'", field=f"{path}.role")
        else:
            raise InvalidRequestError(f"unsupported role {role!r}", field=f"{path}.role")
    if not turns and not systems:
        raise InvalidRequestError("needs at least one message", field="messages")
    _mend(turns, notes)
    return system_prompt(systems, marks), turns


def _mend(turns: list[dict[str, Any]], notes: Notes) -> None:
    """Turns as Anthropic takes them: a user turn first (a one-shot
    instruction sent as a system message alone gets one too), tool results
    paired with their calls and first in their turn, and no prefill ending
    with whitespace."""
    if not turns or turns[0]["role"] != "user":
        notes.add("messages", "a conversation must start with a user turn; placeholder added")
        turns.insert(0, {"role": "user", "content": [text(CONTINUE_PLACEHOLDER)]})
    pair_tool_results(turns, notes)
    for turn in turns:
        results_first = sorted(turn["content"], key=lambda b: b["type"] != "tool_result")
        turn["content"] = results_first
    _end_prefill(turns[-1])


def _append(turns: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    if not blocks:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": blocks})


def _system_blocks(
    message: Mapping[str, Any], path: str, marks: CacheMarks
) -> list[dict[str, Any]]:
    """Every text part, blank ones too, as a text block (system_prompt picks)."""
    blocks = []
    for j, part in enumerate(parts(message.get("content"), path)):
        if part["type"] != "text":
            raise InvalidRequestError("only text parts are allowed here", field=f"{path}[{j}]")
        blocks.append(marks.copy(part, text(part_text(part, f"{path}[{j}]"))))
    marks.last(message, blocks)
    return blocks


def _user_blocks(
    message: Mapping[str, Any], path: str, notes: Notes, marks: CacheMarks
) -> list[dict[str, Any]]:
    blocks = content_blocks(parts(message.get("content"), path), path, notes, marks)
    marks.last(message, blocks)
    return blocks


def _end_prefill(turn: dict[str, Any]) -> None:
    """A last assistant turn is a prefill, whose text Anthropic refuses
    to end with whitespace: it ends at its last visible character."""
    if turn["role"] != "assistant" or not turn["content"]:
        return
    if turn["content"][-1]["type"] != "text":
        return
    last = turn["content"][-1]
    last["text"] = last["text"].rstrip()
    if not last["text"]:
        turn["content"].pop()


def _assistant_blocks(
    message: Mapping[str, Any],
    index: int,
    notes: Notes,
    marks: CacheMarks,
    *,
    legacy: FunctionCalls,
    ids: ToolIds,
) -> list[dict[str, Any]]:
    path = f"messages[{index}]"
    where = f"{path}.content"
    blocks = text_blocks(parts(message.get("content"), where), where, marks)
    # The SDK's message for a refusal holds its words here, content null: they
    # are the turn's text, as a refusal in an answer is (response_o2a).
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal.strip():
        blocks.append(text(refusal))
    calls = message.get("tool_calls")
    if calls is not None and not isinstance(calls, list):
        raise InvalidRequestError("must be a list", field=f"{path}.tool_calls")
    ids.message()
    for k, call in enumerate(calls or []):
        blocks.append(tool_use(call, f"{path}.tool_calls[{k}]", notes, ids))
    if message.get("function_call") is not None:
        blocks.append(legacy.call(message["function_call"], index, notes))
    marks.last(message, blocks)
    return blocks
