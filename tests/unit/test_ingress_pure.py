"""Pure helpers of the ingress: request ids and body parsing."""

from __future__ import annotations

import pytest

from coderouterd.errors import InvalidRequestError
from coderouterd.ingress.body import parse_body
from coderouterd.ingress.middleware import RequestIds, request_id_of


@pytest.mark.parametrize(
    ("header", "kept"),
    [
        ("abc-123", True),
        ("a" * 128, True),
        ("a" * 129, False),
        ("has space", False),
        ("", False),
        (None, False),
        ("x\ny", False),
    ],
)
def test_request_id_of(header: str | None, kept: bool) -> None:
    rid = request_id_of(header)
    assert (rid == header) is kept
    if not kept:
        assert rid.startswith("req_") and len(rid) == 28


def test_profile_field_is_removed_and_others_kept() -> None:
    parsed = parse_body(b'{"model":"m","messages":[{}],"profile":"p","stream":true,"x":1}')
    assert (parsed.model, parsed.stream, parsed.profile) == ("m", True, "p")
    assert list(parsed.fields) == ["model", "messages", "stream", "x"]


def test_model_is_optional() -> None:
    assert parse_body(b'{"messages":[{}]}').model is None


@pytest.mark.parametrize("body", [b'{"messages": null}', b'{"messages": "hi"}'])
def test_messages_must_be_an_array(body: bytes) -> None:
    with pytest.raises(InvalidRequestError) as info:
        parse_body(body)
    assert info.value.field == "messages"


def test_generated_request_ids_differ() -> None:
    ids = {request_id_of(None) for _ in range(1000)}
    assert len(ids) == 1000


def test_a_client_id_is_kept_once_among_recent_requests() -> None:
    ids = RequestIds(remember=2)
    assert ids.assign("a") == "a"
    again = ids.assign("a")
    assert again != "a" and again.startswith("req_")
    assert ids.assign("b") == "b"
    assert ids.assign("c") == "c"
    # "a" was forgotten: only recent ids are checked.
    assert ids.assign("a") == "a"
    assert ids.assign("bad id").startswith("req_")
