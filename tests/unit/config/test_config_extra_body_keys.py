"""extra_body is sent as JSON, whose keys are strings: a key that is not one,
at any depth, is a problem at its line, not sent turned into a string the
user never wrote (`{1: true}` as `{"1": true}`)."""

from __future__ import annotations

import msgspec
import pytest

from coderouterd.config import load_config_text
from tests.unit.config.test_load import problems_of, provider_with


@pytest.mark.parametrize(
    ("lines", "line", "path", "kind"),
    [
        (
            ["extra_body: {chat_template_kwargs: {1: true}}"],
            5,
            "chat_template_kwargs",
            "an integer",
        ),
        (["extra_body:", "  a:", "    b: 1", "    1.5: x"], 8, "a", "a number"),
        (["extra_body:", "  a:", "    - {2024-01-01: x}"], 7, "a[0]", "a date"),
        (["extra_body:", "  a: {b: {c: {true: x}}}"], 6, "a.b.c", "a boolean"),
        (["extra_body:", "  a: [[{~: x}]]"], 6, "a[0][0]", "null"),
    ],
)
def test_a_key_that_is_not_a_string_is_a_problem_at_any_depth(
    lines: list[str], line: int, path: str, kind: str
) -> None:
    [problem] = problems_of(provider_with(*lines))
    assert (problem.line, problem.path) == (line, f"providers[0].extra_body.{path}")
    assert problem.message == f"cannot be sent as JSON: a key is {kind}, not a string"


def test_each_key_that_is_not_a_string_is_named() -> None:
    problems = problems_of(provider_with("extra_body:", "  a: {1: x}", "  b:", "    c: {2: y}"))
    assert [(p.line, p.path) for p in problems] == [
        (6, "providers[0].extra_body.a"),
        (8, "providers[0].extra_body.b.c"),
    ]


def test_quoted_keys_are_sent_as_written() -> None:
    text = provider_with("extra_body: {chat_template_kwargs: {'1': true, 'x': [{'2': 3}]}}")
    extra = load_config_text(text, file="c.yaml").providers[0].extra_body
    assert msgspec.json.encode(extra) == b'{"chat_template_kwargs":{"1":true,"x":[{"2":3}]}}'
