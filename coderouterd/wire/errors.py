"""Error envelopes of both dialects: reading them and writing them (pure).

Anthropic: {"type": "error", "error": {"type", "message"}, "request_id"}.
OpenAI:    {"error": {"message", "type", "param", "code"}}.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

_encode = msgspec.json.Encoder().encode

# Error types by status, as each API uses them.
ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}
# Of Anthropic's types, those that put the failure on the server's side.
_ANTHROPIC_SERVER_TYPES = frozenset({"api_error", "overloaded_error", "timeout_error"})
_ANTHROPIC_CLIENT_TYPES = frozenset(ANTHROPIC_TYPES.values()) - _ANTHROPIC_SERVER_TYPES
OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


class _ErrorDetail(msgspec.Struct):
    type: str | None = None
    message: str | None = None


class _ErrorEnvelope(msgspec.Struct):
    error: _ErrorDetail | str | None = None
    # vLLM's error has no `error` object: {"object": "error", "message",
    # "type": "BadRequestError", "code": 400}. Any: a body's other top-level
    # fields may be of any type, and must not hide its `error`.
    message: Any = None
    type: Any = None


_error_decoder = msgspec.json.Decoder(_ErrorEnvelope)


def _detail(body: bytes) -> _ErrorDetail | None:
    try:
        envelope = _error_decoder.decode(body)
    # Nested past msgspec's depth limit: read as a body that is no JSON.
    except (msgspec.DecodeError, RecursionError):
        return None
    if isinstance(envelope.error, str):
        return _ErrorDetail(message=envelope.error)
    if envelope.error is None and isinstance(envelope.message, str):
        kind = envelope.type if isinstance(envelope.type, str) else None
        return _ErrorDetail(type=kind, message=envelope.message)
    return envelope.error


# What local servers say when a model does not fit: Ollama ("model requires
# more system memory", "out of memory"), llama.cpp ("failed to allocate",
# "CUDA out of memory", ggml_cuda_host_malloc), LM Studio ("insufficient
# memory"), CUDA and Metal in general ("out of memory", "OOM"). "OOM" only as
# a word: "room" and "zoom" are no memory pressure. A model that fails to
# load for another reason (a missing file) is not matched.
_MEMORY_PRESSURE = re.compile(
    rb"out of memory|insufficient memory|not enough memory|requires more system memory"
    rb"|failed to allocate|ggml_cuda_host_malloc|\boom\b",
    re.IGNORECASE,
)


def mentions_memory_pressure(body: bytes) -> bool:
    """Whether an error body (JSON of either dialect, or text) says the
    backend ran out of memory."""
    return _MEMORY_PRESSURE.search(body) is not None


def error_message_of(body: bytes) -> str | None:
    """The `error.message` of an error body of either dialect, if it has one."""
    detail = _detail(body)
    return detail.message if detail else None


def error_type_of(body: bytes) -> str | None:
    """The `error.type` of an error body of either dialect, if it has one."""
    detail = _detail(body)
    return detail.type if detail else None


def anthropic_error(
    status: int, message: str, *, error_type: str | None = None, **extra: Any
) -> dict[str, Any]:
    error = {"type": error_type or _anthropic_type(status), "message": message}
    request_id = extra.pop("request_id", None)
    error.update(extra)
    out: dict[str, Any] = {"type": "error", "error": error}
    if request_id is not None:
        out["request_id"] = request_id
    return out


def _anthropic_type(status: int, said: str | None = None) -> str:
    """The Anthropic `error.type` of an error of `status`, a backend having
    said `said`. Anthropic's types are a closed set its SDKs and Claude Code
    dispatch on, and name the status: a status Anthropic has a type for
    decides (an OpenAI backend types a bad key's 401 `invalid_request_error`
    and a spent quota `insufficient_quota`). Of another status, a type of
    Anthropic's that says the same side's fault is kept; else Anthropic
    keeps `api_error` for its own failures and has `invalid_request_error`
    stand for any 4xx it lists no type for (405, 409, 415, 422): a client's
    mistake is never reported as ours."""
    if status in ANTHROPIC_TYPES:
        return ANTHROPIC_TYPES[status]
    client_error = 400 <= status < 500
    if said in (_ANTHROPIC_CLIENT_TYPES if client_error else _ANTHROPIC_SERVER_TYPES):
        return said
    return "invalid_request_error" if client_error else "api_error"


def openai_error(
    status: int,
    message: str,
    *,
    error_type: str | None = None,
    param: str | None = None,
    code: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    default = "server_error" if status >= 500 else "invalid_request_error"
    fallback = OPENAI_TYPES.get(status, default)
    error = {"message": message, "type": error_type or fallback, "param": param, "code": code}
    error.update(extra)
    return {"error": error}


def error_body(dialect: str, status: int, message: str, **extra: Any) -> bytes:
    build = openai_error if dialect == "openai" else anthropic_error
    return _encode(build(status, message, **extra))


def reenvelope(dialect: str, status: int, body: bytes) -> bytes:
    """An upstream error body of either dialect, rewritten in `dialect`'s envelope."""
    detail = _detail(body) or _ErrorDetail()
    text = body.decode("utf-8", "replace")[:500]
    message = detail.message or text or f"upstream returned HTTP {status}"
    if dialect == "openai":
        return _encode(openai_error(status, message))
    kind = _anthropic_type(status, detail.type)
    return _encode(anthropic_error(status, message, error_type=kind))


def with_request_id(dialect: str, body: bytes, request_id: str) -> bytes:
    """An error body the daemon wrote in `dialect`'s envelope, with the
    request's id as Anthropic's own errors have it; OpenAI's envelope has no
    place for one, and a body that is no Anthropic envelope stays as it is."""
    if dialect == "openai":
        return body
    try:
        envelope = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return body
    if not isinstance(envelope, dict) or envelope.get("type") != "error":
        return body
    return _encode({**envelope, "request_id": request_id})
