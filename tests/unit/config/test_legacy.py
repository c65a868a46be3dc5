"""A coderouter-cli providers.yaml rewritten as a coderouterd config: what
changes, what is left out, and that the result loads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from coderouterd.cli_import import render
from coderouterd.config import load_config_text
from coderouterd.config.legacy import Note, convert, find_legacy_config, grouped

# Shaped like the providers.yaml coderouter-cli ships and documents.
LEGACY = """
allow_paid: false
display_timezone: Asia/Tokyo
mode_aliases: {fast: default}
providers:
  - name: ollama-qwen
    kind: openai_compat
    base_url: http://localhost:11434/v1
    model: qwen3:8b
    timeout_s: 120
    output_filters: [strip_thinking, strip_stop_markers]
    capabilities: {chat: true, streaming: true, tools: true, thinking: true, prompt_cache: false}
    restart_command: "ollama serve > /dev/null 2>&1 &"
    append_system_prompt: "/no_think"
  - name: claude
    kind: anthropic
    base_url: https://api.anthropic.com
    model: claude-sonnet-4-6
    api_key_env: ANTHROPIC_API_KEY
    paid: true
    cost: {input_tokens_per_million: 3.0, output_tokens_per_million: 15.0, monthly_budget_usd: null}
profiles:
  - name: default
    providers: [ollama-qwen, claude]
    adaptive: true
    backend_health_action: skip
    recovery_probe_initial_s: 20
    restart_timeout_s: 60
    drift_detection_action: reload
    drift_detection_window_size: 4
    partial_stitch_action: "off"
    context_budget_action: trim
    context_budget_trim_threshold: 0.9
    max_tool_calls: 50
    tool_loop_action: inject
  - name: second
    providers: [claude]
    drift_detection_window_size: 40
auto_router:
  rules:
    - id: user:pictures
      profile: default
      match: {has_image: true}
    - if: {model_pattern: "claude-3-5-haiku.*"}
      route_to: second
"""


def converted(text: str = LEGACY) -> tuple[dict[str, Any], list[str]]:
    data, notes = convert(YAML(typ="safe").load(text))
    return data, [str(n) for n in notes]


def test_the_result_loads_with_each_setting_in_its_place() -> None:
    data, _ = converted()
    qwen, claude = data["providers"]
    assert qwen["timeouts"] == {"first_byte_s": 120, "idle_s": 120}
    assert qwen["output_filters"] == {"think": "strip", "strip_stop_markers": True}
    assert qwen["capabilities"] == {"tools": True, "thinking": True, "cache_control": False}
    assert qwen["restart_command"] == ["sh", "-c", "ollama serve > /dev/null 2>&1 &"]
    assert qwen["append_system_prompt"] == "/no_think"
    # The profile's restart timeout went to the providers it lists.
    assert qwen["restart_timeout_s"] == claude["restart_timeout_s"] == 60
    assert claude["cost"] == {"input_tokens_per_million": 3.0, "output_tokens_per_million": 15.0}
    default = data["profiles"][0]
    assert default["backend_health_action"] == "exclude"
    assert default["drift_action"] == "demote"
    assert default["tool_loop_action"] == "inject"
    assert default["adaptive"] is True
    assert data["self_healing"] == {"recovery_initial_interval_s": 20}
    # The first profile's window wins, raised to coderouterd's least.
    assert data["drift"] == {"window": 10}
    assert data["default_profile"] == "default"
    assert data["auto_router"]["rules"][1] == {
        "id": "rule-2",
        "profile": "second",
        "match": {"model_pattern": "claude-3-5-haiku.*"},
    }
    config = load_config_text(render(data, Path("providers.yaml"), []), file="converted.yaml")
    assert [p.name for p in config.providers] == ["ollama-qwen", "claude"]


def test_every_change_and_every_omission_is_said() -> None:
    _, notes = converted()
    said = "\n".join(notes)
    for path in (
        "display_timezone: left out",
        "providers[0].timeout_s: now timeouts.first_byte_s",
        "providers[0].output_filters: now a mapping",
        "providers[0].capabilities.prompt_cache: now cache_control",
        "providers[0].restart_command: a shell line",
        "providers[1].cost.monthly_budget_usd: null left out",
        "profiles[0].adaptive: kept, with coderouterd's meaning",
        "profiles[0].backend_health_action: `skip` is `exclude`",
        "profiles[0].recovery_probe_initial_s: now self_healing.recovery_initial_interval_s",
        "profiles[0].restart_timeout_s: now restart_timeout_s of its providers",
        "profiles[0].drift_detection_action: 'reload' is drift_action: demote",
        "profiles[0].drift_detection_window_size: 4 is outside 10-200",
        "profiles[0].context_budget_action: left out",
        "profiles[0].max_tool_calls: left out",
        "profiles[1].drift_detection_window_size: left out: drift.window is 10 already",
        "auto_router.rules[1]: `if`/`route_to` are `match`/`profile`",
        "default_profile: set to `default`",
    ):
        assert path in said, path
    # What asks for nothing coderouterd lacks is not worth a note.
    assert "partial_stitch_action" not in said
    assert "context_budget_trim_threshold" not in said
    assert "capabilities.chat" not in said
    assert "append_system_prompt" not in said


def test_a_key_nobody_knows_is_left_out_and_said() -> None:
    data, notes = converted(
        "providers: [{name: a, base_url: 'http://127.0.0.1:1', model: m, colour: red}]\n"
        "profiles: [{name: p, providers: [a], mood: calm}]\nextra: 1\n"
    )
    assert "colour" not in data["providers"][0]
    assert "mood" not in data["profiles"][0]
    assert "extra" not in data
    assert notes == [
        "providers[0].colour: left out: not a setting this converter knows",
        "profiles[0].mood: left out: not a setting this converter knows",
        "extra: left out: not a coderouter-cli setting this converter knows",
    ]


def test_a_loop_threshold_above_its_window_becomes_the_window() -> None:
    data, notes = converted(
        "providers: [{name: a, base_url: 'http://127.0.0.1:1', model: m}]\n"
        "profiles: [{name: p, providers: [a], tool_loop_window: 2}]\n"
    )
    assert data["profiles"][0]["tool_loop_threshold"] == 2
    assert notes == [
        "profiles[0].tool_loop_threshold: 3 is above tool_loop_window (2), so no loop was "
        "ever seen: set to the window",
    ]


def test_the_same_note_for_several_providers_is_one() -> None:
    notes = [
        Note("providers[0].timeout_s", "moved"),
        Note("display_timezone", "gone"),
        Note("providers[3].timeout_s", "moved"),
        Note("providers[3].output_filters", "moved"),
    ]
    assert [str(n) for n in grouped(notes)] == [
        "providers[0, 3].timeout_s: moved",
        "display_timezone: gone",
        "providers[3].output_filters: moved",
    ]


def test_the_legacy_config_is_found_where_coderouter_cli_looks(tmp_path: Path) -> None:
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    (home / ".coderouter").mkdir(parents=True)
    cwd.mkdir()
    assert find_legacy_config({}, cwd, home) is None
    (home / ".coderouter" / "providers.yaml").write_text("{}")
    assert find_legacy_config({}, cwd, home) == home / ".coderouter" / "providers.yaml"
    (cwd / "providers.yaml").write_text("{}")
    assert find_legacy_config({}, cwd, home) == cwd / "providers.yaml"
    named = tmp_path / "elsewhere.yaml"
    named.write_text("{}")
    assert find_legacy_config({"CODEROUTER_CONFIG": str(named)}, cwd, home) == named


def test_a_prompt_of_several_lines_is_written_as_a_block_and_reads_back_the_same() -> None:
    prompt = "Be terse.\nUse tools precisely.\n"
    data, _ = converted(
        "providers: [{name: a, base_url: 'http://127.0.0.1:1', model: m}]\n"
        f"profiles: [{{name: p, providers: [a], append_system_prompt: {json.dumps(prompt)}}}]\n"
    )
    text = render(data, Path("providers.yaml"), [])
    assert "  append_system_prompt: |\n    Be terse.\n    Use tools precisely.\n" in text
    config = load_config_text(text, file="converted.yaml")
    assert config.profiles[0].append_system_prompt == prompt
