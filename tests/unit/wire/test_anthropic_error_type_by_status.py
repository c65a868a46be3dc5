"""The Anthropic envelope's `error.type` for a status it lists no type for:
Anthropic keeps `api_error` for its own failures and has
`invalid_request_error` stand for any 4xx it lists no type for, so a
client's mistake is never reported as the daemon's failure."""

from __future__ import annotations

import pytest

from coderouterd.wire.errors import anthropic_error, reenvelope


@pytest.mark.parametrize("status", [405, 409, 415, 422, 499])
def test_an_unlisted_client_error_status_is_typed_invalid_request_error(status: int) -> None:
    assert anthropic_error(status, "x")["error"]["type"] == "invalid_request_error"
    # A provider's plain-text error, put into the client's envelope.
    assert b'"type":"invalid_request_error"' in reenvelope("anthropic", status, b"Conflict")
