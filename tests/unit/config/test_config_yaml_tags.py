"""coderouterd has no YAML tags of its own: a tag YAML does not define
(`!ENV`, as env-substituting loaders read it) is a problem at its line, never
dropped to leave its bare text (`MODEL_NAME` sent upstream as the model)."""

from __future__ import annotations

import pytest

from coderouterd.config import load_config_text
from tests.unit.config.test_load import MINIMAL, problems_of, provider_with


@pytest.mark.parametrize(
    ("text", "line", "path", "tag"),
    [
        (MINIMAL.replace("model: qwen", "model: !ENV MODEL_NAME"), 4, "providers[0].model", "!ENV"),
        (provider_with("api_key_env: !env X"), 5, "providers[0].api_key_env", "!env"),
        (MINIMAL + "default_profile: !p main\n", 8, "default_profile", "!p"),
        (MINIMAL + "server:\n  port: !ENV PORT\n", 9, "server.port", "!ENV"),
        (provider_with("timeouts: !t {connect_s: 3}"), 5, "providers[0].timeouts", "!t"),
        (MINIMAL.replace("[local]", "!list [local]"), 7, "profiles[0].providers", "!list"),
        (
            provider_with("extra_body:", "  a:", "    b: !x 1"),
            7,
            "providers[0].extra_body.a.b",
            "!x",
        ),
        (provider_with("!k api_key_env: X"), 5, "providers[0]", "!k"),
        (
            MINIMAL.replace("model: qwen", "model: !!python/name:os.system x"),
            4,
            "providers[0].model",
            "!!python/name:os.system",
        ),
        (
            MINIMAL.replace("model: qwen", "model: !<tag:example.com,2024:m> qwen"),
            4,
            "providers[0].model",
            "tag:example.com,2024:m",
        ),
    ],
)
def test_a_tag_yaml_does_not_define_is_a_problem_at_its_line(
    text: str, line: int, path: str, tag: str
) -> None:
    problems = problems_of(text)
    tagged = [p for p in problems if "unknown YAML tag" in p.message]
    assert [(p.line, p.path) for p in tagged] == [(line, path)], [str(p) for p in problems]
    assert tagged[0].message.startswith(f"unknown YAML tag {tag}: ")


def test_a_tagged_value_is_not_also_checked_as_its_bare_text() -> None:
    [problem] = problems_of(MINIMAL + "server:\n  port: !ENV PORT\n")
    assert problem.message.startswith("unknown YAML tag !ENV")


def test_yaml_s_own_tags_are_read_as_yaml_defines_them() -> None:
    text = MINIMAL.replace("model: qwen", "model: !!str 5\n    extra_body: {a: !!int '7', b: ! x}")
    config = load_config_text(text, file="c.yaml")
    assert config.providers[0].model == "5"
    assert config.providers[0].extra_body == {"a": 7, "b": "x"}
