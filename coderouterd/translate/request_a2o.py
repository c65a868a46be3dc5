"""An Anthropic Messages request as an OpenAI Chat Completions request (pure).

Conventions the OpenAI dialect cannot express directly:

- A `tool_result` with `is_error: true` becomes a `role: "tool"` message whose
  content starts with "Error: " (OpenAI has no error flag on tool messages).
- Tool results and calls that do not pair up (a client's history trimmed
  from the front, a call given up on) are mended as `tool_pairs` says:
  strict backends refuse them.
- Content blocks (images, documents, search results, and the tool calls and
  results of a model without tools) go as `content_a2o` says.
- Tools become functions, and tool call ids the backend's, as `tools_a2o` says.
- Mistral-family backends get their messages in the role order they take,
  as `mistral_order` says.
- Earlier thinking is not sent, except to a backend whose rule says
  `echo_reasoning` (DeepSeek's thinking mode requires it): there the thinking
  of an assistant turn that calls tools goes back as its `reasoning_content`.
- A conversation that leaves the backend no user or tool message (every
  block of it dropped, or assistant turns only) is refused (400, `messages`):
  chat templates refuse it ("No user query found in messages"), a backend
  failure that would end in an `overloaded_error` the client retries, and a
  made-up user turn would have the model answer a question nobody asked.

Everything dropped is recorded once per field as a Degradation.

Raw `messages` are translated message by message through a
`TranslatedHistory` (memo_a2o), so a turn translates only the messages its
conversation has not sent before.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgspec

from coderouterd.errors import NESTED_TOO_DEEP, InvalidRequestError, UntranslatableRequestError
from coderouterd.translate.capabilities import ModelCapabilities
from coderouterd.translate.content_a2o import (
    blocks,
    call_as_text,
    content,
    drop_block,
    result_as_text,
    text_of,
    tool_result,
    user_parts,
)
from coderouterd.translate.memo_a2o import Entry, LastTurn, TranslatedHistory, entry_of
from coderouterd.translate.mistral_order import mistral_order, needs_mistral_order, prefixed
from coderouterd.translate.request_params import max_tokens, reasoning, sampling
from coderouterd.translate.tool_pairs import pair_tool_messages, pairs_up
from coderouterd.translate.tools_a2o import CACHE_CONTROL_DROPPED, tool_call, tools
from coderouterd.translate.types import Degradation, Notes, read_json
from coderouterd.wire.prefix import kept_items

NO_USER_MESSAGE = "leaves no user message this backend can read"

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
    _check_readable(m["role"] for m in out)
    return _ordered(pair_tool_messages(out, notes), caps)


def _ordered(messages: list[dict[str, Any]], caps: ModelCapabilities) -> list[dict[str, Any]]:
    return prefixed(mistral_order(messages)) if caps.mistral_roles else messages


def _check_readable(roles: Iterable[str]) -> None:
    """Refuse a translation with nothing for the backend to answer (module doc)."""
    if not any(role in ("user", "tool") for role in roles):
        raise UntranslatableRequestError(NO_USER_MESSAGE, field="messages")


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
    _check_readable(role for e in entries for role in e.roles)
    parts = [e.encoded for e in entries if e.encoded]
    reorder = caps.mistral_roles and needs_mistral_order(r for e in entries for r in e.roles)
    if paired and not reorder:
        return parts
    decoded = msgspec.json.decode(b"[" + b",".join(parts) + b"]")
    mended = decoded if paired else pair_tool_messages(decoded, notes)
    return [_encode(m) for m in _ordered(mended, caps)]


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
    text = "\n\n".join(_texts(blocks(raw, path), path, notes))
    return [{"role": "system", "content": text}] if text else []


def _texts(blocks: Sequence[Mapping[str, Any]], path: str, notes: Notes) -> list[str]:
    """The text of blocks that may only be text (system prompts)."""
    texts = []
    for j, block in enumerate(blocks):
        if block.get("type") != "text":
            raise InvalidRequestError("only text blocks are allowed here", field=f"{path}[{j}]")
        texts.append(text_of(block, f"{path}[{j}]", notes))
    return texts


def _user(raw: object, path: str, caps: ModelCapabilities, notes: Notes) -> list[dict[str, Any]]:
    """Tool results first, each its own `tool` message, then the rest as one
    user message, led by the images of the tool results. A model without
    tools gets the results as text in the user message instead."""
    tools: list[dict[str, Any]] = []
    shown: list[dict[str, Any]] = []  # the tool results' images
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(blocks(raw, path)):
        where, kind = f"{path}[{j}]", block.get("type")
        if kind == "tool_result" and not caps.tools:
            parts += result_as_text(block, where, caps, notes)
        elif kind == "tool_result":
            message, images = tool_result(block, where, caps, notes)
            tools.append(message)
            if images:
                said = f"Images from the result of tool call {message['tool_call_id']}:"
                shown += [{"type": "text", "text": said}, *images]
        else:
            parts += user_parts(block, where, caps, notes)
    parts = shown + parts
    out = tools + ([{"role": "user", "content": content(parts)}] if parts else [])
    return mistral_order(out) if caps.mistral_roles else out


def _assistant(raw: object, path: str, caps: ModelCapabilities, notes: Notes) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    thinking: list[str] = []
    for j, block in enumerate(blocks(raw, path)):
        where, kind = f"{path}[{j}]", block.get("type")
        if kind == "text":
            texts.append(text_of(block, where, notes))
        elif kind == "tool_use" and not caps.tools:
            # tool_call checks the block (its id included) before the id is read.
            call = tool_call(block, where, caps, notes)
            texts.append(call_as_text(block["id"], call, notes))
        elif kind == "tool_use":
            calls.append(tool_call(block, where, caps, notes))
        elif kind in ("thinking", "redacted_thinking"):
            thinking.append(str(block.get("thinking") or ""))
        else:
            drop_block(block, notes)
    message: dict[str, Any] = {"role": "assistant", "content": "\n".join(texts)}
    if calls:
        message["content"] = message["content"] or None
        message["tool_calls"] = calls
    if calls and caps.echo_reasoning and "".join(thinking):
        message["reasoning_content"] = "".join(thinking)
    elif thinking:
        notes.add("content.thinking", "earlier thinking is not sent to OpenAI backends")
    return message
