"""Top-level request fields a backend cannot take, removed before sending (pure).

The capability registry's `tools: false` and `thinking: false` apply to every
client dialect and provider kind; the translating paths handle them inside
their translation (tools_a2o, request_params, params_o2a), the same-dialect
paths here, on the request's top-level fields, decoded or raw JSON alike. A
removal is recorded only when the field asked for something, so an empty
`tools: []` is dropped silently.
"""

from __future__ import annotations

from typing import Any

import msgspec

from coderouterd.translate.capabilities import THINKING_UNSUPPORTED
from coderouterd.translate.types import Degradation
from coderouterd.wire.empty import says_nothing

# The Degradation field routing/progress.py reads as "sent without its tools"
# (TOOLS_FIELD): the provider's tool use and prompt estimate are judged
# against what it was sent.
TOOLS = "tools"
TOOLS_UNSUPPORTED = "the model does not support tools"
ANTHROPIC_TOOL_FIELDS = ("tools", "tool_choice")
# `functions` and `function_call` are the legacy form of tools and tool_choice.
OPENAI_TOOL_FIELDS = ("tools", "tool_choice", "parallel_tool_calls", "functions", "function_call")
# What an OpenAI client asks reasoning with: OpenAI's and vLLM's effort,
# OpenRouter's object.
OPENAI_REASONING_FIELDS = ("reasoning_effort", "reasoning")
_DECLARING = frozenset({"tools", "functions"})


def without_tools(fields: dict[str, Any], names: tuple[str, ...]) -> list[Degradation]:
    """`fields` without the tool fields `names`, and a Degradation of field
    TOOLS when they declared a tool."""
    declared = False
    for name in names:
        value = fields.pop(name, None)
        declared = declared or (name in _DECLARING and _asks(value))
    return [Degradation(TOOLS, TOOLS_UNSUPPORTED)] if declared else []


def without_reasoning(fields: dict[str, Any], names: tuple[str, ...]) -> list[Degradation]:
    """`fields` without the reasoning fields `names`, a Degradation for each
    that asked for something."""
    return [
        Degradation(name, THINKING_UNSUPPORTED)
        for name in names
        if name in fields and _asks(fields.pop(name))
    ]


def _asks(value: object) -> bool:
    """Whether a field's value, decoded or raw JSON, says anything: not
    absent, null, false or empty."""
    if isinstance(value, msgspec.Raw):
        return not says_nothing(value)
    return value not in (None, False, "", [], {})
