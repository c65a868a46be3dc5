"""An Anthropic request's tools as OpenAI functions, and its history's
tool_use blocks as `tool_calls` (pure).

Of a tool's JSON Schema only a top-level `$schema` is removed: local backends
accept the other keywords. A backend whose capability rule says
`strict_schema` gets the cut-down schema of `schema.strict_schema`. `tools`
may come as raw JSON: only a schema's top-level keys are then decoded (to
drop `$schema`) and its nested values stay raw, unless the backend is strict;
the same raw tools sent again are translated once (`TranslatedHistory`).

Tool call ids go to the backend as the client named them, except where the
capability `tool_id_format: mistral` says the backend takes only 9 letters
or digits (Mistral-family models: mistral_common, their chat templates and
Mistral's API answer 400 otherwise, and the ids Anthropic clients send back
are the `toolu_…` ones this daemon gave): there `tool_id` keeps an id of
that shape and makes one from a hash of any other. It is a function of the
id alone, so a call and its result match, in every turn and in every
memoised translation of a message.
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Mapping
from typing import Any

import msgspec

from coderouterd.errors import NESTED_TOO_DEEP, InvalidRequestError
from coderouterd.translate.capabilities import ModelCapabilities
from coderouterd.translate.memo_a2o import TranslatedHistory
from coderouterd.translate.schema import strict_schema
from coderouterd.translate.types import Notes, is_anthropic_defined, read_json
from coderouterd.wire.compact import compact_json

CACHE_CONTROL_DROPPED = "prompt caching markers have no OpenAI equivalent"

_encode = msgspec.json.Encoder().encode
_MISTRAL_ID = re.compile(r"[A-Za-z0-9]{9}")
_ALPHANUMERICS = string.ascii_letters + string.digits


def note_cache_control(block: Mapping[str, Any], notes: Notes) -> None:
    if "cache_control" in block:
        notes.add("cache_control", CACHE_CONTROL_DROPPED)


def tools(
    raw: object,
    choice: object,
    caps: ModelCapabilities,
    notes: Notes,
    history: TranslatedHistory | None,
) -> dict[str, Any]:
    listed: list[dict[str, Any]] | msgspec.Raw
    if isinstance(raw, msgspec.Raw) and history is not None:
        # A conversation sends the same tools every turn. The prefix keeps the
        # key apart from a message's (a JSON object).
        key = b"tools:" + raw
        encoded = history.through(
            key, notes, lambda own: _encode(_tool_list(_lazy_tools(raw), caps, own))
        )
        listed = msgspec.Raw(encoded) if encoded != b"[]" else []
    else:
        listed = _tool_list(_lazy_tools(raw) if isinstance(raw, msgspec.Raw) else raw, caps, notes)
    out: dict[str, Any] = {"tools": listed} if len(listed) else {}
    if out and choice is not None:
        out.update(_tool_choice(choice))
        forced = out["tool_choice"]
        if isinstance(forced, dict) and forced["function"]["name"] not in _names(listed):
            # It names a tool the backend does not get (a server tool,
            # dropped): a strict backend refuses a choice of no listed function.
            out["tool_choice"] = "auto"
            notes.add("tool_choice", "names a tool the backend does not get: auto instead")
    return out


def _names(listed: list[dict[str, Any]] | msgspec.Raw) -> set[str]:
    tools = msgspec.json.decode(listed) if isinstance(listed, msgspec.Raw) else listed
    return {t["function"]["name"] for t in tools}


def _tool_list(raw: object, caps: ModelCapabilities, notes: Notes) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidRequestError("must be a list", field="tools")
    tools = []
    for j, tool in enumerate(raw):
        if not isinstance(tool, dict):
            raise InvalidRequestError("must be an object", field=f"tools[{j}]")
        note_cache_control(tool, notes)
        kind, schema = tool.get("type"), tool.get("input_schema")
        if is_anthropic_defined(kind, schema):
            said = "a tool Anthropic defines (no input_schema) has no OpenAI equivalent"
            notes.add(f"tools.{kind}", said)
        elif schema is None:
            # A tool of the client's own needs its schema (Anthropic says so too).
            raise InvalidRequestError("field required", field=f"tools[{j}].input_schema")
        else:
            tools.append(_function(tool, f"tools[{j}]", caps, notes))
    if tools and not caps.tools:
        notes.add("tools", "the model does not support tools")
        tools = []
    return tools


_raw_tools = msgspec.json.Decoder(list[dict[str, msgspec.Raw]])
_raw_object = msgspec.json.Decoder(dict[str, msgspec.Raw])
_OPEN_BRACE = ord("{")


def _lazy_tools(raw: msgspec.Raw) -> object:
    """Tools decoded but for their schemas, which stay raw JSON; anything not a
    list of objects is decoded whole, for _tools to name the problem."""
    try:
        tools = _raw_tools.decode(raw)
    except msgspec.ValidationError:
        return read_json(raw, "tools")
    except RecursionError:
        raise InvalidRequestError(NESTED_TOO_DEEP, field="tools") from None
    return [
        {k: v if k == "input_schema" else read_json(v, f"tools[{i}].{k}") for k, v in tool.items()}
        for i, tool in enumerate(tools)
    ]


def _function(
    tool: Mapping[str, Any], path: str, caps: ModelCapabilities, notes: Notes
) -> dict[str, Any]:
    name, schema = tool.get("name"), tool["input_schema"]
    if not isinstance(name, str) or not name:
        raise InvalidRequestError("must be a non-empty string", field=f"{path}.name")
    if isinstance(schema, msgspec.Raw):
        if memoryview(schema)[0] != _OPEN_BRACE:
            raise InvalidRequestError("must be an object", field=f"{path}.input_schema")
        if not caps.strict_schema:
            # Only a top-level key may go: the nested schema stays raw.
            try:
                top = _raw_object.decode(schema)
            except (msgspec.DecodeError, RecursionError):
                top = read_json(schema, f"{path}.input_schema")
            top.pop("$schema", None)
            return {"type": "function", "function": _named(tool, name, top)}
        schema = read_json(schema, f"{path}.input_schema")
    if not isinstance(schema, dict):
        raise InvalidRequestError("must be an object", field=f"{path}.input_schema")
    parameters = {k: v for k, v in schema.items() if k != "$schema"}
    if caps.strict_schema:
        parameters, dropped = strict_schema(parameters)
        if dropped:
            unknown = ", ".join(sorted(dropped))
            notes.add("tools.input_schema", f"keywords the backend rejects dropped: {unknown}")
    return {"type": "function", "function": _named(tool, name, parameters)}


def _named(tool: Mapping[str, Any], name: str, parameters: object) -> dict[str, Any]:
    function: dict[str, Any] = {"name": name}
    if isinstance(tool.get("description"), str):
        function["description"] = tool["description"]
    function["parameters"] = parameters
    return function


def _tool_choice(choice: object) -> dict[str, Any]:
    if not isinstance(choice, dict):
        raise InvalidRequestError("must be an object", field="tool_choice")
    kind = choice.get("type")
    out: dict[str, Any]
    if kind in ("auto", "none"):
        out = {"tool_choice": kind}
    elif kind == "any":
        out = {"tool_choice": "required"}
    elif kind == "tool":
        name = choice.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidRequestError("must be a non-empty string", field="tool_choice.name")
        out = {"tool_choice": {"type": "function", "function": {"name": name}}}
    else:
        raise InvalidRequestError(f"unknown tool_choice type {kind!r}", field="tool_choice.type")
    if choice.get("disable_parallel_tool_use") is True and kind != "none":
        out["parallel_tool_calls"] = False
    return out


def tool_call(
    block: Mapping[str, Any], path: str, caps: ModelCapabilities, notes: Notes
) -> dict[str, Any]:
    """A `tool_use` block of the history as an OpenAI `tool_calls` item."""
    note_cache_control(block, notes)
    call_id, name, arguments = block.get("id"), block.get("name"), block.get("input", {})
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequestError("must be a non-empty string", field=f"{path}.id")
    if not isinstance(name, str) or not name:
        raise InvalidRequestError("must be a non-empty string", field=f"{path}.name")
    if not isinstance(arguments, dict):
        raise InvalidRequestError("must be an object", field=f"{path}.input")
    encoded = compact_json(arguments)
    function = {"name": name, "arguments": encoded}
    return {"id": tool_id(call_id, caps), "type": "function", "function": function}


def tool_id(call_id: str, caps: ModelCapabilities) -> str:
    """A tool call id of the history as the backend takes it (module doc)."""
    if caps.tool_id_format != "mistral" or _MISTRAL_ID.fullmatch(call_id):
        return call_id
    digest = hashlib.blake2b(call_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    n = int.from_bytes(digest)
    chars = []
    for _ in range(9):
        n, k = divmod(n, len(_ALPHANUMERICS))
        chars.append(_ALPHANUMERICS[k])
    return "".join(chars)
