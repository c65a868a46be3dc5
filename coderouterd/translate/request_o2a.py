"""An OpenAI Chat Completions request as an Anthropic Messages request (pure).

Anthropic's rules the OpenAI dialect does not have, and how they are met:

- One top-level `system`: every system/developer message, wherever it
  stands, is folded into it (joined with "\n\n").
- Alternating turns starting with a user turn: consecutive same-role
  messages are merged (so consecutive `role: "tool"` messages become one
  user message of tool_result blocks, in order), tool_result blocks are moved
  to the front of their user turn, and a conversation that starts with the
  assistant gets the user turn `CONTINUE_PLACEHOLDER` in front.
- No empty or whitespace-only text blocks: they are left out, and a message
  left with nothing is left out.
- `max_tokens` is required: `DEFAULT_MAX_TOKENS` when the client sent none
  (plus the thinking budget when reasoning was asked for).
- With thinking on, temperature must be 1 and top_p at least 0.95, and tool
  use cannot be forced: the conflicting setting is dropped (for forced tool
  use, the thinking) with a Degradation.
- With thinking on, a backend that checks thinking signatures (Claude)
  requires the assistant message whose tool calls are being answered to
  start with signed thinking, which an OpenAI client never has: thinking is
  off for such a request, with a Degradation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from coderouterd.errors import NESTED_TOO_DEEP, InvalidRequestError
from coderouterd.translate.anthropic_request import loop_in_progress, starts_thinking
from coderouterd.translate.types import Degradation, Notes, number_or_none

DEFAULT_MAX_TOKENS = 4096
CONTINUE_PLACEHOLDER = "(continue)"
THINKING_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 24576}
_MIN_THINKING_BUDGET = 1024
_DATA_URL = re.compile(r"^data:([^;,]+)(?:;[^;,]*)*;base64,(.*)$", re.DOTALL)

_HANDLED = frozenset(
    {"model", "messages", "max_tokens", "max_completion_tokens", "stop", "temperature"}
    | {"top_p", "tools", "tool_choice", "parallel_tool_calls", "reasoning_effort", "user"}
    | {"stream", "stream_options"}
)
_DROPPED = {
    "n": "Anthropic returns a single choice",
    "logprobs": "Anthropic returns no log probabilities",
    "top_logprobs": "Anthropic returns no log probabilities",
    "response_format": "Anthropic has no enforced JSON output mode",
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
) -> tuple[dict[str, Any], list[Degradation]]:
    """`signed_thinking`: the backend checks thinking signatures (Claude)."""
    notes = Notes()
    system, turns = _conversation(body.get("messages"), notes)
    out: dict[str, Any] = {"model": model}
    if system:
        out["system"] = system
    out["messages"] = turns
    out.update(_tools(body.get("tools"), body.get("tool_choice"), body, notes))
    budget = _budget(body.get("reasoning_effort"), out.get("tool_choice"), notes)
    if budget is not None and signed_thinking and _loop_without_thinking(turns):
        notes.add("reasoning_effort", _LOOP_WITHOUT_THINKING)
        budget = None
    out["max_tokens"] = _max_tokens(body, budget, max_output_tokens, notes)
    if budget is not None and out["max_tokens"] - 1 < _MIN_THINKING_BUDGET:
        notes.add("reasoning_effort", "max_tokens leaves no room for a thinking budget")
        budget = None
    if budget is not None:
        out["thinking"] = {"type": "enabled", "budget_tokens": min(budget, out["max_tokens"] - 1)}
    out.update(_sampling(body, thinking=budget is not None, notes=notes))
    user = body.get("user")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}
    if body.get("stream") is True:
        out["stream"] = True
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
    if key == "response_format" and isinstance(value, Mapping):
        return value.get("type") != "text"
    return True


# Messages.


def _conversation(raw: object, notes: Notes) -> tuple[str, list[dict[str, Any]]]:
    if not isinstance(raw, list):
        raise InvalidRequestError("must be a list of messages", field="messages")
    systems: list[str] = []
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(raw):
        path = f"messages[{i}]"
        if not isinstance(message, Mapping):
            raise InvalidRequestError("must be an object", field=path)
        role = message.get("role")
        if role in ("system", "developer"):
            systems.append(_plain_text(message.get("content"), f"{path}.content"))
        elif role == "user":
            _append(turns, "user", _user_blocks(message.get("content"), f"{path}.content", notes))
        elif role == "assistant":
            _append(turns, "assistant", _assistant_blocks(message, path))
        elif role == "tool":
            _append(turns, "user", [_tool_result(message, path)])
        elif role is None:
            raise InvalidRequestError("missing required field 'role'", field=f"{path}.role")
        else:
            raise InvalidRequestError(f"unsupported role {role!r}", field=f"{path}.role")
    if not turns:
        raise InvalidRequestError("needs at least one user or assistant message", field="messages")
    if turns[0]["role"] != "user":
        notes.add("messages", "a conversation must start with a user turn; placeholder added")
        turns.insert(0, {"role": "user", "content": [_text(CONTINUE_PLACEHOLDER)]})
    for turn in turns:
        results_first = sorted(turn["content"], key=lambda b: b["type"] != "tool_result")
        turn["content"] = results_first
    return "\n\n".join(s for s in systems if s), turns


def _append(turns: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    if not blocks:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": blocks})


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _parts(raw: object, path: str) -> list[Mapping[str, Any]]:
    """Content as a list of parts: a string is one text part, null is none."""
    if raw is None:
        return []
    if isinstance(raw, str):
        return [{"type": "text", "text": raw}]
    if not isinstance(raw, list):
        raise InvalidRequestError("must be a string or a list of content parts", field=path)
    for j, part in enumerate(raw):
        if not isinstance(part, Mapping) or not isinstance(part.get("type"), str):
            raise InvalidRequestError("must be a content part with a 'type'", field=f"{path}[{j}]")
    return raw


def _part_text(part: Mapping[str, Any], path: str) -> str:
    text = part.get("text")
    if not isinstance(text, str):
        raise InvalidRequestError("must be a string", field=f"{path}.text")
    return text


def _plain_text(raw: object, path: str) -> str:
    texts = []
    for j, part in enumerate(_parts(raw, path)):
        if part["type"] != "text":
            raise InvalidRequestError("only text parts are allowed here", field=f"{path}[{j}]")
        texts.append(_part_text(part, f"{path}[{j}]"))
    return "\n".join(texts)


def _text_blocks(parts: list[Mapping[str, Any]], path: str) -> list[dict[str, Any]]:
    """The non-blank text parts as text blocks; other parts are skipped."""
    blocks = []
    for j, part in enumerate(parts):
        if part["type"] == "text" and (text := _part_text(part, f"{path}[{j}]")).strip():
            blocks.append(_text(text))
    return blocks


def _user_blocks(raw: object, path: str, notes: Notes) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(_parts(raw, path)):
        where, kind = f"{path}[{j}]", part["type"]
        if kind == "text":
            text = _part_text(part, where)
            blocks += [_text(text)] if text.strip() else []
        elif kind == "image_url":
            blocks.append(_image(part.get("image_url"), f"{where}.image_url"))
        else:
            notes.add(f"content.{kind}", f"{kind} content parts have no Anthropic equivalent")
    return blocks


def _image(raw: object, path: str) -> dict[str, Any]:
    url = raw.get("url") if isinstance(raw, Mapping) else raw
    if not isinstance(url, str):
        raise InvalidRequestError("must be an object with a string 'url'", field=path)
    if match := _DATA_URL.match(url):
        source = {"type": "base64", "media_type": match[1], "data": match[2]}
        return {"type": "image", "source": source}
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    problem = "must be a base64 data: URL or an http(s) URL"
    raise InvalidRequestError(problem, field=f"{path}.url" if isinstance(raw, Mapping) else path)


def _assistant_blocks(message: Mapping[str, Any], path: str) -> list[dict[str, Any]]:
    where = f"{path}.content"
    blocks = _text_blocks(_parts(message.get("content"), where), where)
    calls = message.get("tool_calls")
    if calls is None:
        return blocks
    if not isinstance(calls, list):
        raise InvalidRequestError("must be a list", field=f"{path}.tool_calls")
    for k, call in enumerate(calls):
        blocks.append(_tool_use(call, f"{path}.tool_calls[{k}]"))
    return blocks


def _tool_use(call: object, path: str) -> dict[str, Any]:
    if not isinstance(call, Mapping) or not isinstance(call.get("function"), Mapping):
        raise InvalidRequestError("must be an object with a 'function'", field=path)
    call_id, function = call.get("id"), call["function"]
    name, arguments = function.get("name"), function.get("arguments")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequestError("must be a non-empty string", field=f"{path}.id")
    if not isinstance(name, str) or not name:
        raise InvalidRequestError("must be a non-empty string", field=f"{path}.function.name")
    return {"type": "tool_use", "id": call_id, "name": name, "input": _arguments(arguments, path)}


def _arguments(raw: object, path: str) -> dict[str, Any]:
    where = f"{path}.function.arguments"
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    if not isinstance(raw, str):
        raise InvalidRequestError("must be a JSON string", field=where)
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise InvalidRequestError(f"is not valid JSON ({exc.args[0]})", field=where) from exc
    except RecursionError as exc:
        raise InvalidRequestError(NESTED_TOO_DEEP, field=where) from exc
    if not isinstance(value, dict):
        raise InvalidRequestError("must encode a JSON object", field=where)
    return value


def _tool_result(message: Mapping[str, Any], path: str) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequestError("must be a non-empty string", field=f"{path}.tool_call_id")
    raw = message.get("content")
    content: str | list[dict[str, Any]]
    if raw is None or isinstance(raw, str):
        content = raw or ""
    else:
        parts = _parts(raw, f"{path}.content")
        content = _text_blocks(parts, f"{path}.content")
    return {"type": "tool_result", "tool_use_id": call_id, "content": content or ""}


# Parameters.


def _max_tokens(
    body: Mapping[str, Any], budget: int | None, limit: int | None, notes: Notes
) -> int:
    key = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    raw = body.get(key)
    if raw is None:
        wanted = DEFAULT_MAX_TOKENS + (budget or 0)
        return min(wanted, limit) if limit else wanted
    if not isinstance(raw, int) or isinstance(raw, bool) or raw < 1:
        raise InvalidRequestError("must be a positive integer", field=key)
    if limit and raw > limit:
        notes.add(key, f"clamped from {raw} to the provider's limit of {limit}")
        return limit
    return raw


def _sampling(body: Mapping[str, Any], *, thinking: bool, notes: Notes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    temperature, top_p = number_or_none(body, "temperature"), number_or_none(body, "top_p")
    if temperature is not None:
        if thinking and temperature != 1:
            notes.add("temperature", "Anthropic requires temperature 1 with thinking; dropped")
        elif temperature > 1:
            notes.add("temperature", f"Anthropic accepts 0 to 1; clamped from {temperature}")
            out["temperature"] = 1.0
        else:
            out["temperature"] = temperature
    if top_p is not None:
        if thinking and top_p < 0.95:
            notes.add("top_p", "Anthropic requires top_p of at least 0.95 with thinking; dropped")
        else:
            out["top_p"] = top_p
    stop = _stop(body.get("stop"))
    if any(not s.strip() for s in stop):
        notes.add("stop", "Anthropic rejects whitespace-only stop sequences; dropped")
    if kept := [s for s in stop if s.strip()]:
        out["stop_sequences"] = kept
    return out


def _stop(raw: object) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and all(isinstance(s, str) for s in raw):
        return list(raw)
    raise InvalidRequestError("must be a string or a list of strings", field="stop")


def _tools(raw: object, choice: object, body: Mapping[str, Any], notes: Notes) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, list):
        raise InvalidRequestError("must be a list", field="tools")
    tools = []
    for j, tool in enumerate(raw):
        if not isinstance(tool, Mapping):
            raise InvalidRequestError("must be an object", field=f"tools[{j}]")
        if tool.get("type") == "function":
            tools.append(_tool(tool.get("function"), f"tools[{j}].function"))
        else:
            kind = tool.get("type")
            notes.add(f"tools.{kind}", f"{kind} tools have no Anthropic equivalent")
    if not tools:
        return {}
    out: dict[str, Any] = {"tools": tools}
    tool_choice = _tool_choice(choice, notes) if choice is not None else None
    if body.get("parallel_tool_calls") is False:
        tool_choice = tool_choice or {"type": "auto"}
        if tool_choice["type"] != "none":
            tool_choice["disable_parallel_tool_use"] = True
    if tool_choice is not None:
        out["tool_choice"] = tool_choice
    return out


def _tool(function: object, path: str) -> dict[str, Any]:
    if not isinstance(function, Mapping):
        raise InvalidRequestError("must be an object", field=path)
    name, schema = function.get("name"), function.get("parameters")
    if not isinstance(name, str) or not name:
        raise InvalidRequestError("must be a non-empty string", field=f"{path}.name")
    if schema is None:
        schema = {"type": "object", "properties": {}}
    elif not isinstance(schema, Mapping):
        raise InvalidRequestError("must be an object", field=f"{path}.parameters")
    tool: dict[str, Any] = {"name": name}
    if isinstance(function.get("description"), str):
        tool["description"] = function["description"]
    tool["input_schema"] = dict(schema)
    return tool


def _tool_choice(choice: object, notes: Notes) -> dict[str, Any]:
    named = {"auto": "auto", "none": "none", "required": "any"}
    if isinstance(choice, str) and choice in named:
        return {"type": named[choice]}
    if isinstance(choice, Mapping) and choice.get("type") == "function":
        function = choice.get("function")
        name = function.get("name") if isinstance(function, Mapping) else None
        if not isinstance(name, str) or not name:
            problem = "must be a non-empty string"
            raise InvalidRequestError(problem, field="tool_choice.function.name")
        return {"type": "tool", "name": name}
    if isinstance(choice, Mapping) and isinstance(choice.get("type"), str):
        kind = choice["type"]
        notes.add("tool_choice", f"tool_choice {kind!r} has no Anthropic equivalent; auto used")
        return {"type": "auto"}
    raise InvalidRequestError("must be auto, none, required or a function", field="tool_choice")


_LOOP_WITHOUT_THINKING = (
    "off for this request: the tool call being answered came without thinking,"
    " which Anthropic requires with thinking on"
)


def _loop_without_thinking(turns: list[Any]) -> bool:
    # An OpenAI client's assistant messages carry no signed thinking: with
    # thinking on, Anthropic refuses one whose tool calls are being answered.
    loop = loop_in_progress(turns)
    return loop is not None and not starts_thinking(loop)


def _budget(effort: object, tool_choice: Mapping[str, Any] | None, notes: Notes) -> int | None:
    if effort is None or effort == "none":
        return None
    if not isinstance(effort, str) or effort not in THINKING_BUDGETS:
        allowed = ", ".join(["none", *THINKING_BUDGETS])
        raise InvalidRequestError(f"must be one of {allowed}", field="reasoning_effort")
    if tool_choice is not None and tool_choice["type"] in ("any", "tool"):
        notes.add("reasoning_effort", "Anthropic cannot think while tool use is forced; dropped")
        return None
    return THINKING_BUDGETS[effort]
