"""Anthropic content blocks as OpenAI content (pure).

- Images sent to a model without vision become the text `IMAGE_OMITTED`
  so the model knows something was there. A tool message carries text
  only: for a vision model the images of a tool result go in the user
  message after the run of tool messages, which says whose they are, and
  the tool text says where they went.
- A plain-text document (`source.type: "text"`) and a custom-content one
  (`source.type: "content"`, a string or text blocks) are sent as text,
  after their title and context; any other document becomes
  `DOCUMENT_OMITTED`.
- A `search_result` (a search tool's finding, or an app's retrieved
  context) is sent as text: a line naming its title and source, then its
  text blocks.
- For a model without tools (`tools: false`) the history's calls and
  results are written as text in the assistant and user messages, as a
  result whose call is gone is (tool_pairs): the template of such a model
  renders no `tool` message and no `tool_calls`.
- Text blocks of one message are joined with "\\n" into a content string;
  a message that carries images keeps OpenAI content parts instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from coderouterd.errors import InvalidRequestError
from coderouterd.scrub import clip
from coderouterd.translate.capabilities import ModelCapabilities
from coderouterd.translate.tool_pairs import TOOL_ERROR_PREFIX
from coderouterd.translate.tools_a2o import note_cache_control, tool_id
from coderouterd.translate.types import Notes

IMAGE_OMITTED = "[image omitted: this model cannot view images]"
IMAGE_MOVED = "[image: in the user message after the tool results]"
DOCUMENT_OMITTED = "[document omitted: this backend cannot read documents]"
TOOLS_AS_TEXT = "the model does not support tools: the history's tool calls and results go as text"

Part = dict[str, Any]


def blocks(raw: object, path: str) -> list[Mapping[str, Any]]:
    """Content as a list of blocks: a string is one text block."""
    if isinstance(raw, str):
        return [{"type": "text", "text": raw}]
    if not isinstance(raw, list):
        raise InvalidRequestError("must be a string or a list of content blocks", field=path)
    for j, block in enumerate(raw):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise InvalidRequestError("must be a content block with a 'type'", field=f"{path}[{j}]")
    return raw


def text_of(block: Mapping[str, Any], path: str, notes: Notes) -> str:
    note_cache_control(block, notes)
    text = block.get("text")
    if not isinstance(text, str):
        raise InvalidRequestError("must be a string", field=f"{path}.text")
    return text


def content(parts: list[Part]) -> str | list[Part]:
    if all(part["type"] == "text" for part in parts):
        return "\n".join(part["text"] for part in parts)
    return parts


def user_parts(
    block: Mapping[str, Any], path: str, caps: ModelCapabilities, notes: Notes
) -> list[Part]:
    """A user block other than a tool result as content parts: one, or none
    for a block dropped."""
    kind = block.get("type")
    if kind == "text":
        return [{"type": "text", "text": text_of(block, path, notes)}]
    if kind == "image":
        return [image(block, path, caps, notes)]
    if kind == "document":
        return [{"type": "text", "text": document(block, notes)}]
    if kind == "search_result":
        return [{"type": "text", "text": search_result(block, path, notes)}]
    drop_block(block, notes)
    return []


def image(block: Mapping[str, Any], path: str, caps: ModelCapabilities, notes: Notes) -> Part:
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


def document(block: Mapping[str, Any], notes: Notes) -> str:
    note_cache_control(block, notes)
    data = _document_text(block.get("source"), notes)
    if data is None:
        notes.add("content.document", "only plain-text documents can be sent to this backend")
        return DOCUMENT_OMITTED
    title, context = block.get("title"), block.get("context")
    head = [f"[document: {title}]"] if isinstance(title, str) and title else []
    head += [context] if isinstance(context, str) and context else []
    return "\n".join([*head, data])


def _document_text(source: object, notes: Notes) -> str | None:
    """The text of a plain-text or custom-content document source, else None."""
    if not isinstance(source, dict):
        return None
    kind, inner = source.get("type"), source.get("content")
    if kind == "text":
        data = source.get("data")
        return data if isinstance(data, str) else None
    if kind != "content":
        return None
    if isinstance(inner, str):
        return inner
    if not isinstance(inner, list):
        return None
    texts = [b["text"] for b in inner if isinstance(b, dict) and isinstance(b.get("text"), str)]
    if len(texts) < len(inner):
        notes.add("content.document", "only the text of a custom-content document is sent")
    return "\n".join(texts)


def search_result(block: Mapping[str, Any], path: str, notes: Notes) -> str:
    """`[search result: <title> (<source>)]`, then its text blocks."""
    note_cache_control(block, notes)
    title, source = block.get("title"), block.get("source")
    named = [title] if isinstance(title, str) and title else []
    named += [f"({source})"] if isinstance(source, str) and source else []
    texts = [" ".join(["[search result:", *named]) + "]" if named else "[search result]"]
    for j, inner in enumerate(blocks(block.get("content") or [], f"{path}.content")):
        if inner.get("type") == "text":
            texts.append(text_of(inner, f"{path}.content[{j}]", notes))
        else:
            drop_block(inner, notes)
    return "\n".join(texts)


def drop_block(block: Mapping[str, Any], notes: Notes) -> None:
    kind = clip(str(block["type"]))  # the client's to name, and logged
    notes.add(f"content.{kind}", f"{kind} blocks have no OpenAI equivalent")


def tool_result(
    block: Mapping[str, Any], path: str, caps: ModelCapabilities, notes: Notes
) -> tuple[Part, list[Part]]:
    """The `tool` message, and the images a vision model gets after it."""
    call_id, parts = _result_parts(block, path, caps, notes)
    images = [p for p in parts if p["type"] == "image_url"]
    text = "\n".join(p["text"] if p["type"] == "text" else IMAGE_MOVED for p in parts)
    if block.get("is_error") is True:
        text = TOOL_ERROR_PREFIX + text
    return {"role": "tool", "tool_call_id": tool_id(call_id, caps), "content": text}, images


def result_as_text(
    block: Mapping[str, Any], path: str, caps: ModelCapabilities, notes: Notes
) -> list[Part]:
    """A tool result as user content parts, for a model without tools: a line
    naming the call, its text and its images in place."""
    call_id, parts = _result_parts(block, path, caps, notes)
    notes.add("content.tool_result", TOOLS_AS_TEXT)
    what = "error of" if block.get("is_error") is True else "result of"
    return [{"type": "text", "text": f"[{what} tool call {call_id}]"}, *parts]


def call_as_text(call_id: object, call: Part, notes: Notes) -> str:
    """A translated tool call as a line of an assistant's text, for a model without tools."""
    notes.add("content.tool_use", TOOLS_AS_TEXT)
    function = call["function"]
    return f"[tool call {call_id}: {function['name']} {function['arguments']}]"


def _result_parts(
    block: Mapping[str, Any], path: str, caps: ModelCapabilities, notes: Notes
) -> tuple[str, list[Part]]:
    note_cache_control(block, notes)
    call_id, inner = block.get("tool_use_id"), block.get("content", "")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequestError("must be a non-empty string", field=f"{path}.tool_use_id")
    parts: list[Part] = []
    for j, item in enumerate(blocks("" if inner is None else inner, f"{path}.content")):
        where, kind = f"{path}.content[{j}]", item.get("type")
        if kind == "image" and caps.tools and not caps.vision:
            notes.add("tool_result.image", "tool messages carry text only")
            parts.append({"type": "text", "text": IMAGE_OMITTED})
        else:
            parts += user_parts(item, where, caps, notes)
    return call_id, parts
