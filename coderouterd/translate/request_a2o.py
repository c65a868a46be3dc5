"""An Anthropic Messages request as an OpenAI Chat Completions request (pure).

Conventions the OpenAI dialect cannot express directly:

- A `tool_result` with `is_error: true` becomes a `role: "tool"` message whose
  content starts with "Error: " (OpenAI has no error flag on tool messages).
- Tool results and calls that do not pair up (a client's history trimmed
  from the front, a call given up on) are mended as `tool_pairs` says:
  strict backends refuse them.
- Images sent to a model without vision become the text `IMAGE_OMITTED`
  so the model knows something was there. A tool message carries text only:
  for a vision model the images of a tool result go in the user message
  after the run of tool messages, which says whose they are, and the tool
  text says where they went.
- A plain-text document (`source.type: "text"`) is sent as text, after its
  title and context; any other document becomes `DOCUMENT_OMITTED`.
- Text blocks of one message are joined with "\n" into a content string;
  a message that carries images keeps OpenAI content parts instead.
- Tools become functions, and tool call ids the backend's, as `tools_a2o` says.
- Earlier thinking is not sent, except to a backend whose rule says
  `echo_reasoning` (DeepSeek's thinking mode requires it): there the thinking
  of an assistant turn that calls tools goes back as its `reasoning_content`.

Everything dropped is recorded once per field as a Degradation.

Raw `messages` are translated message by message through a
`TranslatedHistory` (memo_a2o), so a turn translates only the messages its
conversation has not sent before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from coderouterd.errors import NESTED_TOO_DEEP, InvalidRequestError
from coderouterd.scrub import clip
from coderouterd.translate.capabilities import ModelCapabilities
from coderouterd.translate.memo_a2o import Entry, LastTurn, TranslatedHistory, entry_of
from coderouterd.translate.request_params import max_tokens, reasoning, sampling
from coderouterd.translate.tool_pairs import TOOL_ERROR_PREFIX, pair_tool_messages, pairs_up
from coderouterd.translate.tools_a2o import (
    CACHE_CONTROL_DROPPED,
    note_cache_control,
    tool_call,
    tool_id,
    tools,
)
from coderouterd.translate.types import Degradation, Notes, read_json
from coderouterd.wire.prefix import kept_items

IMAGE_OMITTED = "[image omitted: this model cannot view images]"
IMAGE_MOVED = "[image: in the user message after the tool results]"
DOCUMENT_OMITTED = "[document omitted: this backend cannot read documents]"

_HANDLED = frozenset(
    {"model", "messages", "system", "max_tokens", "stop_sequences", "temperature", "top_p"}
    | {"top_k", "tools", "tool_choice", "thinking", "output_config", "stream"}
)
_ANTHROPIC_ONLY = {
    "cache_control": CACHE_CONTROL_DROPPED,
    "context_management": "Anthropic context management has no OpenAI equivalent",
    "container": "Anthropic code-execution containers have no OpenAI equivalent",
    "mcp_servers": "the Anthropic MCP connector has no OpenAI equivalent",
    "service_tier": "Anthropic service tiers do not apply to this backend",
    # Claude Code's metadata.user_id names its account and session: not for third parties.
    "metadata": "request metadata (the client's user id) is not sent to OpenAI backends",
}


_encode = msgspec.json.Encoder().encode
_raw_list = msgspec.json.Decoder(list[msgspec.Raw])
_COMMA = ord(",")
_DELIMITERS = frozenset(b",]")


def anthropic_to_openai_request(
    body: Mapping[str, Any],
    *,
    model: str,
    caps: ModelCapabilities,
    max_output_tokens: int | None,
    stream: bool,
    history: TranslatedHistory | None = None,
    conversation: object = None,
) -> tuple[dict[str, Any], list[Degradation]]:
    """`body`'s values decoded, except that `tools` and `messages` may be raw
    JSON; raw `messages` are translated through `history` when given, and
    `conversation` (ingress's hint, never trusted without a compare) names
    the last translation of this history there."""
    notes = Notes()
    system = _system_messages(body.get("system"), "system", notes)
    raw = body.get("messages")
    messages: list[dict[str, Any]] | msgspec.Raw
    if isinstance(raw, msgspec.Raw):
        parts = [_encode(m) for m in system] + _raw_messages(
            raw, caps, notes, history, conversation
        )
        messages = msgspec.Raw(b"[" + b",".join(parts) + b"]")
    else:
        messages = system + _messages(raw, caps, notes)
    out: dict[str, Any] = {"model": model, "messages": messages}
    limit = caps.output_ceiling(max_output_tokens)
    tokens = max_tokens(body.get("max_tokens"), limit, notes)
    if tokens is not None:
        out["max_tokens"] = tokens
    out.update(sampling(body, notes))
    out.update(tools(body.get("tools"), body.get("tool_choice"), caps, notes, history))
    out.update(reasoning(body.get("thinking"), caps, notes, body.get("output_config")))
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
    return pair_tool_messages(out, notes)


def _raw_messages(
    raw: msgspec.Raw,
    caps: ModelCapabilities,
    notes: Notes,
    history: TranslatedHistory | None,
    conversation: object = None,
) -> list[bytes]:
    """The translated messages, each encoded, of a raw history.

    `conversation` (ingress's hint) names the history's last translation in
    `history`: the messages this one starts with, byte for byte, are taken
    from it as they are (see memo_a2o)."""
    # Without a history, one that keeps nothing: the same path either way.
    memo = history if history is not None else TranslatedHistory(max_bytes=0)
    view = memoryview(raw)
    last = memo.last_turn(conversation) if conversation is not None else None
    kept = (
        kept_items(last.raw, last.ends, view, back=_BACK, delimiters=_DELIMITERS)
        if last is not None
        else 0
    )
    if last is not None and kept:
        at = last.ends[kept - 1]
        # `,`: more messages follow; `]`: the same ones.
        items = _items(b"[" + view[at + 1 :]) if view[at] == _COMMA else []
        ends, entries = list(last.ends[:kept]), list(last.entries[:kept])
        for entry in entries:
            for d in entry.notes:
                notes.add(d.field, d.reason)
    else:
        items = _items(raw)
        at = 0  # the `[`
        ends, entries = [], []
    for j, item in enumerate(items):
        path = f"messages[{kept + j}]"

        def translate(own: Notes, raw: msgspec.Raw = item, path: str = path) -> Entry:
            return entry_of(_message(read_json(raw, path), path, caps, own))

        entry = memo.entry(bytes(item), translate)
        for d in entry.notes:
            notes.add(d.field, d.reason)
        entries.append(entry)
        at += 1 + len(item)
        ends.append(at)
    # The messages taken from the last turn paired up among themselves if it did.
    paired = pairs_up(entries, kept) if last is not None and last.paired else pairs_up(entries)
    # Compact JSON (no spacing between messages): every end is where it says.
    if conversation is not None and ends and at == len(view) - 1:
        memo.remember_turn(conversation, LastTurn(bytes(view), tuple(ends), tuple(entries), paired))
    parts = [e.encoded for e in entries if e.encoded]
    if paired:
        return parts
    decoded = msgspec.json.decode(b"[" + b",".join(parts) + b"]")
    return [_encode(m) for m in pair_tool_messages(decoded, notes)]


def _items(raw: msgspec.Raw | bytes) -> list[msgspec.Raw]:
    try:
        return _raw_list.decode(raw)
    except msgspec.ValidationError:
        raise InvalidRequestError("must be a list of messages", field="messages") from None
    except RecursionError:
        raise InvalidRequestError(NESTED_TOO_DEEP, field="messages") from None


# How many of the last turn's last messages a turn may have changed (a client
# moving its cache breakpoint) and still take the ones before them.
_BACK = 3


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
    """Tool results first, each its own `tool` message, then the rest as one
    user message, led by the images of the tool results."""
    tools: list[dict[str, Any]] = []
    shown: list[dict[str, Any]] = []  # the tool results' images
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(_blocks(raw, path)):
        where, kind = f"{path}[{j}]", block.get("type")
        if kind == "tool_result":
            message, images = _tool_result(block, where, caps, notes)
            tools.append(message)
            if images:
                said = f"Images from the result of tool call {message['tool_call_id']}:"
                shown += [{"type": "text", "text": said}, *images]
        elif kind == "text":
            parts.append({"type": "text", "text": _text_of(block, where, notes)})
        elif kind == "image":
            parts.append(_image(block, where, caps, notes))
        elif kind == "document":
            parts.append({"type": "text", "text": _document(block, notes)})
        else:
            _drop_block(block, notes)
    parts = shown + parts
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
            calls.append(tool_call(block, where, caps, notes))
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
    note_cache_control(block, notes)
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
    note_cache_control(block, notes)
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


def _document(block: Mapping[str, Any], notes: Notes) -> str:
    note_cache_control(block, notes)
    source = block.get("source")
    data = source.get("data") if isinstance(source, dict) and source.get("type") == "text" else None
    if not isinstance(data, str):
        notes.add("content.document", "only plain-text documents can be sent to this backend")
        return DOCUMENT_OMITTED
    title, context = block.get("title"), block.get("context")
    head = [f"[document: {title}]"] if isinstance(title, str) and title else []
    head += [context] if isinstance(context, str) and context else []
    return "\n".join([*head, data])


def _drop_block(block: Mapping[str, Any], notes: Notes) -> None:
    kind = clip(str(block["type"]))  # the client's to name, and logged
    notes.add(f"content.{kind}", f"{kind} blocks have no OpenAI equivalent")


def _tool_result(
    block: Mapping[str, Any], path: str, caps: ModelCapabilities, notes: Notes
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The `tool` message, and the images a vision model gets after it."""
    note_cache_control(block, notes)
    call_id, content = block.get("tool_use_id"), block.get("content", "")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequestError("must be a non-empty string", field=f"{path}.tool_use_id")
    if content is None:
        content = ""
    texts: list[str] = []
    images: list[dict[str, Any]] = []
    for j, inner in enumerate(_blocks(content, f"{path}.content")):
        where, kind = f"{path}.content[{j}]", inner.get("type")
        if kind == "text":
            texts.append(_text_of(inner, where, notes))
        elif kind == "image" and caps.vision:
            part = _image(inner, where, caps, notes)
            texts.append(IMAGE_MOVED if part["type"] == "image_url" else part["text"])
            images += [part] if part["type"] == "image_url" else []
        elif kind == "image":
            notes.add("tool_result.image", "tool messages carry text only")
            texts.append(IMAGE_OMITTED)
        elif kind == "document":
            texts.append(_document(inner, notes))
        else:
            _drop_block(inner, notes)
    text = "\n".join(texts)
    if block.get("is_error") is True:
        text = TOOL_ERROR_PREFIX + text
    return {"role": "tool", "tool_call_id": tool_id(call_id, caps), "content": text}, images
