"""What the auto router reads of a request (routing/auto.py says why each).

The history is read from its end (RequestBody's message bounds: the last
100 messages) until the user's latest own message: a user message holding
tool results, and an OpenAI `role: tool` message, belong to the agent's
loop and are passed over, but their images count. Without such a message
among them, the text is empty. Either dialect: Anthropic content blocks
and OpenAI content parts both carry `type` and `text`.
"""

from __future__ import annotations

import msgspec

from coderouterd.ingress.body import RequestBody, newest_first
from coderouterd.routing.auto import Turn
from coderouterd.translate.estimate import estimate_prompt_tokens

_IMAGE_TYPES = frozenset({"image", "image_url", "input_image"})


class _Inner(msgspec.Struct):
    type: str = ""


class _Part(msgspec.Struct):
    type: str = ""
    text: str | None = None
    # A tool result's own content (Anthropic).
    content: list[_Inner] | str | None = None


class _Message(msgspec.Struct):
    role: str = ""
    content: list[_Part] | str | None = None


_message = msgspec.json.Decoder(_Message)


def read_turn(body: RequestBody) -> Turn:
    text, image = "", False
    for raw in newest_first(body):
        try:
            message = _message.decode(raw)
        except (msgspec.DecodeError, RecursionError):
            # Not for the router to refuse: the provider's codec says what is wrong.
            continue
        if message.role not in ("user", "tool"):
            continue
        content = message.content
        parts = content if isinstance(content, list) else []
        image = image or any(_has_image(p) for p in parts)
        if message.role == "tool" or any(p.type == "tool_result" for p in parts):
            continue
        if isinstance(content, str):
            text = content
        else:
            text = "\n".join(p.text for p in parts if p.text is not None)
        break
    return Turn(text, image, body.model, estimate_prompt_tokens(body.fields, body.media))


def _has_image(part: _Part) -> bool:
    if part.type in _IMAGE_TYPES:
        return True
    inner = part.content
    return isinstance(inner, list) and any(i.type in _IMAGE_TYPES for i in inner)
