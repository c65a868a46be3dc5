"""Retry-After as upstreams send it."""

from __future__ import annotations

import email.utils

import pytest

from coderouterd.wire.retry import retry_after_s

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": " 2.5 "}, 2.5),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),  # OpenAI's, the finer
        ({"retry-after-ms": "soon", "retry-after": "9"}, 9.0),
        ({"retry-after": email.utils.formatdate(NOW + 30, usegmt=True)}, 30.0),
        ({"retry-after": "999999999"}, 86_400.0),  # a day at most
        ({"retry-after": "-3"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "tomorrow"}, None),
        ({}, None),
    ],
)
def test_the_wait_an_answer_asks_for(headers: dict[str, str], wait: float | None) -> None:
    assert retry_after_s(headers, NOW) == wait
