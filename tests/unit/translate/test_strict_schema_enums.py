"""Tool schemas cut down for Gemini keep `enum` only as its endpoint takes
it, of strings on a string schema ("enum: only allowed for STRING type"):
one enum it refuses fails the whole request with a 400."""

from __future__ import annotations

from typing import Any

import pytest

from coderouterd.translate.schema import strict_schema


def cleaned(prop: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
    out, dropped = strict_schema({"type": "object", "properties": {"p": prop}})
    return out["properties"]["p"], dropped


@pytest.mark.parametrize(
    ("prop", "kept"),
    [
        # An enum or a literal without a type (zod's z.literal in some emitters).
        ({"enum": ["low", "high"]}, {"type": "string", "enum": ["low", "high"]}),
        ({"const": "fast"}, {"type": "string", "enum": ["fast"]}),
        ({"type": "string", "enum": ["a"]}, {"type": "string", "enum": ["a"]}),
        # A nullable enum: its null as the dialect says it.
        (
            {"type": ["string", "null"], "enum": ["a", None]},
            {"type": "string", "nullable": True, "enum": ["a"]},
        ),
    ],
)
def test_an_enum_of_strings_goes_on_a_string_schema(
    prop: dict[str, Any], kept: dict[str, Any]
) -> None:
    assert cleaned(prop) == (kept, set())


@pytest.mark.parametrize(
    ("prop", "left", "keyword"),
    [
        # MCP servers' flag sets (azure-devops-mcp).
        (
            {"type": "integer", "enum": [1, 2, 4, 8], "description": "flags"},
            {"type": "integer", "description": "flags (one of: 1, 2, 4, 8)"},
            "enum",
        ),
        (
            {"type": "boolean", "const": True},
            {"type": "boolean", "description": "One of: true."},
            "const",
        ),
        ({"enum": ["a", 1]}, {"description": 'One of: "a", 1.'}, "enum"),
        (
            {"type": "integer", "enum": ["1"]},
            {"type": "integer", "description": 'One of: "1".'},
            "enum",
        ),
    ],
)
def test_any_other_enum_is_dropped_and_its_values_told_in_the_description(
    prop: dict[str, Any], left: dict[str, Any], keyword: str
) -> None:
    assert cleaned(prop) == (left, {keyword})


def test_an_enum_deep_in_a_schema_is_judged_where_it_stands() -> None:
    schema = {
        "type": "object",
        "properties": {
            "steps": {"type": "array", "items": {"type": "integer", "enum": [1, 2]}},
            "mode": {"anyOf": [{"const": "fast"}, {"type": "number", "const": 1.5}]},
        },
    }
    out, dropped = strict_schema(schema)
    assert out["properties"] == {
        "steps": {"type": "array", "items": {"type": "integer", "description": "One of: 1, 2."}},
        "mode": {
            "anyOf": [
                {"type": "string", "enum": ["fast"]},
                {"type": "number", "description": "One of: 1.5."},
            ]
        },
    }
    assert dropped == {"enum", "const"}
