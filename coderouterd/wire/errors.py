"""Reading the `error.type` of an Anthropic or OpenAI error body (pure)."""

from __future__ import annotations

import msgspec


class _ErrorDetail(msgspec.Struct):
    type: str | None = None


class _ErrorEnvelope(msgspec.Struct):
    error: _ErrorDetail | str | None = None


_error_decoder = msgspec.json.Decoder(_ErrorEnvelope)


def error_type_of(body: bytes) -> str | None:
    """The `error.type` of an error body, if it has one."""
    try:
        envelope = _error_decoder.decode(body)
    except msgspec.DecodeError:
        return None
    return envelope.error.type if isinstance(envelope.error, _ErrorDetail) else None
