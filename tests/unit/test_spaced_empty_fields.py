"""A request field given empty, however spaced, asks for nothing: no tools
offered (drift judges tool use only where there were), and nothing noted
as taken from a model that cannot take it. Only whitespace between tokens
counts as spacing: a string of spaces says something."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from coderouterd.routing.shape import offers_tools, tools_callable
from coderouterd.translate.unsupported import (
    OPENAI_REASONING_FIELDS,
    OPENAI_TOOL_FIELDS,
    without_reasoning,
    without_tools,
)
from coderouterd.wire.empty import says_nothing

NOTHING = [
    b"[]",
    b"[\n      ]",
    b"[ \t\r\n        ]",
    b"{\n        \n      }",
    b"null",
    b"false",
    b'""',
]
SOMETHING = [
    b'[{"type": "function", "function": {"name": "Read"}}]',
    b'[\n  {"name": "Read"}\n]',
    b"[{}]",
    b"[\n      null\n    ]",
    b'"    "',
    b'{"effort": "high"}',
    b"true",
    b"0",
]


def raw(value: bytes) -> msgspec.Raw:
    # As the body's decoder keeps a field: its bytes as the client spaced them.
    fields = msgspec.json.decode(b'{"f": ' + value + b"}", type=dict[str, msgspec.Raw])
    return fields["f"]


@pytest.mark.parametrize("value", NOTHING)
def test_an_empty_value_however_spaced_says_nothing(value: bytes) -> None:
    assert says_nothing(raw(value))


@pytest.mark.parametrize("value", SOMETHING)
def test_a_value_with_something_in_it_says_something(value: bytes) -> None:
    assert not says_nothing(raw(value))


@pytest.mark.parametrize("field", ["tools", "functions"])
@pytest.mark.parametrize("value", [v for v in NOTHING if v.startswith(b"[")])
def test_an_empty_tool_list_however_spaced_offers_no_tools(field: str, value: bytes) -> None:
    fields = {field: raw(value), "tool_choice": raw(b'"auto"')}
    assert not offers_tools(fields)
    assert not tools_callable(fields)


@pytest.mark.parametrize("value", [v for v in NOTHING if v.startswith(b"[")])
def test_an_empty_tool_list_however_spaced_is_no_tools_taken(value: bytes) -> None:
    fields: dict[str, Any] = {"tools": raw(value), "functions": raw(value)}
    assert without_tools(fields, OPENAI_TOOL_FIELDS) == []
    assert fields == {}


@pytest.mark.parametrize("value", NOTHING)
def test_an_empty_reasoning_field_however_spaced_is_no_reasoning_taken(value: bytes) -> None:
    fields: dict[str, Any] = {name: raw(value) for name in OPENAI_REASONING_FIELDS}
    assert without_reasoning(fields, OPENAI_REASONING_FIELDS) == []
    assert fields == {}


def test_tools_however_spaced_are_offered_and_taken() -> None:
    listed = raw(b'[\n  {"type": "function", "function": {"name": "Read"}}\n]')
    assert tools_callable({"tools": listed})
    fields: dict[str, Any] = {"tools": listed}
    assert [d.field for d in without_tools(fields, OPENAI_TOOL_FIELDS)] == ["tools"]


def test_a_reasoning_effort_of_spaces_is_noted_as_taken() -> None:
    fields: dict[str, Any] = {"reasoning_effort": raw(b'"    "')}
    taken = without_reasoning(fields, OPENAI_REASONING_FIELDS)
    assert [d.field for d in taken] == ["reasoning_effort"]
