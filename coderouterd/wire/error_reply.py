"""The daemon's own errors as the body a client reads, and any error body
as the error event of a stream (pure).

A stream whose headers went out with keep-alive pings can only carry its
error in-stream: it carries the same body the client would have read as a
plain response (an OpenAI client trims its history on `code:
context_length_exceeded`; a dashboard reads the all-failed `attempts`),
framed as the client's dialect frames an error event.
"""

from __future__ import annotations

from typing import Any

import msgspec

from coderouterd.errors import CoderouterError, NoProviderAvailableError, RequestError
from coderouterd.wire.errors import error_body, reenvelope, with_request_id
from coderouterd.wire.sse import encode_event

_object = msgspec.json.Decoder(dict[str, Any])


def error_status(exc: CoderouterError) -> int:
    """The HTTP status of one of our errors."""
    if isinstance(exc, RequestError | NoProviderAvailableError):
        return exc.status
    return 500


def error_reply(dialect: str, exc: CoderouterError, request_id: str) -> bytes:
    """One of our errors as the body of its error response in `dialect`:
    the field a request error names (OpenAI's `param`), the attempts of an
    all-failed one, and on Anthropic's envelope the request's id."""
    extra: dict[str, Any] = {}
    message = str(exc)
    if isinstance(exc, RequestError):
        message = f"{exc.field}: {exc.message}" if exc.field else exc.message
        if exc.field:
            extra["param" if dialect == "openai" else "field"] = exc.field
        if exc.code is not None:
            if dialect == "openai":
                extra["code"] = exc.code
            else:
                extra["details"] = {"error_code": exc.code}
    if isinstance(exc, NoProviderAvailableError):
        extra["attempts"] = [
            {"provider": a.provider, "reason": a.reason, "status": a.status} for a in exc.attempts
        ]
    if dialect == "anthropic":
        extra["request_id"] = request_id
    return error_body(dialect, error_status(exc), message, **extra)


def as_envelope(dialect: str, status: int, body: bytes, request_id: str) -> bytes:
    """An error response's body as an error event can carry it: as it is when
    it is an error envelope (`error` an object), else put in `dialect`'s
    envelope. A provider's JSON answer of another shape (`{"detail": …}`)
    goes to a plain response as it is, but a stream's reader looks for the
    `error` object."""
    try:
        decoded = _object.decode(body)
    except (msgspec.DecodeError, RecursionError):
        decoded = {}
    if isinstance(decoded.get("error"), dict):
        return body
    return with_request_id(dialect, reenvelope(dialect, status, body), request_id)


def error_event(dialect: str, body: bytes) -> bytes:
    """An error body as the error event of a stream in `dialect`: an `error`
    event in Anthropic's, a bare data frame in OpenAI's (its SDK raises on
    a chunk that holds an `error`). A body on several lines (a provider's
    indented JSON) goes as several data lines, which a reader joins."""
    if dialect == "anthropic":
        return encode_event("error", body)
    lines = body.splitlines() or [b""]
    return b"".join(b"data: " + line + b"\n" for line in lines) + b"\n"
