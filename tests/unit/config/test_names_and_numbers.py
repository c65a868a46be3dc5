"""Names that hold a line break and numbers that are not numbers: refused at
load, each with its line and field, never loaded to fail on every request."""

from __future__ import annotations

import pytest

from coderouterd.config import load_config_text
from tests.unit.config.test_load import MINIMAL, problems_of, provider_with

NAME_RULE = r"'^[A-Za-z0-9][A-Za-z0-9._:-]*\Z'"


@pytest.mark.parametrize(
    ("text", "line", "path", "name"),
    [
        # A stray escape, or a `|` block whose last line break is kept: the
        # name would be sent in the x-coderouter-provider header, which
        # cannot carry it, and every answer would become a 500.
        (MINIMAL.replace("name: local", 'name: "local\\n"'), 2, "providers[0].name", "local"),
        (MINIMAL.replace("name: local", "name: |\n      local"), 2, "providers[0].name", "local"),
        (MINIMAL.replace("name: main", 'name: "main\\n"'), 6, "profiles[0].name", "main"),
        (MINIMAL + 'mode_aliases: {"fast\\n": main}\n', 8, "mode_aliases['fast\\n']", "fast"),
    ],
    ids=["provider", "provider_block_scalar", "profile", "mode_alias"],
)
def test_a_name_ending_in_a_line_break_is_refused(
    text: str, line: int, path: str, name: str
) -> None:
    named = [p for p in problems_of(text) if p.path == path and p.message.startswith("must match")]
    got = repr(name + "\n")
    assert [(p.line, p.message) for p in named] == [(line, f"must match {NAME_RULE} (got {got})")]


def test_a_problem_naming_a_name_with_a_line_break_shows_it_escaped() -> None:
    text = MINIMAL.replace("name: main", 'name: "main\\n"') + "default_profile: main\n"
    messages = [p.message for p in problems_of(text) if p.path == "default_profile"]
    assert messages == ["unknown profile 'main' (did you mean 'main\\n'?)"]


@pytest.mark.parametrize("env", ['"KEY\\n"', "|\n      KEY"], ids=["escape", "block_scalar"])
def test_an_api_key_env_ending_in_a_line_break_is_refused(env: str) -> None:
    [problem] = problems_of(provider_with(f"api_key_env: {env}"))
    assert (problem.line, problem.path) == (5, "providers[0].api_key_env")
    assert problem.message.startswith("must be the name of an environment variable")


def test_names_without_a_line_break_still_load() -> None:
    text = provider_with("api_key_env: OLLAMA_KEY") + "mode_aliases: {fast: main}\n"
    config = load_config_text(text, file="c.yaml")
    assert (config.providers[0].api_key_env, config.mode_aliases) == (
        "OLLAMA_KEY",
        {"fast": "main"},
    )


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ("{temperature: .nan}", "providers[0].extra_body.temperature"),
        ("{options: {top_p: .NaN}}", "providers[0].extra_body.options.top_p"),
        ("{stop_after: [1, .nan]}", "providers[0].extra_body.stop_after[1]"),
    ],
)
def test_a_nan_in_extra_body_is_refused(body: str, path: str) -> None:
    """msgspec would send it as null: another setting than the one written."""
    [problem] = problems_of(provider_with(f"extra_body: {body}"))
    assert (problem.line, problem.path, problem.message) == (5, path, "must be a finite number")


@pytest.mark.parametrize(
    ("line", "path", "message"),
    [
        ("timeouts: {connect_s: .nan}", "providers[0].timeouts.connect_s", "must be > 0 (got nan)"),
        (
            "cost: {cache_read_discount: .inf}",
            "providers[0].cost.cache_read_discount",
            "must be <= 1 (got inf)",
        ),
    ],
)
def test_a_number_its_bound_refuses_is_named_once(line: str, path: str, message: str) -> None:
    [problem] = problems_of(provider_with(line))
    assert (problem.line, problem.path, problem.message) == (5, path, message)
