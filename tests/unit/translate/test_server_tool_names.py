"""A server tool (an Anthropic tool of a type other than `custom`, with no
input_schema) is offered but never callable: a call to it printed as text
keeps its text, and is never lifted as a client tool_use (table)."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from coderouterd.translate.types import ToolNames, is_server_tool, tool_names

WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search", "max_uses": 8}
READ = {"name": "Read", "input_schema": {"type": "object"}}
CUSTOM = {"type": "custom", "name": "Write", "input_schema": {"type": "object"}}
FUNCTION = {"type": "function", "function": {"name": "Grep", "parameters": {}}}
# Anthropic-defined tools the client runs: no schema, and callable.
BASH = {"type": "bash_20250124", "name": "bash"}
EDITOR = {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"}
MEMORY = {"type": "memory_20250818", "name": "memory"}
COMPUTER = {"type": "computer_20251124", "name": "computer", "display_width_px": 1024}


def names_of(**fields: Any) -> ToolNames:
    return tool_names({k: msgspec.Raw(json.dumps(v).encode()) for k, v in fields.items()})


@pytest.mark.parametrize(
    ("fields", "callable_", "offered"),
    [
        ({"tools": [WEB_SEARCH]}, set(), {"web_search"}),
        (
            {"tools": [WEB_SEARCH], "tool_choice": {"type": "tool", "name": "web_search"}},
            set(),
            {"web_search"},
        ),
        ({"tools": [WEB_SEARCH, READ, CUSTOM]}, {"Read", "Write"}, {"web_search", "Read", "Write"}),
        # An OpenAI function carries its type but no input_schema: it is the client's.
        ({"tools": [FUNCTION]}, {"Grep"}, {"Grep"}),
        # A type of no shape a tool has costs the other tools nothing.
        ({"tools": [{"type": {"x": 1}, "name": "odd"}, READ]}, {"Read"}, {"odd", "Read"}),
        # A tool of the client's that lacks its schema is still the client's.
        ({"tools": [{"name": "bare"}]}, {"bare"}, {"bare"}),
        (
            {"tools": [BASH, EDITOR, MEMORY, COMPUTER, WEB_SEARCH]},
            {"bash", "str_replace_based_edit_tool", "memory", "computer"},
            {"bash", "str_replace_based_edit_tool", "memory", "computer", "web_search"},
        ),
    ],
)
def test_server_tools_are_offered_but_not_callable(
    fields: dict[str, Any], callable_: set[str], offered: set[str]
) -> None:
    names = names_of(**fields)
    assert names.callable == callable_
    assert names.offered == offered


@pytest.mark.parametrize(
    ("kind", "schema", "server"),
    [
        ("web_search_20250305", None, True),
        ("code_execution_20250522", None, True),
        ("web_fetch_20250910", None, True),
        ("tool_search_tool_regex_20251119", None, True),
        # A type Anthropic has yet to define: its call stays text.
        ("someday_20300101", None, True),
        ("bash_20250124", None, False),
        ("text_editor_20250728", None, False),
        ("memory_20250818", None, False),
        ("computer_20251124", None, False),
        (None, None, False),
        ("custom", None, False),
        ("web_search_20250305", {"type": "object"}, False),
        (None, {"type": "object"}, False),
    ],
)
def test_a_server_tool_has_a_type_of_its_own_and_no_schema(
    kind: object, schema: object, server: bool
) -> None:
    assert is_server_tool(kind, schema) is server
