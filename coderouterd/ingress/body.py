"""Decode only the top-level keys a request needs; leave the rest as raw JSON (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import msgspec

from coderouterd.errors import InvalidRequestError

T = TypeVar("T")

_top = msgspec.json.Decoder(dict[str, msgspec.Raw])
_str = msgspec.json.Decoder(str)
_bool = msgspec.json.Decoder(bool)
_OPEN_BRACKET = ord("[")


@dataclass(frozen=True, slots=True)
class RequestBody:
    fields: dict[str, msgspec.Raw]
    model: str | None
    stream: bool
    profile: str | None


def parse_body(body: bytes) -> RequestBody:
    """Check the shape of a Messages or Chat Completions request; pull out model,
    stream and profile. Both dialects agree on these four keys.

    `profile` is removed from the fields: it is ours, not the upstream's.
    """
    if not body.strip():
        raise InvalidRequestError("request body is empty; expected a JSON object", field="body")
    try:
        fields = _top.decode(body)
    except msgspec.DecodeError as exc:
        raise InvalidRequestError(f"body is not a JSON object ({exc})", field="body") from exc
    model = _optional(fields, "model", _str, "a string")
    stream = _optional(fields, "stream", _bool, "a boolean") or False
    profile = _optional(fields, "profile", _str, "a string")
    fields.pop("profile", None)
    if "messages" not in fields:
        raise InvalidRequestError("field required", field="messages")
    # A full decode of the history would cost as much as the rest of the request;
    # its first byte is enough to tell an array.
    if memoryview(fields["messages"])[0] != _OPEN_BRACKET:
        raise InvalidRequestError("must be an array", field="messages")
    return RequestBody(fields, model, stream, profile)


def _optional(
    fields: dict[str, msgspec.Raw], name: str, decoder: msgspec.json.Decoder[T], what: str
) -> T | None:
    raw = fields.get(name)
    if raw is None:
        return None
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise InvalidRequestError(f"must be {what}", field=name) from exc
