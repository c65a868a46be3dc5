"""An error body the daemon wrote, given the request's id where its dialect has a place for it."""

from __future__ import annotations

import json

import pytest

from coderouterd.wire.errors import reenvelope, with_request_id


def test_an_anthropic_envelope_gets_the_request_id_after_its_error() -> None:
    body = reenvelope("anthropic", 404, b"404 page not found")
    stamped = with_request_id("anthropic", body, "req_1")
    assert list(json.loads(stamped)) == ["type", "error", "request_id"]
    assert json.loads(stamped) == {
        "type": "error",
        "error": {"type": "not_found_error", "message": "404 page not found"},
        "request_id": "req_1",
    }


def test_an_openai_envelope_has_no_place_for_it() -> None:
    body = reenvelope("openai", 404, b"404 page not found")
    assert with_request_id("openai", body, "req_1") == body


@pytest.mark.parametrize(
    "body",
    [b"404 page not found", b"[1, 2]", b'{"error": {"message": "no"}}', b'"error"'],
)
def test_a_body_that_is_no_anthropic_envelope_stays_as_it_is(body: bytes) -> None:
    assert with_request_id("anthropic", body, "req_1") == body
