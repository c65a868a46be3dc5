"""An OpenAI request's `response_format` as an instruction in the Anthropic
request's system prompt (pure).

The Messages API has no `response_format`. Claude's structured outputs
(`output_config.format`) enforce a JSON schema, but only on some Claude
models, and refuse schemas with keywords OpenAI takes (`minLength`,
`minimum`, recursion), which would turn a request that worked into a 400.
So the format the client asked for is said in words instead, after the
client's own system prompt (a prompt cache keeps its prefix), and recorded
as a Degradation: the model is told, not held to it. A `json_schema` format
is given with its schema, so that the openai SDK's `parse` gets an object
of the shape it asked for whenever the model follows the instruction.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from coderouterd.scrub import clip
from coderouterd.translate.types import Notes

FIELD = "response_format"
ONE_OBJECT = (
    "Answer with a single JSON object and nothing else: no text before or after it,"
    " no code fence around it."
)
_SCHEMA_TOLD = "Anthropic has no response_format; the schema is asked for in the system prompt"
_JSON_TOLD = "Anthropic has no JSON mode; a JSON object is asked for in the system prompt"


def format_instruction(raw: object, notes: Notes) -> str | None:
    """What the system prompt should say for `response_format`, or None
    (none asked, plain text, or a format Anthropic has nothing for: recorded)."""
    if not raw:
        return None
    kind = raw.get("type") if isinstance(raw, Mapping) else None
    if kind == "text":
        return None
    if kind == "json_object":
        notes.add(FIELD, _JSON_TOLD)
        return ONE_OBJECT
    if kind == "json_schema" and isinstance(raw, Mapping):
        notes.add(FIELD, _SCHEMA_TOLD)
        return _schema_instruction(raw.get("json_schema"))
    # The client's to choose, and logged: named cut to a sane length.
    notes.add(FIELD, f"response_format {clip(str(kind))!r} has no Anthropic equivalent")
    return None


def _schema_instruction(spec: object) -> str:
    """ONE_OBJECT, with the schema's name, description and schema when given."""
    spec = spec if isinstance(spec, Mapping) else {}
    name, description, schema = spec.get("name"), spec.get("description"), spec.get("schema")
    lines = [ONE_OBJECT]
    if isinstance(schema, Mapping):
        named = f" ({name})" if isinstance(name, str) and name else ""
        encoded = msgspec.json.encode(schema).decode()
        lines.append(f"The object must conform to this JSON Schema{named}:\n{encoded}")
    if isinstance(description, str) and description.strip():
        lines.append(f"What the object is for: {description.strip()}")
    return "\n\n".join(lines)


def with_instruction(system: str | list[Any], instruction: str | None) -> str | list[Any]:
    """`system` (a string, or text blocks) with `instruction` after it: a
    string gets a blank line and it, blocks one more block, so the blocks
    before keep their cache markers."""
    if instruction is None:
        return system
    if isinstance(system, list):
        return [*system, {"type": "text", "text": instruction}]
    return f"{system}\n\n{instruction}" if system else instruction
