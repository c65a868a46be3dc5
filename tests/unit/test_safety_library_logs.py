"""What aiohttp logs of a request head it refused names no header's value."""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import HttpProcessingError, InvalidHeader, LineTooLong
from structlog.testing import capture_logs

CLIENT_KEY = "fake-client-key-do-not-log"


def logged_by_aiohttp(exc: BaseException) -> list[dict[str, object]]:
    """The lines written for aiohttp's server logging `exc` as it does
    (web_protocol.RequestHandler.handle_error)."""
    with capture_logs() as logs:
        try:
            raise exc
        except type(exc):
            logging.getLogger("aiohttp.server").exception(
                "Error handling request from %s", "127.0.0.1"
            )
    return [e for e in logs if e["event"] == "library.log"]


def test_only_a_refused_request_head_is_logged_without_its_message_and_traceback() -> None:
    for exc in (
        LineTooLong(b"Bearer " + CLIENT_KEY.encode() + b"J" * 9000, 8190),
        InvalidHeader(b"x-api-key: " + CLIENT_KEY.encode() + b"\x01"),
    ):
        [line] = logged_by_aiohttp(exc)
        assert line["status"] == 400
        assert line["error"] == type(exc).__name__
        assert line["message"] == "Error handling request from 127.0.0.1"
        assert "exc_info" not in line
        assert CLIENT_KEY not in repr(line)
    # A handler's error (a bug of ours) keeps its traceback, as does another
    # library's HTTP error.
    [handler] = logged_by_aiohttp(RuntimeError("a bug of ours"))
    assert "exc_info" in handler and "error" not in handler
    with capture_logs() as logs:
        try:
            raise HttpProcessingError(code=502, message="bad gateway")
        except HttpProcessingError:
            logging.getLogger("asyncio").exception("something else")
    [other] = [e for e in logs if e["event"] == "library.log"]
    assert "exc_info" in other
