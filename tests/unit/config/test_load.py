"""Loading the config file: every problem at once, each with its line and field path."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from ruamel.yaml import YAML

from coderouterd.config import (
    DEFAULT_CONFIG_YAML,
    Config,
    ProfileConfig,
    ProviderConfig,
    ServerConfig,
    config_digest,
    default_config,
    load_config,
    load_config_text,
    load_default_config,
)
from coderouterd.errors import ConfigError, ConfigProblem

EXAMPLE = Path(__file__).parents[3] / "config" / "example.yaml"

MINIMAL = """\
providers:
  - name: local
    base_url: http://127.0.0.1:11434/v1
    model: qwen
profiles:
  - name: main
    providers: [local]
"""


def problems_of(text: str) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, file="c.yaml")
    return list(caught.value.problems)


def provider_with(*lines: str) -> str:
    """MINIMAL with `lines` added to its provider, from line 5 on."""
    head, tail = MINIMAL.split("profiles:\n")
    return head + "".join(f"    {line}\n" for line in lines) + "profiles:\n" + tail


def test_minimal_file_gets_every_default() -> None:
    config = load_config_text(MINIMAL, file="c.yaml")

    provider = ProviderConfig(name="local", base_url="http://127.0.0.1:11434/v1", model="qwen")
    profile = ProfileConfig(name="main", providers=("local",))
    assert config == Config(providers=(provider,), profiles=(profile,))
    assert config.server == ServerConfig()
    assert config.default_profile_name == "main"


def test_the_defaults_are_the_documented_ones() -> None:
    # Literals from the README's configuration tables, not the Structs' own
    # defaults: changing a default must change this test and the README with it.
    config = load_config_text(MINIMAL, file="c.yaml")

    s = config.server
    assert (s.host, s.port, s.state_dir, s.control_socket) == ("127.0.0.1", 8088, None, None)
    assert s.grace_period_s == 30
    assert s.max_body_bytes == 67_108_864
    assert (s.keepalive_after_s, s.keepalive_interval_s) == (10, 10)
    t = config.providers[0].timeouts
    assert (t.connect_s, t.first_byte_s, t.idle_s, t.total_s) == (5, 300, 120, 1800)
    assert (config.allow_paid, config.default_profile) == (False, None)
    p, profile = config.providers[0], config.profiles[0]
    assert (p.restart_command, p.restart_timeout_s) == (None, 30)
    assert (profile.backend_health_action, profile.backend_health_threshold) == ("warn", 3)
    h = config.self_healing
    assert (h.recovery_initial_interval_s, h.recovery_max_interval_s, h.recovery_jitter) == (
        30,
        300,
        0.1,
    )
    assert (h.probe_timeout_s, h.restart_min_interval_s, h.failure_window_s) == (10, 600, 600)
    assert h.restart_output_bytes == 2048


MANY_PROBLEMS = """\
providers:
  - name: local
    base_url: http://127.0.0.1:11434/v1
    model: qwen
    modle: typo
    timeouts:
      connect_s: "5"
      idle_s: -1
  - name: local
    base_url: http://127.0.0.1:1234/v1
    model: m
    extra_headers:
      Authorization: Bearer sk-123
profiles:
  - name: main
    providers:
      - local
      - lmstudio
  - name: main
    providers: [local]
default_profile: mian
server:
  port: 70000
"""


def test_every_problem_is_reported_in_one_load() -> None:
    problems = problems_of(MANY_PROBLEMS)

    assert [(p.line, p.path) for p in problems] == [
        (5, "providers[0].modle"),
        (7, "providers[0].timeouts.connect_s"),
        (8, "providers[0].timeouts.idle_s"),
        (9, "providers[1].name"),
        (13, "providers[1].extra_headers.Authorization"),
        (18, "profiles[0].providers[1]"),
        (19, "profiles[1].name"),
        (21, "default_profile"),
        (23, "server.port"),
    ]
    messages = [p.message for p in problems]
    fragments = [
        "unknown key 'modle' (did you mean 'model'?)",
        "expected a number, got a string",
        "must be > 0",
        "duplicate provider name 'local' (first on line 2)",
        "credentials belong in api_key_env, not in extra_headers",
        "unknown provider 'lmstudio'",
        "duplicate profile name 'main' (first on line 15)",
        "unknown profile 'mian' (did you mean 'main'?)",
        "must be <= 65535",
    ]
    for message, fragment in zip(messages, fragments, strict=True):
        assert fragment in message
    assert {p.file for p in problems} == {"c.yaml"}


@pytest.mark.parametrize(
    ("added", "line", "field", "fragment"),
    [
        (["paid: yes"], 5, "paid", "expected true or false, got a string"),
        (["forward_client_key: 1"], 5, "forward_client_key", "expected true or false, got an int"),
        (["kind: anthropc"], 5, "kind", "must be one of 'anthropic', 'openai_compat'"),
        (["timeouts: 5"], 5, "timeouts", "expected a mapping, got an integer"),
        (["timeouts:", "  total_s: 0"], 6, "timeouts.total_s", "must be > 0"),
        (["timeouts:", "  idle: 1"], 6, "timeouts.idle", "did you mean 'idle_s'?"),
        (["extra_headers:", "  X-Api-Key: k"], 6, "extra_headers.X-Api-Key", "credentials belong"),
        (["extra_headers: {x-trace: 1}"], 5, "extra_headers.x-trace", "expected a string, got an"),
        (["extra_headers: [a]"], 5, "extra_headers", "expected a mapping, got a list"),
        (
            ["api_key_env: sk-test-1"],
            5,
            "api_key_env",
            "must be the name of an environment variable",
        ),
    ],
)
def test_a_provider_problem_is_reported_at_its_line_and_path(
    added: list[str], line: int, field: str, fragment: str
) -> None:
    [problem] = problems_of(provider_with(*added))

    assert (problem.line, problem.path) == (line, f"providers[0].{field}")
    assert fragment in problem.message


@pytest.mark.parametrize(
    ("old", "new", "line", "path", "fragment"),
    [
        ("http:", "ftp:", 3, "providers[0].base_url", "must start with http:// or https://"),
        ("qwen", "''", 4, "providers[0].model", "must not be empty"),
        ("main", "a b", 6, "profiles[0].name", "must match"),
        ("[local]", "[]", 7, "profiles[0].providers", "must have at least 1 item"),
        ("[local]", "local", 7, "profiles[0].providers", "expected a list, got a string"),
        ("[local]", "[local, 3]", 7, "profiles[0].providers[1]", "expected a string, got an int"),
    ],
)
def test_a_changed_field_is_reported_at_its_line_and_path(
    old: str, new: str, line: int, path: str, fragment: str
) -> None:
    [problem] = problems_of(MINIMAL.replace(old, new))

    assert (problem.line, problem.path) == (line, path)
    assert fragment in problem.message


@pytest.mark.parametrize(
    ("appended", "line", "path", "fragment"),
    [
        ("profile: x", 8, "profile", "unknown key 'profile' (did you mean 'profiles'?)"),
        ("allow_paid: no", 8, "allow_paid", "expected true or false, got a string"),
        ("default_profile: 3", 8, "default_profile", "expected a string, got an integer"),
        ("server: []", 8, "server", "expected a mapping, got a list"),
        ("server:\n  max_body_bytes: 100", 9, "server.max_body_bytes", "must be >= 1024"),
        ("server:\n  port: 80.5", 9, "server.port", "expected an integer, got a number"),
        ("server:\n  host:", 9, "server.host", "expected a string, got null"),
        ("server:\n  grace_period_s: true", 9, "server.grace_period_s", "got a boolean"),
        ("server:\n  1: x", 9, "server", "keys must be strings, got an integer"),
    ],
)
def test_an_added_top_level_key_is_reported_at_its_line_and_path(
    appended: str, line: int, path: str, fragment: str
) -> None:
    [problem] = problems_of(MINIMAL + appended + "\n")

    assert (problem.line, problem.path) == (line, path)
    assert fragment in problem.message


def test_a_pasted_key_is_not_echoed_in_the_problem() -> None:
    [problem] = problems_of(provider_with("api_key_env: sk-test-secret"))

    assert "sk-test-secret" not in str(problem)


@pytest.mark.parametrize(
    ("text", "line", "path"),
    [
        (MINIMAL.replace("    model: qwen\n", ""), 2, "providers[0].model"),
        (MINIMAL.replace("  - name: main\n    providers", "  - providers"), 6, "profiles[0].name"),
        ("# comment\n" + MINIMAL.split("profiles:", maxsplit=1)[0], 2, "profiles"),
        (
            MINIMAL.replace("profiles:", "  - name: other\n    base_url: http://x\nprofiles:"),
            5,
            "providers[1].model",
        ),
    ],
)
def test_a_missing_key_is_reported_at_the_enclosing_mapping(
    text: str, line: int, path: str
) -> None:
    [problem] = problems_of(text)

    assert (problem.line, problem.path) == (line, path)
    assert problem.message == f"missing required key '{path.rsplit('.', 1)[-1]}'"


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("providers: [\n  - a\n", 2),
        ("providers:\n\t- a\n", 2),
        ("providers: []\nprofiles: []\nproviders: []\n", 3),
        ("a: 'unterminated\n", 2),
    ],
)
def test_a_yaml_syntax_error_is_one_problem_with_its_line(text: str, line: int) -> None:
    [problem] = problems_of(text)

    assert problem.line == line
    assert problem.message.startswith("YAML syntax error: ")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "the file is empty"),
        ("# nothing but a comment\n", "the file is empty"),
        ("- providers\n", "the top level must be a mapping, got a list"),
        ("just text\n", "the top level must be a mapping, got a string"),
    ],
)
def test_a_file_without_a_top_level_mapping_is_one_problem(text: str, fragment: str) -> None:
    [problem] = problems_of(text)

    assert (problem.line, problem.path) == (1, "")
    assert fragment in problem.message


def test_merged_keys_are_checked_and_loaded() -> None:
    text = MINIMAL.replace("  - name: local\n", "  - &local\n    name: local\n") + (
        "  - name: second\n    providers: [copy]\n"
    )
    text = text.replace("profiles:\n", "  - <<: *local\n    name: copy\nprofiles:\n")

    config = load_config_text(text, file="c.yaml")

    copy = config.provider("copy")
    assert copy is not None
    assert copy.base_url == "http://127.0.0.1:11434/v1"


def test_load_config_records_the_path_and_the_digest_of_the_bytes(tmp_path: Path) -> None:
    file = tmp_path / "config.yaml"
    file.write_text(MINIMAL)

    loaded = load_config(file)

    assert loaded.path == str(file)
    assert loaded.config == load_config_text(MINIMAL, file="c.yaml")
    digest = hashlib.sha256(MINIMAL.encode()).hexdigest()[:16]
    assert loaded.digest == config_digest(MINIMAL.encode()) == f"sha256:{digest}"


def test_a_missing_file_is_a_problem_without_a_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "absent.yaml")

    [problem] = caught.value.problems
    assert (problem.file, problem.line) == (str(tmp_path / "absent.yaml"), None)
    assert "cannot read file" in problem.message


def test_default_config_yaml_loads_to_exactly_the_default_config() -> None:
    assert load_config_text(DEFAULT_CONFIG_YAML, file="<default>") == default_config()


def test_the_default_config_has_a_stable_digest_and_no_path() -> None:
    first, second = load_default_config(), load_default_config()

    assert first.config == default_config()
    assert first.path is None
    assert first.digest == second.digest
    assert first.digest.startswith("sha256:")


def test_the_example_config_loads() -> None:
    loaded = load_config(EXAMPLE)

    assert {p.kind for p in loaded.config.providers} == {"anthropic"}
    assert any(p.paid and p.api_key_env for p in loaded.config.providers)
    assert any(p.allow_paid is not None for p in loaded.config.profiles)


def test_the_example_config_shows_every_field_of_every_struct() -> None:
    data = YAML(typ="safe").load(EXAMPLE.read_text())
    root = msgspec.inspect.type_info(Config)
    shown: dict[type, set[str]] = {}
    collect_keys(data, root, shown)

    expected = {cls: {f.encode_name for f in info.fields} for cls, info in structs_in(root).items()}
    assert shown == expected


def collect_keys(value: Any, info: msgspec.inspect.Type, shown: dict[type, set[str]]) -> None:
    """Keys present in `value` per Struct type, following the type tree alongside the data."""
    if isinstance(info, msgspec.inspect.StructType) and isinstance(value, dict):
        shown.setdefault(info.cls, set()).update(value)
        for field in info.fields:
            if field.encode_name in value:
                collect_keys(value[field.encode_name], field.type, shown)
    elif isinstance(info, msgspec.inspect.VarTupleType | msgspec.inspect.ListType):
        for item in value if isinstance(value, list) else []:
            collect_keys(item, info.item_type, shown)
    elif isinstance(info, msgspec.inspect.UnionType):
        for option in info.types:
            collect_keys(value, option, shown)


def structs_in(info: msgspec.inspect.Type) -> dict[type, msgspec.inspect.StructType]:
    if isinstance(info, msgspec.inspect.StructType):
        found = {info.cls: info}
        for field in info.fields:
            found |= structs_in(field.type)
        return found
    if isinstance(info, msgspec.inspect.VarTupleType | msgspec.inspect.ListType):
        return structs_in(info.item_type)
    if isinstance(info, msgspec.inspect.UnionType):
        return {cls: s for option in info.types for cls, s in structs_in(option).items()}
    return {}


FIELD_NAMES = sorted(
    {
        f.encode_name
        for s in structs_in(msgspec.inspect.type_info(Config)).values()
        for f in s.fields
    }
)
scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
)
documents = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(documents)
def test_any_document_either_loads_or_raises_config_error(document: object) -> None:
    # JSON is YAML, so any JSON document exercises the walker on shapes nobody wrote by hand.
    try:
        load_config_text(json.dumps(document), file="c.yaml")
    except ConfigError as error:
        assert error.problems
        assert all(p.line is None or p.line >= 1 for p in error.problems)


# A providers.yaml as the system coderouterd reimplements documents it: users
# bring such files, so its vocabulary must load unchanged.
SEED_STYLE = """\
allow_paid: false
default_profile: default
providers:
  - name: anthropic-direct
    kind: anthropic
    base_url: https://api.anthropic.com
    model: claude-sonnet-4-6
    api_key_env: ANTHROPIC_API_KEY
    paid: true
    cost:
      input_tokens_per_million: 3.00
      output_tokens_per_million: 15.00
      cache_read_discount: 0.10
      cache_creation_premium: 1.25
      monthly_budget_usd: 5.0
  - name: ollama-local
    base_url: http://localhost:11434/v1
    model: qwen3.6:35b-a3b
profiles:
  - name: default
    providers: [anthropic-direct, ollama-local]
"""


def test_a_providers_yaml_in_the_original_vocabulary_loads() -> None:
    config = load_config_text(SEED_STYLE, file="providers.yaml")
    paid, local = config.providers
    assert (paid.kind, paid.paid, paid.api_key_env) == ("anthropic", True, "ANTHROPIC_API_KEY")
    assert paid.cost is not None and paid.cost.monthly_budget_usd == 5.0
    assert (local.kind, local.base_url) == ("openai_compat", "http://localhost:11434/v1")
    assert config.profiles[0].providers == ("anthropic-direct", "ollama-local")
    assert config.default_profile == "default" and config.allow_paid is False


def test_a_restart_command_written_as_a_shell_line_says_how_to_write_it() -> None:
    [problem] = problems_of(provider_with("restart_command: systemctl --user restart ollama"))

    assert (problem.line, problem.path) == (5, "providers[0].restart_command")
    assert "list of arguments, run without a shell" in problem.message
    assert "[sh, -c, '...']" in problem.message


@pytest.mark.parametrize(
    ("line", "path", "fragment"),
    [
        ("restart_command: []", "providers[0].restart_command", "at least 1 item"),
        ('restart_command: [""]', "providers[0].restart_command[0]", "must not be empty"),
        ("restart_timeout_s: 0", "providers[0].restart_timeout_s", "> 0"),
    ],
)
def test_restart_command_problems(line: str, path: str, fragment: str) -> None:
    [problem] = problems_of(provider_with(line))
    assert problem.path == path
    assert fragment in problem.message


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("backend_health_threshold", "1", ">= 2"),
        ("backend_health_threshold", "21", "<= 20"),
        ("backend_health_action", "demolish", "demote"),
    ],
)
def test_backend_health_problems(field: str, value: str, fragment: str) -> None:
    [problem] = problems_of(MINIMAL + f"    {field}: {value}\n")
    assert problem.path == f"profiles[0].{field}"
    assert fragment in problem.message


def test_a_tool_loop_threshold_past_its_window_is_a_problem() -> None:
    [problem] = problems_of(MINIMAL + "    tool_loop_window: 3\n    tool_loop_threshold: 4\n")
    assert problem.path == "profiles[0].tool_loop_threshold"
    assert "at most tool_loop_window" in problem.message
    [default_window] = problems_of(MINIMAL + "    tool_loop_threshold: 6\n")
    assert default_window.path == "profiles[0].tool_loop_threshold"


AUTO = """\
providers:
  - {name: local, base_url: "http://127.0.0.1:11434/v1", model: qwen}
profiles:
  - {name: main, providers: [local]}
  - {name: cheap, providers: [local]}
default_profile: auto
"""


def test_the_auto_router_with_its_rules_loads() -> None:
    config = load_config_text(
        AUTO
        + "auto_router:\n  default_rule_profile: main\n  rules:\n"
        + "    - {id: side, profile: cheap, match: {model_pattern: 'claude-.*haiku.*'}}\n",
        file="c.yaml",
    )
    assert config.auto_routing is not None
    assert config.default_profile_name == "main"
    assert config.default_shown == "auto"


@pytest.mark.parametrize(
    ("extra", "path", "fragment"),
    [
        # The built-in rules need multi, coding and writing.
        ("", "default_profile", "missing: coding, multi"),
        ("", "default_profile", "profile 'writing', which is not defined"),
        (
            "auto_router: {default_rule_profile: mian}\n",
            "auto_router.default_rule_profile",
            "did you mean 'main'",
        ),
        (
            "auto_router: {default_rule_profile: main, rules: [{id: a, profile: cheap, match: {}}]}\n",
            "auto_router.rules[0].match",
            "needs exactly one of has_image, code_fence_ratio_min, content_contains, "
            "content_regex, model_pattern, content_token_count_min; got 0",
        ),
        (
            "auto_router: {default_rule_profile: main, rules: [{id: a, profile: cheap, "
            "match: {has_image: true, content_contains: x}}]}\n",
            "auto_router.rules[0].match",
            "got 2: has_image, content_contains",
        ),
        (
            "auto_router: {default_rule_profile: main, rules: [{id: a, profile: cheap, "
            "match: {content_regex: '([unclosed'}}]}\n",
            "auto_router.rules[0].match.content_regex",
            "not a valid regular expression",
        ),
        (
            # Past re's repeat limit: OverflowError, not re.error.
            "auto_router: {default_rule_profile: main, rules: [{id: a, profile: cheap, "
            "match: {model_pattern: 'a{4294967296}'}}]}\n",
            "auto_router.rules[0].match.model_pattern",
            "not a valid regular expression",
        ),
        (
            # Groups nested past the recursion limit: RecursionError.
            "auto_router: {default_rule_profile: main, rules: [{id: a, profile: cheap, "
            f"match: {{content_regex: '{'(' * 1500}{')' * 1500}'}}}}]}}\n",
            "auto_router.rules[0].match.content_regex",
            "not a valid regular expression",
        ),
        (
            "auto_router: {default_rule_profile: main, rules: [{id: a, profile: chep, "
            "match: {has_image: true}}]}\n",
            "auto_router.rules[0].profile",
            "did you mean 'cheap'",
        ),
        (
            "auto_router: {default_rule_profile: main, rules: [{id: a, profile: cheap, "
            "match: {has_image: true}}, {id: a, profile: main, match: {has_image: false}}]}\n",
            "auto_router.rules[1].id",
            "duplicate rule id",
        ),
        (
            "auto_router: {default_rule_profile: main, rules: [{id: a, profile: cheap, "
            "match: {content_token_count_min: 0}}]}\n",
            "auto_router.rules[0].match.content_token_count_min",
            ">= 1",
        ),
    ],
)
def test_auto_router_problems(extra: str, path: str, fragment: str) -> None:
    found = [p.message for p in problems_of(AUTO + extra) if p.path == path]
    assert any(fragment in message for message in found), found


def test_a_disabled_auto_router_needs_only_its_default_rule_profile() -> None:
    config = load_config_text(
        AUTO + "auto_router: {disabled: true, default_rule_profile: cheap}\n", file="c.yaml"
    )
    assert config.default_profile_name == "cheap"


def test_without_a_default_rule_profile_the_writing_profile_must_exist() -> None:
    text = AUTO + "auto_router: {rules: [{id: a, profile: cheap, match: {has_image: true}}]}\n"
    [problem] = problems_of(text)
    assert problem.path == "default_profile"
    assert "profile 'writing', which is not defined" in problem.message


def test_auto_is_no_profile_name() -> None:
    [problem] = problems_of(MINIMAL.replace("name: main", "name: auto"))
    assert problem.path == "profiles[0].name"
    assert "reserved" in problem.message


def test_a_mode_alias_names_a_profile_that_exists() -> None:
    [problem] = problems_of(MINIMAL + "mode_aliases: {fast: mian}\n")
    assert problem.path == "mode_aliases.fast"
    assert "did you mean 'main'" in problem.message


def test_extra_body_cannot_set_the_routers_own_fields() -> None:
    [problem] = problems_of(provider_with("extra_body: {model: other, keep_alive: 5m}"))
    assert problem.path == "providers[0].extra_body.model"
    assert "set by coderouterd" in problem.message
