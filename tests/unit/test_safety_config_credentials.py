"""Credentials live in the environment (`api_key_env`), never in a config
file that is copied, committed and shown: `extra_headers` refuses every
header that carries one, and `base_url` problems never quote the URL."""

from __future__ import annotations

import pytest

from tests.unit.config.test_load import problems_of, provider_with

CREDENTIALS = [
    "X-Api-Key: sk-0123456789",
    "Authorization: Bearer sk-0123456789",
    # RFC 9110's credential header for a proxy.
    "Proxy-Authorization: Basic dXNlcjpodW50ZXIy",
    # Azure OpenAI's key header.
    "api-key: 0123456789abcdef0123456789abcdef",
    # Google's, for its OpenAI-compatible endpoint.
    "x-goog-api-key: AIzaSy-0123456789",
    "Cookie: session=0123456789",
    "x-auth-token: tok-0123456789",
    "X-Vault-Token: hvs.0123456789",
    "x-api-secret: sec-0123456789",
    "ocp-apim-subscription-key: 0123456789abcdef",
    "apikey: 0123456789abcdef",
    "x-portkey-api-key: pk-0123456789",
]
OTHERS = [
    "HTTP-Referer: https://example.org",
    "X-Title: coderouterd",
    "OpenAI-Organization: org-1",
    "anthropic-beta: tools-2024-04-04",
    # "key" inside a word names no credential (Portkey's gateway).
    "x-portkey-provider: openai",
    "x-monkeys: three",
]


def test_exactly_the_extra_headers_that_carry_a_credential_are_refused() -> None:
    lines = [f"  {h}" for h in CREDENTIALS + OTHERS]
    problems = problems_of(provider_with("extra_headers:", *lines))
    refused = {p.path.rpartition("extra_headers.")[2] for p in problems}
    assert refused == {h.split(":")[0] for h in CREDENTIALS}
    for p in problems:
        assert p.message == "credentials belong in api_key_env, not in extra_headers"
    assert not any(h.split(": ", 1)[1] in str(problems) for h in CREDENTIALS)


@pytest.mark.parametrize("url", ["htps://me:hunter2-secret@proxy", "HTTPS://me:hunter2-secret@p"])
def test_a_base_urls_wrong_scheme_is_reported_once_without_the_url(url: str) -> None:
    text = provider_with().replace("http://127.0.0.1:11434/v1", url)
    [problem] = problems_of(text)
    assert (problem.path, problem.message) == (
        "providers[0].base_url",
        "must start with http:// or https://",
    )
    assert "hunter2" not in str(problem)
