"""The tools a call printed as text may be lifted as: those offered, less
what tool_choice rules out, in either dialect (table)."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from coderouterd.translate.types import callable_tool_names, tool_names

A_TOOLS = [{"name": "Read", "input_schema": {}}, {"name": "Write", "input_schema": {}}]
O_TOOLS = [{"type": "function", "function": {"name": t["name"]}} for t in A_TOOLS]
BOTH = frozenset({"Read", "Write"})


def names(tools: Any, **fields: Any) -> frozenset[str]:
    raw = {"tools": tools, **fields}
    return callable_tool_names({k: msgspec.Raw(json.dumps(v).encode()) for k, v in raw.items()})


CASES = [
    # (tools, tool_choice or absent, names)
    (A_TOOLS, {}, BOTH),
    (A_TOOLS, {"tool_choice": {"type": "auto"}}, BOTH),
    (A_TOOLS, {"tool_choice": {"type": "any"}}, BOTH),
    (A_TOOLS, {"tool_choice": {"type": "none"}}, frozenset()),
    (A_TOOLS, {"tool_choice": {"type": "tool", "name": "Write"}}, {"Write"}),
    (A_TOOLS, {"tool_choice": {"type": "tool", "name": "Unknown"}}, frozenset()),
    (A_TOOLS, {"tool_choice": {"type": "auto", "disable_parallel_tool_use": True}}, BOTH),
    (O_TOOLS, {}, BOTH),
    (O_TOOLS, {"tool_choice": "auto"}, BOTH),
    (O_TOOLS, {"tool_choice": "required"}, BOTH),
    (O_TOOLS, {"tool_choice": "none"}, frozenset()),
    (O_TOOLS, {"tool_choice": {"type": "function", "function": {"name": "Read"}}}, {"Read"}),
    (
        O_TOOLS,
        {
            "tool_choice": {
                "type": "allowed_tools",
                "allowed_tools": {
                    "mode": "auto",
                    "tools": [{"type": "function", "function": {"name": "Write"}}],
                },
            }
        },
        {"Write"},
    ),
    # What the upstream will refuse leaves the offered tools as they are.
    (O_TOOLS, {"tool_choice": 5}, BOTH),
    (O_TOOLS, {"tool_choice": None}, BOTH),
    (None, {"tool_choice": "auto"}, frozenset()),
]


@pytest.mark.parametrize(("tools", "choice", "expected"), CASES)
def test_tool_choice_narrows_the_names_a_printed_call_is_lifted_as(
    tools: Any, choice: dict[str, Any], expected: frozenset[str]
) -> None:
    assert names(tools, **choice) == expected


def test_the_offered_names_are_every_tool_and_legacy_function_whatever_tool_choice() -> None:
    raw = {
        "tools": A_TOOLS,
        "functions": [{"name": "Grep", "parameters": {}}],
        "tool_choice": {"type": "none"},
    }
    named = tool_names({k: msgspec.Raw(json.dumps(v).encode()) for k, v in raw.items()})
    assert named == (frozenset(), BOTH | {"Grep"})
