"""Credentials and client-chosen text kept out of what is logged, shown and stored."""

from __future__ import annotations

import base64

import pytest

from coderouterd.routing.verdict import Verdict, classify_status
from coderouterd.scrub import clip, masked_url, redact, sent_secrets

KEY = "fake-test-key-not-a-secret"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:pw-secret@proxy:8443/v1", "https://user:***@proxy:8443/v1"),
        ("http://user:p%40ss@h", "http://user:***@h"),
        ("https://ghp_token0123456789@host/v1", "https://***@host/v1"),
        # An "@" in the path is no user.
        ("https://host/v1/a@b", "https://host/v1/a@b"),
        ("https://api.anthropic.com", "https://api.anthropic.com"),
        ("http://127.0.0.1:11434/v1", "http://127.0.0.1:11434/v1"),
    ],
)
def test_a_url_is_shown_without_its_password(url: str, shown: str) -> None:
    assert masked_url(url) == shown


def test_the_secrets_a_request_was_sent_with_are_its_credential_headers_and_url_password() -> None:
    headers = {
        "content-type": "application/json",
        "anthropic-version": "2023-06-01",
        "authorization": f"Bearer {KEY}",
    }
    found = sent_secrets(headers, "http://proxyuser:pw-0123456789@host:1/v1")
    basic = base64.b64encode(b"proxyuser:pw-0123456789").decode()
    assert set(found) == {f"Bearer {KEY}", KEY, "pw-0123456789", basic}
    # Longest first: a header value goes whole before the key inside it.
    assert found.index(f"Bearer {KEY}") < found.index(KEY)


def test_a_placeholder_key_is_no_secret_to_redact() -> None:
    assert sent_secrets({"x-api-key": "ollama"}, "http://h") == []


def test_redact_replaces_every_secret_wherever_it_is_quoted() -> None:
    said = f'{{"message": "headers: authorization: Bearer {KEY}; again {KEY}"}}'.encode()
    out = redact(said, sent_secrets({"authorization": f"Bearer {KEY}"}, "http://h"))
    assert out == b'{"message": "headers: authorization: [redacted]; again [redacted]"}'


def test_clip_keeps_a_short_name_and_cuts_a_long_one_saying_by_how_much() -> None:
    assert clip("claude-sonnet-4") == "claude-sonnet-4"
    assert clip(None) is None
    assert clip("M" * 300) == "M" * 256 + "... (44 more characters)"
    assert clip("x" * 20, 10) == "x" * 10 + "... (10 more characters)"


@pytest.mark.parametrize("status", [300, 301, 302, 303, 304, 307, 308])
def test_a_redirect_is_the_providers_failure_and_the_next_one_is_tried(status: int) -> None:
    assert classify_status(status) is Verdict.NEXT
