"""An Anthropic Messages request as an OpenAI Chat Completions request (pure).

Conventions the OpenAI dialect cannot express directly:

- A `tool_result` with `is_error: true` becomes a `role: "tool"` message whose
  content starts with "Error: " (OpenAI has no error flag on tool messages).
- Images inside a tool result, and images sent to a model without vision,
  become the text `IMAGE_OMITTED` so the model knows something was there.
- Text blocks of one message are joined with "\n" into a content string;
  a message that carries images keeps OpenAI content parts instead.
- Of a tool's JSON Schema only a top-level `$schema` is removed: local
  backends accept the other keywords. A backend whose capability rule says
  `strict_schema` gets the cut-down schema of `schema.strict_schema`. `tools`
  may come as raw JSON: only a schema's top-level keys are then decoded (to
  drop `$schema`) and its nested values stay raw, unless the backend is strict.
- Earlier thinking is not sent, except to a backend whose rule says
  `echo_reasoning` (DeepSeek's thinking mode requires it): there the thinking
  of an assistant turn that calls tools goes back as its `reasoning_content`.

Everything dropped is recorded once per field as a Degradation.

A conversation resends its whole history every turn, and a message's
translation depends on nothing but its own bytes and the backend's
capabilities: `TranslatedHistory` keeps recent messages' translations, so a
turn translates only the messages it has not sent before.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from coderouterd.errors import InvalidRequestError
from coderouterd.translate.capabilities import ModelCapabilities
from coderouterd.translate.request_params import max_tokens, reasoning, sampling
from coderouterd.translate.schema import strict_schema
from coderouterd.translate.types import Degradation, Notes
from coderouterd.wire.compact import compact_json

IMAGE_OMITTED = "[image omitted: this model cannot view images]"
TOOL_ERROR_PREFIX = "Error: "

_HANDLED = frozenset(
    {"model", "messages", "system", "max_tokens", "stop_sequences", "temperature", "top_p"}
    | {"top_k", "tools", "tool_choice", "thinking", "stream"}
)
_ANTHROPIC_ONLY = {
    "cache_control": "prompt caching markers have no OpenAI equivalent",
    "context_management": "Anthropic context management has no OpenAI equivalent",
    "output_config": "Anthropic output_config has no OpenAI equivalent",
    "container": "Anthropic code-execution containers have no OpenAI equivalent",
    "mcp_servers": "the Anthropic MCP connector has no OpenAI equivalent",
    "service_tier": "Anthropic service tiers do not apply to this backend",
    # Claude Code's metadata.user_id names its account and session: not for third parties.
    "metadata": "request metadata (the client's user id) is not sent to OpenAI backends",
}


_encode = msgspec.json.Encoder().encode
_raw_list = msgspec.json.Decoder(list[msgspec.Raw])


class TranslatedHistory:
    """Recently translated messages by their bytes, for one backend's
    capabilities (bounded by bytes, least recently used out; only a cache)."""

    def __init__(self, max_bytes: int = 8 << 20) -> None:
        self._max = max_bytes
        self._bytes = 0
        # Message bytes -> its OpenAI messages (encoded, comma-joined) and notes.
        self._known: collections.OrderedDict[bytes, tuple[bytes, tuple[Degradation, ...]]] = (
            collections.OrderedDict()
        )
        self.reused = 0

    def get(self, message: bytes) -> tuple[bytes, tuple[Degradation, ...]] | None:
        known = self._known.get(message)
        if known is not None:
            self._known.move_to_end(message)
            self.reused += 1
        return known

    def put(self, message: bytes, translated: tuple[bytes, tuple[Degradation, ...]]) -> None:
        if message in self._known:
            return
        self._known[message] = translated
        self._bytes += len(message) + len(translated[0])
        while self._bytes > self._max:
            old, (out, _) = self._known.popitem(last=False)
            self._bytes -= len(old) + len(out)


def anthropic_to_openai_request(
    body: Mapping[str, Any],
    *,
    model: str,
    caps: ModelCapabilities,
    max_output_tokens: int | None,
    stream: bool,
    history: TranslatedHistory | None = None,
) -> tuple[dict[str, Any], list[Degradation]]:
    """`body`'s values decoded, except that `tools` and `messages` may be raw
    JSON; raw `messages` are translated through `history` when given."""
    notes = Notes()
    system = _system_messages(body.get("system"), "system", notes)
    raw = body.get("messages")
    messages: list[dict[str, Any]] | msgspec.Raw
    if isinstance(raw, msgspec.Raw):
        parts = [_encode(m) for m in system] + _raw_messages(raw, caps, notes, history)
        messages = msgspec.Raw(b"[" + b",".join(parts) + b"]")
    else:
        messages = system + _messages(raw, caps, notes)
    out: dict[str, Any] = {"model": model, "messages": messages}
    limit = min((n for n in (max_output_tokens, caps.max_output_tokens) if n), default=None)
    tokens = max_tokens(body.get("max_tokens"), limit, notes)
    if tokens is not None:
        out["max_tokens"] = tokens
    out.update(sampling(body, notes))
    out.update(_tools(body.get("tools"), body.get("tool_choice"), caps, notes, history))
    out.update(reasoning(body.get("thinking"), caps, notes))
    for key in body:
        if key not in _HANDLED:
            notes.add(key, _ANTHROPIC_ONLY.get(key, "unknown field, not forwarded"))
    out["stream"] = stream
    if stream:
        out["stream_options"] = {"include_usage": True}
    return out, notes.items()


# Messages.


def _messages(raw: object, caps: ModelCapabilities, notes: Notes) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        raise InvalidRequestError("must be a list of messages", field="messages")
    out: list[dict[str, Any]] = []
    for i, message in enumerate(raw):
        out += _message(message, f"messages[{i}]", caps, notes)
    return out


def _raw_messages(
    raw: msgspec.Raw, caps: ModelCapabilities, notes: Notes, history: TranslatedHistory | None
) -> list[bytes]:
    """The translated messages, each encoded, of a raw history."""
    try:
        items = _raw_list.decode(raw)
    except msgspec.ValidationError:
        raise InvalidRequestError("must be a list of messages", field="messages") from None
    out: list[bytes] = []
    for i, item in enumerate(items):
        key = bytes(item)
        known = history.get(key) if history is not None else None
        if known is None:
            own = Notes()
            translated = _message(msgspec.json.decode(key), f"messages[{i}]", caps, own)
            known = (b",".join(_encode(m) for m in translated), tuple(own.items()))
            if history is not None:
                history.put(key, known)
        encoded, degraded = known
        for d in degraded:
            notes.add(d.field, d.reason)
        if encoded:
            out.append(encoded)
    return out


def _message(
    message: object, path: str, caps: ModelCapabilities, notes: Notes
) -> list[dict[str, Any]]:
    if not isinstance(message, dict):
        raise InvalidRequestError("must be an object", field=path)
    role, content = message.get("role"), message.get("content")
    if "content" not in message:
        raise InvalidRequestError("missing required field 'content'", field=f"{path}.content")
    if role == "user":
        return _user(content, f"{path}.content", caps, notes)
    if role == "assistant":
        return [_assistant(content, f"{path}.content", caps, notes)]
    if role == "system":
        return _system_messages(content, f"{path}.content", notes)
    if role is None:
        raise InvalidRequestError("missing required field 'role'", field=f"{path}.role")
    problem = f"unknown role {role!r}: expected 'user', 'assistant' or 'system'"
    raise InvalidRequestError(problem, field=f"{path}.role")


def _system_messages(raw: object, path: str, notes: Notes) -> list[dict[str, Any]]:
    if raw is None:
        return []
    text = "\n\n".join(_texts(_blocks(raw, path), path, notes))
    return [{"role": "system", "content": text}] if text else []


def _texts(blocks: Sequence[Mapping[str, Any]], path: str, notes: Notes) -> list[str]:
    """The text of blocks that may only be text (system prompts)."""
    texts = []
    for j, block in enumerate(blocks):
        if block.get("type") != "text":
            raise InvalidRequestError("only text blocks are allowed here", field=f"{path}[{j}]")
        texts.append(_text_of(block, f"{path}[{j}]", notes))
    return texts


def _user(raw: object, path: str, caps: ModelCapabilities, notes: Notes) -> list[dict[str, Any]]:
    """Tool results first, each its own `tool` message, then the rest as one user message."""
    tools: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(_blocks(raw, path)):
        where, kind = f"{path}[{j}]", block.get("type")
        if kind == "tool_result":
            tools.append(_tool_result(block, where, notes))
        elif kind == "text":
            parts.append({"type": "text", "text": _text_of(block, where, notes)})
        elif kind == "image":
            parts.append(_image(block, where, caps, notes))
        else:
            _drop_block(block, notes)
    return tools + ([{"role": "user", "content": _content(parts)}] if parts else [])


def _assistant(raw: object, path: str, caps: ModelCapabilities, notes: Notes) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    thinking: list[str] = []
    for j, block in enumerate(_blocks(raw, path)):
        where, kind = f"{path}[{j}]", block.get("type")
        if kind == "text":
            texts.append(_text_of(block, where, notes))
        elif kind == "tool_use":
            calls.append(_tool_call(block, where, notes))
        elif kind in ("thinking", "redacted_thinking"):
            thinking.append(str(block.get("thinking") or ""))
        else:
            _drop_block(block, notes)
    message: dict[str, Any] = {"role": "assistant", "content": "\n".join(texts)}
    if calls:
        message["content"] = message["content"] or None
        message["tool_calls"] = calls
    if calls and caps.echo_reasoning and "".join(thinking):
        message["reasoning_content"] = "".join(thinking)
    elif thinking:
        notes.add("content.thinking", "earlier thinking is not sent to OpenAI backends")
    return message


def _blocks(raw: object, path: str) -> list[Mapping[str, Any]]:
    """Content as a list of blocks: a string is one text block."""
    if isinstance(raw, str):
        return [{"type": "text", "text": raw}]
    if not isinstance(raw, list):
        raise InvalidRequestError("must be a string or a list of content blocks", field=path)
    for j, block in enumerate(raw):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise InvalidRequestError("must be a content block with a 'type'", field=f"{path}[{j}]")
    return raw


def _text_of(block: Mapping[str, Any], path: str, notes: Notes) -> str:
    _note_cache_control(block, notes)
    text = block.get("text")
    if not isinstance(text, str):
        raise InvalidRequestError("must be a string", field=f"{path}.text")
    return text


def _content(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    if all(part["type"] == "text" for part in parts):
        return "\n".join(part["text"] for part in parts)
    return parts


def _image(
    block: Mapping[str, Any], path: str, caps: ModelCapabilities, notes: Notes
) -> dict[str, Any]:
    _note_cache_control(block, notes)
    url = _image_url(block.get("source"), f"{path}.source")
    if url is None:
        notes.add("image.source", "images given by file id cannot be sent to this backend")
    elif not caps.vision:
        notes.add("image", "the model cannot view images")
    else:
        return {"type": "image_url", "image_url": {"url": url}}
    return {"type": "text", "text": IMAGE_OMITTED}


def _image_url(source: object, path: str) -> str | None:
    if not isinstance(source, dict):
        raise InvalidRequestError("must be an object", field=path)
    kind = source.get("type")
    if kind == "base64":
        media, data = source.get("media_type"), source.get("data")
        if not isinstance(media, str) or not isinstance(data, str):
            raise InvalidRequestError("needs string 'media_type' and 'data'", field=path)
        return f"data:{media};base64,{data}"
    if kind == "url":
        url = source.get("url")
        if not isinstance(url, str):
            raise InvalidRequestError("must be a string", field=f"{path}.url")
        return url
    if kind == "file":
        return None
    raise InvalidRequestError(f"unknown image source type {kind!r}", field=f"{path}.type")


def _drop_block(block: Mapping[str, Any], notes: Notes) -> None:
    kind = block["type"]
    notes.add(f"content.{kind}", f"{kind} blocks have no OpenAI equivalent")


def _tool_call(block: Mapping[str, Any], path: str, notes: Notes) -> dict[str, Any]:
    _note_cache_control(block, notes)
    call_id, name, arguments = block.get("id"), block.get("name"), block.get("input", {})
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequestError("must be a non-empty string", field=f"{path}.id")
    if not isinstance(name, str) or not name:
        raise InvalidRequestError("must be a non-empty string", field=f"{path}.name")
    if not isinstance(arguments, dict):
        raise InvalidRequestError("must be an object", field=f"{path}.input")
    encoded = compact_json(arguments)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": encoded}}


def _tool_result(block: Mapping[str, Any], path: str, notes: Notes) -> dict[str, Any]:
    _note_cache_control(block, notes)
    call_id, content = block.get("tool_use_id"), block.get("content", "")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequestError("must be a non-empty string", field=f"{path}.tool_use_id")
    if content is None:
        content = ""
    texts: list[str] = []
    for j, inner in enumerate(_blocks(content, f"{path}.content")):
        where, kind = f"{path}.content[{j}]", inner.get("type")
        if kind == "text":
            texts.append(_text_of(inner, where, notes))
        elif kind == "image":
            notes.add("tool_result.image", "tool messages carry text only")
            texts.append(IMAGE_OMITTED)
        else:
            _drop_block(inner, notes)
    text = "\n".join(texts)
    if block.get("is_error") is True:
        text = TOOL_ERROR_PREFIX + text
    return {"role": "tool", "tool_call_id": call_id, "content": text}


def _note_cache_control(block: Mapping[str, Any], notes: Notes) -> None:
    if "cache_control" in block:
        notes.add("cache_control", _ANTHROPIC_ONLY["cache_control"])


def _tools(
    raw: object,
    choice: object,
    caps: ModelCapabilities,
    notes: Notes,
    history: TranslatedHistory | None,
) -> dict[str, Any]:
    tools: list[dict[str, Any]] | msgspec.Raw
    if isinstance(raw, msgspec.Raw) and history is not None:
        # A conversation sends the same tools every turn. The prefix keeps the
        # key apart from a message's (a JSON object).
        key = b"tools:" + raw
        known = history.get(key)
        if known is None:
            own = Notes()
            known = (_encode(_tool_list(_lazy_tools(raw), caps, own)), tuple(own.items()))
            history.put(key, known)
        encoded, degraded = known
        for d in degraded:
            notes.add(d.field, d.reason)
        tools = msgspec.Raw(encoded) if encoded != b"[]" else []
    else:
        tools = _tool_list(_lazy_tools(raw) if isinstance(raw, msgspec.Raw) else raw, caps, notes)
    out: dict[str, Any] = {"tools": tools} if len(tools) else {}
    if out and choice is not None:
        out.update(_tool_choice(choice))
    return out


def _tool_list(raw: object, caps: ModelCapabilities, notes: Notes) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidRequestError("must be a list", field="tools")
    tools = []
    for j, tool in enumerate(raw):
        if not isinstance(tool, dict):
            raise InvalidRequestError("must be an object", field=f"tools[{j}]")
        _note_cache_control(tool, notes)
        if tool.get("input_schema") is None:
            kind = tool.get("type") or tool.get("name")
            notes.add(f"tools.{kind}", "a server tool (no input_schema) has no OpenAI equivalent")
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
        return msgspec.json.decode(raw)
    return [
        {k: v if k == "input_schema" else msgspec.json.decode(v) for k, v in tool.items()}
        for tool in tools
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
            top = _raw_object.decode(schema)
            top.pop("$schema", None)
            return {"type": "function", "function": _named(tool, name, top)}
        schema = msgspec.json.decode(schema)
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
