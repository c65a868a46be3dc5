"""Tool JSON Schemas cut down for backends with a strict schema dialect (pure).

Gemini's OpenAI-compatible endpoint rejects a whole request over one JSON
Schema keyword it does not know, and coding agents' tools use plenty of them
(`propertyNames`, `exclusiveMinimum`, `const`, `$schema`, `format` …). For a
backend whose capability rule says `strict_schema: true` the schema keeps
only the keywords of the OpenAPI subset such backends accept; `const` becomes
a one-value `enum`, which means the same. Gemini takes `enum` only of
strings on a string schema ("enum: only allowed for STRING type"): an enum
of strings gets `type: string` when it has no type (a `null` among its
values becomes `nullable`), any other enum or const is dropped and its
values told in the description, so the model still reads them. Property
names are names, never keywords: `properties: {format: …}` keeps its
`format` property. A list of types (`["integer", "null"]`) becomes one
`type` and `nullable`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

_KEPT = frozenset(
    {"type", "description", "enum", "nullable", "required", "items", "minItems", "maxItems"}
    | {"minimum", "maximum", "minLength", "maxLength", "pattern", "title"}
    | {"properties", "anyOf", "format"}
)
# Formats the strict dialect understands; any other one is dropped.
_FORMATS = frozenset({"enum", "date-time"})
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf")


def strict_schema(schema: Mapping[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """The schema with only the accepted keywords, and the keywords dropped."""
    dropped: set[str] = set()
    return _clean(schema, dropped), dropped


def _clean(schema: Mapping[str, Any], dropped: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in schema.items():
        if name == "const" and "enum" not in schema:
            out["enum"] = [value]
            continue
        # oneOf as anyOf: a value that validates against one validates against any.
        key = "anyOf" if name == "oneOf" and "anyOf" not in schema else name
        if key not in _KEPT or (key == "format" and value not in _FORMATS):
            dropped.add(key)
            continue
        if key == "type" and isinstance(value, list):
            _one_type(value, out)
            continue
        out[key] = _value(key, value, dropped)
    if "enum" in out:
        _string_enum(out, "const" if "enum" not in schema else "enum", dropped)
    return out


def _string_enum(out: dict[str, Any], keyword: str, dropped: set[str]) -> None:
    """`out`'s enum (made from `keyword`) as the dialect takes it, or dropped
    with its values told in the description."""
    values = out.pop("enum")
    if isinstance(values, list) and None in values:
        values = [v for v in values if v is not None]
        out["nullable"] = True
    if not isinstance(values, list) or not values:
        dropped.add(keyword)
    elif all(isinstance(v, str) for v in values) and out.get("type", "string") == "string":
        out["type"] = "string"
        out["enum"] = values
    else:
        dropped.add(keyword)
        _describe(out, values)


def _describe(out: dict[str, Any], values: list[Any]) -> None:
    description = out.get("description")
    if description is not None and not isinstance(description, str):
        return
    allowed = ", ".join(msgspec.json.encode(v).decode() for v in values)
    out["description"] = (
        f"{description} (one of: {allowed})" if description else f"One of: {allowed}."
    )


def _one_type(types: list[Any], out: dict[str, Any]) -> None:
    """A list of types (`["integer", "null"]`, what zod and MCP servers write
    for a nullable field) as the dialect says it: one `type` and `nullable`,
    or `anyOf` one type each; the endpoint refuses a list."""
    if "null" in types:
        out["nullable"] = True
    kinds = [t for t in types if t != "null"]
    if len(kinds) == 1:
        out["type"] = kinds[0]
    elif kinds:
        out.setdefault("anyOf", [{"type": t} for t in kinds])


def _value(key: str, value: Any, dropped: set[str]) -> Any:
    if key == "properties" and isinstance(value, Mapping):
        return {name: _sub(prop, dropped) for name, prop in value.items()}
    if key == "items":
        return _sub(value, dropped)
    if key in _SCHEMA_LISTS and isinstance(value, list):
        return [_sub(item, dropped) for item in value]
    return value


def _sub(value: Any, dropped: set[str]) -> Any:
    return _clean(value, dropped) if isinstance(value, Mapping) else value
