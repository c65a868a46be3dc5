"""One table from our errors to HTTP status and the client's error envelope."""

from __future__ import annotations

import msgspec
from aiohttp import web

from coderouterd.errors import CoderouterError, NoProviderAvailableError, RequestError

_encode = msgspec.json.Encoder().encode

# Anthropic error types by status, as the Messages API uses them.
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def status_of(exc: CoderouterError) -> int:
    if isinstance(exc, RequestError):
        return exc.status
    if isinstance(exc, NoProviderAvailableError):
        return exc.status
    return 500


def anthropic_error_body(status: int, message: str, request_id: str, **extra: object) -> bytes:
    error: dict[str, object] = {
        "type": _ANTHROPIC_TYPES.get(status, "api_error"),
        "message": message,
    }
    error.update(extra)
    return _encode({"type": "error", "error": error, "request_id": request_id})


def anthropic_error_response(exc: CoderouterError, request_id: str) -> web.Response:
    status = status_of(exc)
    extra: dict[str, object] = {}
    message = str(exc)
    if isinstance(exc, RequestError):
        message = exc.message
        if exc.field:
            extra["field"] = exc.field
            message = f"{exc.field}: {exc.message}"
    if isinstance(exc, NoProviderAvailableError):
        extra["attempts"] = [
            {"provider": a.provider, "reason": a.reason, "status": a.status} for a in exc.attempts
        ]
    return web.Response(
        status=status,
        body=anthropic_error_body(status, message, request_id, **extra),
        content_type="application/json",
    )
