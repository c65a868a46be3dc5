"""An OpenAI Chat Completions request's parameters as Anthropic's (pure): tools
and tool_choice (or their legacy form, functions and function_call),
max_tokens, the thinking budget asked for by reasoning_effort, and sampling;
request_o2a translates the conversation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from coderouterd.errors import InvalidRequestError
from coderouterd.scrub import clip
from coderouterd.translate.anthropic_request import loop_in_progress, starts_thinking
from coderouterd.translate.cache_o2a import CacheMarks
from coderouterd.translate.capabilities import THINKING_UNSUPPORTED
from coderouterd.translate.types import Degradation, Notes, number_or_none

DEFAULT_MAX_TOKENS = 4096
# "xhigh" and "max" (the openai SDK's ReasoningEffort has both) get the
# largest budget: with the default answer on top, 28672 tokens fit the
# output limit of every Claude that thinks (Opus 4's 32000 the lowest).
# An Anthropic client's effort level gets the same budget from a Claude
# that takes only a budget (thinking_shape).
THINKING_BUDGETS = {
    "minimal": 1024,
    "low": 2048,
    "medium": 8192,
    "high": 24576,
    "xhigh": 24576,
    "max": 24576,
}
# The least budget_tokens Anthropic takes.
MIN_THINKING_BUDGET = 1024


def limits(
    body: Mapping[str, Any],
    *,
    tool_choice: Mapping[str, Any] | None,
    turns: list[Any],
    max_output_tokens: int | None,
    signed_thinking: bool,
    can_think: bool,
    notes: Notes,
) -> dict[str, Any]:
    """max_tokens, and `thinking` when reasoning was asked for and can be had.
    A backend that cannot think (`can_think` false) gets the request as if
    none had been asked for: no budget in max_tokens, and so no sampling
    setting dropped for it."""
    budget = _budget(body.get("reasoning_effort"), tool_choice, notes)
    if budget is not None and not can_think:
        notes.add("reasoning_effort", THINKING_UNSUPPORTED)
        budget = None
    if budget is not None and signed_thinking and _loop_without_thinking(turns):
        notes.add("reasoning_effort", _LOOP_WITHOUT_THINKING)
        budget = None
    if budget is not None and _prefill(turns):
        notes.add("reasoning_effort", _PREFILL)
        budget = None
    out: dict[str, Any] = {"max_tokens": _max_tokens(body, budget, max_output_tokens, notes)}
    fitted = None if budget is None else budget_within(budget, out["max_tokens"])
    if budget is not None and fitted is None:
        notes.add("reasoning_effort", "max_tokens leaves no room for a thinking budget")
    if fitted is not None:
        out["thinking"] = {"type": "enabled", "budget_tokens": fitted}
    return out


def budget_within(budget: int, max_tokens: int) -> int | None:
    """`budget` as Anthropic takes it beside `max_tokens`: below it, and at
    least MIN_THINKING_BUDGET; None when no such budget fits."""
    if max_tokens - 1 < MIN_THINKING_BUDGET:
        return None
    return min(budget, max_tokens - 1)


def fit_budget(
    asked: dict[str, Any], key: str, max_tokens: int, told_as: tuple[str, str]
) -> tuple[dict[str, Any] | None, list[Degradation]]:
    """A thinking or reasoning object whose budget (`asked[key]`) must stay
    below a clamped max_tokens, as Anthropic requires (Claude Code asks 31999
    of 32000): as it is when it fits, lowered, or None to drop it when no
    budget Anthropic takes fits (budget_within). The Degradations name the
    client's field and the budget's key, `told_as`."""
    budget = asked.get(key)
    if not isinstance(budget, int) or budget < max_tokens:
        return asked, []
    fitted = budget_within(budget, max_tokens)
    if fitted is None:
        why = f"dropped: max_tokens {max_tokens} leaves no room for it"
        return None, [Degradation(told_as[0], why)]
    lowered = f"lowered to {fitted}, below max_tokens"
    return {**asked, key: fitted}, [Degradation(".".join(told_as), lowered)]


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


def sampling(body: Mapping[str, Any], *, thinking: bool, notes: Notes) -> dict[str, Any]:
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
        elif "temperature" in out:
            # Claude since Opus 4.1 refuses both (a 400), and Anthropic's
            # advice for the older ones is to set only one.
            notes.add("top_p", "Anthropic takes temperature or top_p, not both; dropped")
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


def tools(body: Mapping[str, Any], notes: Notes, marks: CacheMarks) -> dict[str, Any]:
    """Anthropic's tools and tool_choice, from `tools` and `tool_choice`, and
    from their legacy form, `functions` and `function_call`. A tool's
    prompt-cache marker (LiteLLM takes one on the tool, beside `function`)
    goes on the tool made from it."""
    declared = _tools(body.get("tools"), notes, marks) + _functions(body.get("functions"))
    if not declared:
        return {}
    out: dict[str, Any] = {"tools": declared}
    choice, legacy_choice = body.get("tool_choice"), body.get("function_call")
    tool_choice = None
    if choice is not None:
        tool_choice = _tool_choice(choice, notes)
    elif legacy_choice is not None:
        tool_choice = _function_call(legacy_choice)
    # An answer in the legacy form holds one call: `function_call`.
    if body.get("parallel_tool_calls") is False or legacy_functions(body):
        tool_choice = tool_choice or {"type": "auto"}
        if tool_choice["type"] != "none":
            tool_choice["disable_parallel_tool_use"] = True
    if tool_choice is not None:
        out["tool_choice"] = tool_choice
    return out


def legacy_functions(fields: Mapping[str, Any]) -> bool:
    """Whether a request declares its functions the legacy way, `functions`
    and no `tools`: the client then reads a call in the answer's
    `function_call` (response_a2o). `fields` are the request's top-level
    fields, decoded or as raw JSON."""
    return bool(_list(fields.get("functions"))) and not _list(fields.get("tools"))


def _list(value: object) -> list[Any]:
    if isinstance(value, msgspec.Raw | bytes):
        try:
            value = msgspec.json.decode(value)
        except msgspec.DecodeError:
            return []
    return value if isinstance(value, list) else []


def _tools(raw: object, notes: Notes, marks: CacheMarks) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidRequestError("must be a list", field="tools")
    tools = []
    for j, tool in enumerate(raw):
        if not isinstance(tool, Mapping):
            raise InvalidRequestError("must be an object", field=f"tools[{j}]")
        if tool.get("type") == "function":
            tools.append(marks.copy(tool, _tool(tool.get("function"), f"tools[{j}].function")))
        else:
            # The client's to choose, and logged: named cut to a sane length.
            kind = clip(str(tool.get("type")))
            notes.add(f"tools.{kind}", f"{kind} tools have no Anthropic equivalent")
            marks.lost(tool)
    return tools


def _functions(raw: object) -> list[dict[str, Any]]:
    """The legacy `functions`: each what a function tool's `function` is."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidRequestError("must be a list", field="functions")
    return [_tool(function, f"functions[{j}]") for j, function in enumerate(raw)]


def _function_call(choice: object) -> dict[str, Any]:
    """The legacy `function_call`: "auto", "none" or `{"name": …}`."""
    if choice in ("auto", "none"):
        return {"type": str(choice)}
    name = choice.get("name") if isinstance(choice, Mapping) else None
    if not isinstance(name, str) or not name:
        raise InvalidRequestError('must be auto, none or {"name": …}', field="function_call")
    return {"type": "tool", "name": name}


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
    tool["input_schema"] = _object_schema(schema)
    return tool


def _object_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A tool's parameters as Anthropic's input_schema, which must say
    `type: object`: one that says no type (`{}`, which OpenAI takes for a
    tool without arguments) gets it, and `properties: {}` when it has none."""
    if "type" in schema:
        return dict(schema)
    return {"type": "object", "properties": {}, **schema}


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
        kind = clip(choice["type"])
        notes.add("tool_choice", f"tool_choice {kind!r} has no Anthropic equivalent; auto used")
        return {"type": "auto"}
    raise InvalidRequestError("must be auto, none, required or a function", field="tool_choice")


_LOOP_WITHOUT_THINKING = (
    "off for this request: the tool call being answered came without thinking,"
    " which Anthropic requires with thinking on"
)


_PREFILL = (
    "off for this request: it ends with an assistant message (a prefill),"
    " which Anthropic takes only with thinking off"
)


def _prefill(turns: list[Any]) -> bool:
    # Anthropic's extended thinking takes no prefill: with thinking on, a
    # final assistant message must start with thinking, which an OpenAI
    # client's never does. Unlike the tool loop, not for Claude alone: it is
    # the Messages API's rule, and a prefill is rare.
    return (
        bool(turns)
        and turns[-1]["role"] == "assistant"
        and not starts_thinking(turns[-1]["content"])
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
