"""Tool schemas cut down for strict backends keep their meaning and their property names."""

from __future__ import annotations

from typing import Any

from coderouterd.translate.schema import strict_schema

# Shaped like Claude Code's own tool schemas (zod-to-json-schema output).
EDIT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "file_path": {"type": "string", "format": "uri", "description": "absolute path"},
        "format": {"type": "string", "const": "unified"},
        "limit": {"type": "integer", "exclusiveMinimum": 0, "maximum": 2000},
        "when": {"type": "string", "format": "date-time"},
        "edits": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "propertyNames": {"pattern": "^[a-z]+$"},
                "properties": {"old": {"type": "string"}, "new": {"type": "string"}},
                "required": ["old", "new"],
            },
        },
        "mode": {"oneOf": [{"type": "string", "enum": ["a"]}, {"type": "null"}]},
    },
    "required": ["file_path"],
}


def test_a_strict_schema_keeps_the_subset_and_says_what_it_dropped() -> None:
    out, dropped = strict_schema(EDIT)
    assert out == {
        "type": "object",
        "properties": {
            "file_path": {"type": "string", "description": "absolute path"},
            "format": {"type": "string", "enum": ["unified"]},
            "limit": {"type": "integer", "maximum": 2000},
            "when": {"type": "string", "format": "date-time"},
            "edits": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "properties": {"old": {"type": "string"}, "new": {"type": "string"}},
                    "required": ["old", "new"],
                },
            },
            "mode": {"anyOf": [{"type": "string", "enum": ["a"]}, {"type": "null"}]},
        },
        "required": ["file_path"],
    }
    assert dropped == {"additionalProperties", "format", "exclusiveMinimum", "propertyNames"}


def test_a_schema_already_in_the_subset_comes_back_equal() -> None:
    plain = {"type": "object", "properties": {"command": {"type": "string"}}}
    assert strict_schema(plain) == (plain, set())


def test_a_list_of_types_becomes_one_type_and_nullable() -> None:
    """zod and MCP servers write a nullable field as a list of types, which
    Gemini's endpoint refuses ("Proto field is not repeating")."""
    schema = {
        "type": "object",
        "properties": {
            "limit": {"type": ["integer", "null"], "minimum": 0},
            "id": {"type": ["string", "integer"]},
            "nothing": {"type": ["null"]},
        },
    }
    out, dropped = strict_schema(schema)
    assert out["properties"] == {
        "limit": {"type": "integer", "nullable": True, "minimum": 0},
        "id": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        "nothing": {"nullable": True},
    }
    assert dropped == set()
