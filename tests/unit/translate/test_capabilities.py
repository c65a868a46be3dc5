"""Model capabilities: ordered glob rules, bundled then user, with file:line problems."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from coderouterd.errors import ConfigError, ConfigProblem
from coderouterd.translate.capabilities import (
    CapabilityRegistry,
    ModelCapabilities,
    bundled_rules,
    load_registry,
    parse_rules,
)

DEFAULT = ModelCapabilities()
CLAUDE = ModelCapabilities(
    vision=True,
    thinking=True,
    signed_thinking=True,
    cache_control=True,
    max_context_tokens=200_000,
)


def registry(text: str) -> CapabilityRegistry:
    return CapabilityRegistry(parse_rules(text, file="caps.yaml"))


def problems_of(text: str) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as caught:
        parse_rules(text, file="caps.yaml")
    return list(caught.value.problems)


BUNDLED_CASES = [
    # Anthropic
    (
        "anthropic",
        "claude-sonnet-4-5-20250929",
        msgspec.structs.replace(CLAUDE, thinking_modes="budget", effort=False),
    ),
    (
        "anthropic",
        "claude-opus-4-1",
        msgspec.structs.replace(
            CLAUDE, thinking_modes="budget", effort=False, max_output_tokens=32000
        ),
    ),
    (
        "anthropic",
        "claude-3-5-haiku-20241022",
        msgspec.structs.replace(CLAUDE, thinking=False, effort=False),
    ),
    (
        "anthropic",
        "claude-3-7-sonnet-latest",
        msgspec.structs.replace(CLAUDE, thinking_modes="budget", effort=False),
    ),
    ("anthropic", "qwen3:32b", DEFAULT),
    # Ollama names switch reasoning with think
    (
        "openai_compat",
        "qwen3:32b",
        ModelCapabilities(thinking=True, reasoning_param="reasoning_effort"),
    ),
    (
        "openai_compat",
        "deepseek-r1:14b",
        ModelCapabilities(
            thinking=True, reasoning_param="reasoning_effort", template_opens_think=True
        ),
    ),
    (
        "openai_compat",
        "qwq:latest",
        ModelCapabilities(
            thinking=True, reasoning_param="reasoning_effort", template_opens_think=True
        ),
    ),
    # templates that open <think> themselves, as llama.cpp and vLLM name them
    (
        "openai_compat",
        "DeepSeek-R1-Distill-Qwen-32B-Q4_K_M",
        ModelCapabilities(
            thinking=True, reasoning_param="reasoning_effort", template_opens_think=True
        ),
    ),
    (
        "openai_compat",
        "Qwen/Qwen3-30B-A3B-Thinking-2507",
        ModelCapabilities(thinking=True, reasoning_param="reasoning", template_opens_think=True),
    ),
    ("anthropic", "deepseek-r1:8b", ModelCapabilities(template_opens_think=True)),
    (
        "openai_compat",
        "hf.co/unsloth/Qwen3-8B-GGUF:Q4_K_M",
        ModelCapabilities(thinking=True, reasoning_param="reasoning_effort"),
    ),
    ("openai_compat", "hf.co/bartowski/Llama-3.1-8B-GGUF:Q4_K_M", DEFAULT),
    # llama.cpp / LM Studio aliases use reasoning_effort
    (
        "openai_compat",
        "qwen3-32b-q4_k_m",
        ModelCapabilities(thinking=True, reasoning_param="reasoning_effort"),
    ),
    (
        "openai_compat",
        "gpt-oss:20b",
        ModelCapabilities(thinking=True, reasoning_param="reasoning_effort"),
    ),
    (
        "openai_compat",
        "gpt-oss-120b",
        ModelCapabilities(thinking=True, reasoning_param="reasoning_effort"),
    ),
    # vendor/model names are OpenRouter's
    (
        "openai_compat",
        "qwen/qwen3-32b:free",
        ModelCapabilities(thinking=True, reasoning_param="reasoning"),
    ),
    (
        "openai_compat",
        "openai/gpt-oss-120b",
        ModelCapabilities(thinking=True, reasoning_param="reasoning"),
    ),
    (
        "openai_compat",
        "meta-llama/llama-3.3-70b-instruct",
        ModelCapabilities(reasoning_param="reasoning"),
    ),
    (
        "openai_compat",
        "anthropic/claude-sonnet-4.5",
        ModelCapabilities(
            vision=True, thinking=True, reasoning_param="reasoning", max_context_tokens=200_000
        ),
    ),
    # non-thinking members of thinking families
    ("openai_compat", "qwen3-coder:30b", ModelCapabilities(thinking=False)),
    ("openai_compat", "Qwen/Qwen3-Coder-30B-A3B-Instruct", ModelCapabilities(thinking=False)),
    ("openai_compat", "qwen3:30b-a3b-instruct-2507-q4_K_M", ModelCapabilities(thinking=False)),
    ("openai_compat", "magistral:24b", ModelCapabilities(thinking=True, tool_id_format="mistral")),
    # tools and vision
    ("openai_compat", "llama3.1:8b", DEFAULT),
    ("openai_compat", "llama3:8b", ModelCapabilities(tools=False)),
    ("openai_compat", "llama3", ModelCapabilities(tools=False)),
    ("openai_compat", "llama3.2-vision:11b", ModelCapabilities(tools=False, vision=True)),
    ("openai_compat", "gemma3:27b", ModelCapabilities(tools=False, vision=True)),
    ("openai_compat", "gemma3:1b", ModelCapabilities(tools=False)),
    ("openai_compat", "gemma-3-27b-it", ModelCapabilities(vision=True)),
    (
        "openai_compat",
        "mistral-small3.1:24b",
        ModelCapabilities(vision=True, tool_id_format="mistral"),
    ),
    ("openai_compat", "mistral:7b", ModelCapabilities(tool_id_format="mistral")),
    ("openai_compat", "qwen2.5vl:7b", ModelCapabilities(vision=True)),
    ("openai_compat", "some-unknown-model", DEFAULT),
    # hosted APIs with wire quirks
    (
        "openai_compat",
        "gemini-2.5-flash",
        ModelCapabilities(
            vision=True, thinking=True, reasoning_param="reasoning_effort", strict_schema=True
        ),
    ),
    ("openai_compat", "deepseek-reasoner", ModelCapabilities(thinking=True, echo_reasoning=True)),
]


@pytest.mark.parametrize(("kind", "model", "expected"), BUNDLED_CASES)
def test_bundled_rules_describe_common_models(
    kind: str, model: str, expected: ModelCapabilities
) -> None:
    assert load_registry(None).lookup(kind, model) == expected


def test_bundled_rules_each_set_something() -> None:
    rules = bundled_rules()
    assert len(rules) > 20
    assert all(rule.sets for rule in rules)
    assert all(rule.source.startswith("model-capabilities.yaml:") for rule in rules)


def test_an_unknown_model_gets_the_defaults() -> None:
    assert CapabilityRegistry().lookup("openai_compat", "x") == DEFAULT
    assert DEFAULT.tools and not DEFAULT.vision and DEFAULT.thinking is None
    assert DEFAULT.reasoning_param is None and DEFAULT.cache_control is None
    assert not DEFAULT.template_opens_think


def test_later_rules_override_only_the_fields_they_set() -> None:
    reg = registry(
        """\
- kind: "*"
  model: "qwen*"
  vision: true
  thinking: true
  max_output_tokens: 8192
- kind: openai_compat
  model: "qwen3*"
  thinking: false
  reasoning_param: think
- kind: openai_compat
  model: "qwen3:0.6b"
  reasoning_param: null
"""
    )
    assert reg.lookup("openai_compat", "qwen3:8b") == ModelCapabilities(
        vision=True, thinking=False, reasoning_param="think", max_output_tokens=8192
    )
    assert reg.lookup("openai_compat", "qwen3:0.6b") == ModelCapabilities(
        vision=True, thinking=False, max_output_tokens=8192
    )
    assert reg.lookup("anthropic", "qwen3:8b") == ModelCapabilities(
        vision=True, thinking=True, max_output_tokens=8192
    )
    assert reg.lookup("openai_compat", "llama3") == DEFAULT


def test_globs_match_case_insensitively_and_across_slashes() -> None:
    reg = registry('- {kind: openai_compat, model: "*qwen3*", thinking: true}\n')
    assert reg.lookup("openai_compat", "Qwen/Qwen3-32B").thinking
    assert not reg.lookup("openai_compat", "Qwen/Qwen2.5-7B").thinking
    assert not reg.lookup("anthropic", "Qwen/Qwen3-32B").thinking


def test_an_empty_file_has_no_rules() -> None:
    assert parse_rules("", file="caps.yaml") == ()
    assert parse_rules("# only a comment\n", file="caps.yaml") == ()


def test_user_rules_win_over_bundled_ones(tmp_path: Path) -> None:
    user = tmp_path / "model-capabilities.yaml"
    user.write_text(
        "- kind: anthropic\n  model: claude-opus-*\n  cache_control: false\n"
        "  max_output_tokens: 32000\n"
    )
    reg = load_registry(str(user))
    assert reg.lookup("anthropic", "claude-opus-4-1") == ModelCapabilities(
        vision=True,
        thinking=True,
        signed_thinking=True,
        cache_control=False,
        max_context_tokens=200_000,
        max_output_tokens=32000,
        thinking_modes="budget",
        effort=False,
    )
    assert reg.lookup("anthropic", "claude-sonnet-4-5") == msgspec.structs.replace(
        CLAUDE, thinking_modes="budget", effort=False
    )
    assert reg.rules[-1].source == f"{user}:1"


def test_an_unreadable_user_file_is_a_config_error(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError) as caught:
        load_registry(missing)
    [problem] = caught.value.problems
    assert problem.file == missing
    assert problem.message.startswith("cannot read file")


def test_every_problem_is_reported_with_its_line_and_path() -> None:
    text = """\
- kind: openai_compat
  model: "qwen*"
  thinkng: true
- kind: ollama
  model: x
  tools: "yes"
- model: y
  reasoning_param: effort
  max_context_tokens: 0
"""
    assert problems_of(text) == [
        ConfigProblem(
            "caps.yaml", 3, "rules[0].thinkng", "unknown key 'thinkng' (did you mean 'thinking'?)"
        ),
        ConfigProblem(
            "caps.yaml",
            4,
            "rules[1].kind",
            "must be one of 'anthropic', 'openai_compat', '*' (got 'ollama')",
        ),
        ConfigProblem("caps.yaml", 6, "rules[1].tools", "expected true or false, got a string"),
        ConfigProblem("caps.yaml", 7, "rules[2].kind", "missing required key 'kind'"),
        ConfigProblem(
            "caps.yaml",
            8,
            "rules[2].reasoning_param",
            "must be one of 'reasoning_effort', 'reasoning', 'think' (got 'effort')",
        ),
        ConfigProblem("caps.yaml", 9, "rules[2].max_context_tokens", "must be >= 1 (got 0)"),
    ]


def test_the_top_level_must_be_a_list_of_mappings() -> None:
    assert problems_of("kind: anthropic\nmodel: x\n") == [
        ConfigProblem("caps.yaml", 1, "", "the top level must be a list of rules")
    ]
    assert problems_of("- just a string\n") == [
        ConfigProblem("caps.yaml", 1, "rules[0]", "expected a mapping, got a string")
    ]


def test_an_empty_model_glob_is_rejected() -> None:
    [problem] = problems_of('- {kind: "*", model: ""}\n')
    assert (problem.line, problem.path) == (1, "rules[0].model")


def test_a_yaml_syntax_error_names_its_line() -> None:
    [problem] = problems_of("- kind: anthropic\n  model: [unclosed\n")
    assert problem.file == "caps.yaml"
    assert problem.line is not None
    assert problem.message.startswith("YAML syntax error")
