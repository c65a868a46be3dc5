"""Token usage as the Anthropic wire reports it, and reading it from a whole body."""

from __future__ import annotations

import msgspec


class Usage(msgspec.Struct, kw_only=True):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None


class _WithUsage(msgspec.Struct):
    usage: Usage | None = None


_decoder = msgspec.json.Decoder(_WithUsage)


def usage_of_body(body: bytes) -> Usage | None:
    try:
        return _decoder.decode(body).usage
    except msgspec.DecodeError:
        return None
