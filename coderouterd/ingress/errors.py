"""Our errors as HTTP responses in the client's dialect."""

from __future__ import annotations

import math
from typing import Any

from aiohttp import web

from coderouterd.errors import CoderouterError, NoProviderAvailableError, RequestError
from coderouterd.wire.errors import error_body


def status_of(exc: CoderouterError) -> int:
    if isinstance(exc, RequestError | NoProviderAvailableError):
        return exc.status
    return 500


def error_response(dialect: str, exc: CoderouterError, request_id: str) -> web.Response:
    status = status_of(exc)
    extra: dict[str, Any] = {}
    message = str(exc)
    if isinstance(exc, RequestError):
        message = f"{exc.field}: {exc.message}" if exc.field else exc.message
        if exc.field:
            extra["param" if dialect == "openai" else "field"] = exc.field
    if isinstance(exc, NoProviderAvailableError):
        extra["attempts"] = [
            {"provider": a.provider, "reason": a.reason, "status": a.status} for a in exc.attempts
        ]
    if dialect == "anthropic":
        extra["request_id"] = request_id
    headers: dict[str, str] = {}
    if isinstance(exc, NoProviderAvailableError) and (wait := exc.retry_after_s) is not None:
        # Every provider is rate-limited: the SDKs wait this long before retrying.
        headers["retry-after"] = str(math.ceil(wait))
    return web.Response(
        status=status,
        body=error_body(dialect, status, message, **extra),
        content_type="application/json",
        headers=headers,
    )
