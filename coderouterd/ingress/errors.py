"""Our errors as HTTP responses in the client's dialect."""

from __future__ import annotations

import math

from aiohttp import web

from coderouterd.errors import CoderouterError, NoProviderAvailableError
from coderouterd.wire.error_reply import error_reply, error_status

status_of = error_status


def error_response(dialect: str, exc: CoderouterError, request_id: str) -> web.Response:
    headers: dict[str, str] = {}
    if isinstance(exc, NoProviderAvailableError) and (wait := exc.retry_after_s) is not None:
        # Every provider is rate-limited: the SDKs wait this long before retrying.
        headers["retry-after"] = str(math.ceil(wait))
    return web.Response(
        status=error_status(exc),
        body=error_reply(dialect, exc, request_id),
        content_type="application/json",
        headers=headers,
    )
