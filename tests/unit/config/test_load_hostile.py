"""Loading YAML nobody meant to write: every oddity is a problem with its line, never a crash."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coderouterd.config import default_config_path, load_config_text
from coderouterd.config.paths import named_config_path
from coderouterd.config.yaml_read import MAX_DEPTH, MAX_VALUES
from coderouterd.errors import ConfigError
from coderouterd.translate.capabilities import load_registry
from tests.unit.config.test_load import MINIMAL, problems_of, provider_with


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    ("text", "line", "path", "fragment"),
    [
        (MINIMAL + "? {a: 1}\n: x\n", 8, "", "keys must be strings, got a mapping"),
        (provider_with("? {a: 1}", ": x"), 5, "providers[0]", "keys must be strings"),
        (
            provider_with("extra_headers: {? {a: 1} : x}"),
            5,
            "providers[0].extra_headers",
            "got a mapping",
        ),
        (
            provider_with("extra_body: {? {a: 1} : x}"),
            5,
            "providers[0].extra_body",
            "got a mapping",
        ),
        (MINIMAL + "mode_aliases: {? {a: 1} : main}\n", 8, "mode_aliases", "got a mapping"),
    ],
)
def test_a_mapping_or_list_used_as_a_key_is_a_problem_at_its_line(
    text: str, line: int, path: str, fragment: str
) -> None:
    [problem] = problems_of(text)
    assert problem.line == line
    assert problem.path.startswith(path)
    assert fragment in problem.message


@pytest.mark.parametrize(
    ("extra", "line", "fragment"),
    [
        # A scalar the constructor cannot convert used to escape as ValueError,
        # IndexError or KeyError with no line at all.
        ("a: 2024-02-30", 9, "not a valid timestamp"),
        ("a: !!int abc", 9, "not a valid int"),
        ("a: !!int 0x", 9, "not a valid int"),
        ("a: !!float .", 9, "not a valid float"),
        ("a: !!bool maybe", 9, "not a valid bool"),
        ("a: !!omap x", 9, "not a valid omap"),
        # The scanner's own ValueError, from chr(), in a quoted scalar.
        ('a: "\\U00110000"', 9, "chr()"),
        # The reader checks every character first, and says where only by position.
        ("a: b\x00c", 9, "unacceptable character #x0000"),
        ("a: b\x7fc", 9, "unacceptable character #x007f"),
        ("a: b\x1bc", 9, "unacceptable character #x001b"),
    ],
)
def test_what_ruamel_cannot_read_is_one_problem_at_its_line(
    extra: str, line: int, fragment: str
) -> None:
    [problem] = problems_of(MINIMAL + "extra:\n  " + extra + "\n")
    assert problem.line == line, problem
    assert fragment in problem.message


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (MINIMAL + "extra: " + nested(2000) + "\n", 8),
        (provider_with("extra_body: {a: " + nested(MAX_DEPTH) + "}"), 5),
        # An alias counts at the depth of what it names.
        (f"deep: &d {nested(MAX_DEPTH - 2)}\n" + MINIMAL + "extra: [[[*d]]]\n", 9),
    ],
)
def test_nesting_past_the_limit_is_one_problem_not_a_recursion_error(text: str, line: int) -> None:
    [problem] = problems_of(text)
    assert problem.line == line
    assert f"nested more than {MAX_DEPTH} levels deep" in problem.message


def test_nesting_up_to_the_limit_loads() -> None:
    # extra_body's mapping is the fourth level: the file's, providers, the provider, its own.
    at_limit = provider_with("extra_body: {a: " + nested(MAX_DEPTH - 4) + "}")
    assert load_config_text(at_limit, file="c.yaml").providers[0].extra_body["a"]
    [problem] = problems_of(provider_with("extra_body: {a: " + nested(MAX_DEPTH - 3) + "}"))
    assert problem.message.endswith(f"nested more than {MAX_DEPTH} levels deep")


def test_aliases_that_expand_past_the_limit_are_one_problem() -> None:
    # Each line doubles the one before: 2**40 values once expanded, from 40 short lines.
    lines = ["a0: &a0 [x, x]"] + [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]" for i in range(1, 40)]
    [problem] = problems_of("bomb:\n" + "".join(f"  {line}\n" for line in lines) + MINIMAL)
    assert f"more than {MAX_VALUES} values" in problem.message
    assert problem.line is not None and problem.line < 40


@pytest.mark.parametrize(
    ("header", "fragment"),
    [
        ('x-team: "a\\nb"', "cannot carry"),
        ('x-team: "a\\rb"', "cannot carry"),
        ('x-team: "a\\x00b"', "cannot carry"),
        ('x-team: "a\\x7fb"', "cannot carry"),
        ('x-team: "a\\ud800b"', "cannot carry"),
        ("'x team': v", "'x team' is not a header name"),
        ("'x:team': v", "is not a header name"),
        ("'': v", "is not a header name"),
        ("'x-tëam': v", "is not a header name"),
    ],
)
def test_only_an_extra_header_that_cannot_be_sent_is_a_problem(header: str, fragment: str) -> None:
    # Around it, headers HTTP allows: a token name, a value with a tab, spaces or text past ASCII.
    headers = f"{{X-Team_1.v2: \"a\\tb c\", {header}, x-tag: 'café ~!#'}}"
    [problem] = problems_of(provider_with(f"extra_headers: {headers}"))
    assert problem.line == 5
    assert problem.path.startswith("providers[0].extra_headers")
    assert "X-Team_1" not in problem.path and "x-tag" not in problem.path
    assert fragment in problem.message


def test_a_header_value_is_not_echoed_in_its_problem() -> None:
    problems = problems_of(provider_with('extra_headers: {x-token: "sk-secret\\n"}'))
    assert problems
    assert all("sk-secret" not in str(p) for p in problems)


# (base_url, a fragment of its problem, or None for one that must load)
BASE_URLS = [
    ("http://127.0.0.1:99999/v1", "port must be a number from 1 to 65535"),
    ("http://127.0.0.1:0/v1", "port must be a number from 1 to 65535"),
    ("http://localhost:abc/v1", "port must be a number from 1 to 65535"),
    ("'http://exa mple'", "must not contain spaces or control characters"),
    ('"http://host\\t/v1"', "must not contain spaces or control characters"),
    ("http://:80", "has no host"),
    ("http:///v1", "has no host"),
    ("http://exa%20mple/v1", "has no valid host name"),
    ("http://[::1/v1", "is not a valid URL"),
    ("http://[::1]x/v1", "is not a valid URL"),
    ("http://127.0.0.1:8080/v1?key=x", "must not hold a query (?) or a fragment (#)"),
    ("'http://127.0.0.1:8080/v1#top'", "must not hold a query (?) or a fragment (#)"),
    # Another scheme is its one problem, not one more for the space.
    ("'ftp://exa mple'", "must start with http:// or https://"),
    # Basic auth goes latin-1: a € (raw or percent-encoded) can never be sent.
    ("http://user:pa€ss@127.0.0.1/v1", "past latin-1"),
    ("http://user:pa%E2%82%ACss@127.0.0.1/v1", "past latin-1"),
    ("http://us€r@127.0.0.1/v1", "past latin-1"),
    ("http://127.0.0.1:11434/v1", None),
    ("https://api.anthropic.com", None),
    ("http://[::1]:8080/v1", None),
    ("http://ollama_box.local:11434", None),
    ("http://host:65535/", None),
    ("http://bücher.example/v1", None),
    ("http://user:pässwort@127.0.0.1/v1", None),
]


def test_exactly_the_base_urls_without_a_usable_host_or_port_are_problems() -> None:
    blocks = [
        f"  - name: p{i}\n    base_url: {url}\n    model: m\n"
        for i, (url, _) in enumerate(BASE_URLS)
    ]
    text = "providers:\n" + "".join(blocks) + "profiles:\n  - {name: main, providers: [p0]}\n"
    found = {p.path: (p.line, p.message) for p in problems_of(text)}
    expected = {
        f"providers[{i}].base_url": (3 * i + 3, fragment)
        for i, (_, fragment) in enumerate(BASE_URLS)
        if fragment is not None
    }
    assert found.keys() == expected.keys()
    for path, (line, fragment) in expected.items():
        assert found[path][0] == line, path
        assert fragment in found[path][1], (path, found[path])


def test_a_base_url_problem_does_not_echo_a_password() -> None:
    [problem] = problems_of(MINIMAL.replace("127.0.0.1:11434", "user:hunter2@127.0.0.1:99999"))
    assert "hunter2" not in str(problem)


@pytest.mark.parametrize(
    ("line", "path"),
    [
        ("timeouts: {total_s: .inf}", "providers[0].timeouts.total_s"),
        ("timeouts: {first_byte_s: 1e400}", "providers[0].timeouts.first_byte_s"),
        ("cost: {monthly_budget_usd: .Inf}", "providers[0].cost.monthly_budget_usd"),
        ("extra_body: {options: {num_ctx: -.inf}}", "providers[0].extra_body.options.num_ctx"),
    ],
)
def test_a_number_that_is_not_finite_is_a_problem(line: str, path: str) -> None:
    [problem] = problems_of(provider_with(line))
    assert (problem.line, problem.path, problem.message) == (5, path, "must be a finite number")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("{a: !!set {x}}", "cannot be sent as JSON"),
        ("{a: {null: x}}", "cannot be sent as JSON"),
        ("{a: {? [b] : x}}", "cannot be sent as JSON"),
        ("{a: {? {b: 1} : x}}", "cannot be sent as JSON"),
    ],
)
def test_an_extra_body_value_that_is_not_json_is_a_problem(body: str, fragment: str) -> None:
    [problem] = problems_of(provider_with(f"extra_body: {body}"))
    assert (problem.line, problem.path) == (5, "providers[0].extra_body.a")
    assert fragment in problem.message


def test_a_capabilities_file_that_is_not_utf8_is_a_problem_at_its_line(tmp_path: Path) -> None:
    caps = tmp_path / "caps.yaml"
    caps.write_bytes(b'- kind: "*"\n  model: "qwen*"\n  vision: "caf\xe9"\n')
    with pytest.raises(ConfigError) as caught:
        load_registry(str(caps))
    [problem] = caught.value.problems
    assert (problem.file, problem.line) == (str(caps), 3)
    assert "not valid UTF-8" in problem.message


def test_an_empty_coderouterd_config_names_no_file() -> None:
    home = Path("/home/u")
    assert named_config_path({"CODEROUTERD_CONFIG": ""}, home) is None
    assert named_config_path({}, home) is None
    assert named_config_path({"CODEROUTERD_CONFIG": "~/r.yaml"}, home) == home / "r.yaml"
    empty = default_config_path({"CODEROUTERD_CONFIG": ""}, "linux", home)
    assert empty == default_config_path({}, "linux", home)


# Pieces of YAML that have made ruamel, the walker or msgspec raise something
# other than a ConfigError, or a problem without a line.
FRAGMENTS = [
    "providers:", "profiles:", "  - ", "name: a", "base_url: http://x", "model: m", "? ", ": ",
    "{", "}", "[", "]", ",", "&a ", "*a", "!!int ", "!!float ", "!!bool ", "!!timestamp ",
    "!!binary ", "!!set ", "!!omap ", "!!pairs ", "!!map ", "!!str ", "!foo ", "<<: ", "'", '"',
    "\\U00110000", "\\ud800", "2024-02-30", "0x", ".nan", "~", "true", "\n", "\n  ", "\n    ",
    "#c", "# x", "---", "%YAML 1.1\n", "|\n  ", ">\n  ", "-", "x", "1", "extra_body: ",
    "extra_headers: ", "mode_aliases: ", "\t", "\x00", "\x85", "\ufeff",
]  # fmt: skip


@given(st.lists(st.sampled_from(FRAGMENTS), max_size=30).map("".join))
def test_any_text_either_loads_or_is_problems_each_with_a_line(text: str) -> None:
    try:
        load_config_text(text, file="c.yaml")
    except ConfigError as error:
        assert error.problems
        assert all(p.line is not None and p.line >= 1 for p in error.problems), error
        str(error).encode()  # logged and sent as JSON: no lone surrogate from a "\ud800" escape
