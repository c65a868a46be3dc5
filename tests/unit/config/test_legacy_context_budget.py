"""coderouter-cli's context budget (`context_budget_action` and its
`context_budget_*` thresholds) is left out of the converted config: the
note says so of every one of those keys, and only when the guard was on."""

from __future__ import annotations

from ruamel.yaml import YAML

from coderouterd.config.legacy import convert

LEGACY = """
providers:
  - {name: local, kind: openai_compat, base_url: "http://localhost:11434/v1", model: q}
profiles:
  - name: guarded
    providers: [local]
    context_budget_action: {action}
    context_budget_warn_threshold: 0.8
    context_budget_trim_threshold: 0.9
    context_budget_trim_target: 0.75
    context_budget_preserve_last_n: 4
"""
THRESHOLDS = (
    "context_budget_warn_threshold",
    "context_budget_trim_threshold",
    "context_budget_trim_target",
    "context_budget_preserve_last_n",
)


def notes_and_profile(action: str) -> tuple[list[str], dict[str, object]]:
    data, notes = convert(YAML(typ="safe").load(LEGACY.replace("{action}", action)))
    return [str(n) for n in notes], data["profiles"][0]


def test_a_context_budget_that_was_on_is_said_to_go_with_its_thresholds() -> None:
    for action in ("warn", "trim"):
        notes, profile = notes_and_profile(action)
        assert not any(key.startswith("context_budget_") for key in profile)
        [note] = [n for n in notes if "context_budget" in n]
        assert note.startswith("profiles[0].context_budget_action: left out: ")
        assert "its context_budget_* thresholds go with it" in note


def test_a_context_budget_that_was_off_goes_without_a_note() -> None:
    notes, profile = notes_and_profile("'off'")
    assert not any(key.startswith("context_budget_") for key in profile)
    assert [n for n in notes if "context_budget" in n] == []
    assert not any(key in n for n in notes for key in THRESHOLDS)
