"""A coderouter-cli providers.yaml with values of the wrong shape: the
conversion carries them over as they are, and the check of the result names
each one with its line, as `coderouterd import-config` then prints them (exit 2).
An --out that cannot be written is named with why (exit 1)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ruamel.yaml import YAML

from coderouterd.cli import main
from coderouterd.cli_import import render
from coderouterd.config import load_config_text
from coderouterd.config.legacy import convert
from coderouterd.errors import ConfigError

A = "{name: a, base_url: 'http://127.0.0.1:1', model: m}"
P = "profiles: [{name: p, providers: [a]}]"

# The source, then the field the check names and what it says there.
MALFORMED = {
    "filter_list_with_a_mapping": (
        "providers: [{name: a, base_url: 'http://x', model: m,"
        " output_filters: [strip_thinking, {x: 1}]}]\n" + P,
        "providers[0].output_filters",
        "expected a mapping",
    ),
    "action_as_a_list": (
        f"providers: [{A}]\nprofiles: [{{name: p, providers: [a], backend_health_action: [skip]}}]",
        "profiles[0].backend_health_action",
        "got a list",
    ),
    "renamed_action_as_a_mapping": (
        f"providers: [{A}]\n"
        "profiles: [{name: p, providers: [a], drift_detection_action: {x: 1}}]",
        "profiles[0].drift_action",
        "got a mapping",
    ),
    "provider_name_as_a_list": (
        "providers: [{name: [a], base_url: 'http://x', model: m}]\n"
        "profiles: [{name: p, providers: [a], restart_timeout_s: 30}]",
        "providers[0].name",
        "expected a string, got a list",
    ),
    "non_string_profile_key": (
        f"providers: [{A}]\nprofiles: [{{name: p, providers: [a], 5: x}}]",
        "profiles[0]",
        "keys must be strings, got an integer",
    ),
    "non_string_provider_key": (
        f"providers: [{{name: a, base_url: 'http://x', model: m, 7: x}}]\n{P}",
        "providers[0]",
        "keys must be strings, got an integer",
    ),
    "profile_restart_timeout_as_text": (
        "providers: [{name: a, base_url: 'http://x', model: m, restart_timeout_s: 10}]\n"
        "profiles: [{name: p, providers: [a], restart_timeout_s: '30'}]",
        "providers[0].restart_timeout_s",
        "expected a number, got a string",
    ),
    "restart_timeout_as_text_before_a_number": (
        f"providers: [{A}]\n"
        "profiles: [{name: p, providers: [a], restart_timeout_s: '30'},"
        " {name: q, providers: [a], restart_timeout_s: 10}]",
        "providers[0].restart_timeout_s",
        "expected a number, got a string",
    ),
    "profile_providers_as_a_number": (
        f"providers: [{A}]\nprofiles: [{{name: p, providers: 5, restart_timeout_s: 30}}]",
        "profiles[0].providers",
        "expected a list, got an integer",
    ),
    "providers_as_a_number": (f"providers: 5\n{P}", "providers", "expected a list, got an integer"),
    "provider_as_text": (f"providers: [a, {A}]\n{P}", "providers[0]", "expected a mapping"),
    "capabilities_as_text": (
        "providers: [{name: a, base_url: 'http://x', model: m, capabilities: yes,"
        " max_context_tokens: 8192}]\n" + P,
        "providers[0].capabilities",
        "expected a mapping",
    ),
    "auto_router_rules_as_text": (
        f"providers: [{A}]\n{P}\nauto_router: {{rules: pictures}}",
        "auto_router.rules",
        "expected a list",
    ),
}


@pytest.mark.parametrize(("source", "path", "message"), MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_value_is_carried_over_for_the_check_to_name(
    source: str, path: str, message: str
) -> None:
    data, _ = convert(YAML(typ="safe").load(source))
    text = render(data, Path("providers.yaml"), [])
    with pytest.raises(ConfigError) as raised:
        load_config_text(text, file="converted.yaml")
    named = [p for p in raised.value.problems if p.path == path and message in p.message]
    assert named, [str(p) for p in raised.value.problems]
    assert all(p.line is not None for p in named)


def test_import_config_lists_a_malformed_value_as_a_problem_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "providers.yaml"
    source.write_text(MALFORMED["filter_list_with_a_mapping"][0] + "\n")
    out = tmp_path / "config.yaml"
    assert main(["import-config", str(source), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "coderouterd: the configuration has problems:" in err
    assert f"{out}:" in err and "providers[0].output_filters: expected a mapping" in err
    assert f"coderouterd: {out} was not written" in err
    assert not out.exists()


def test_an_out_path_that_cannot_be_written_is_named_with_why_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "providers.yaml"
    source.write_text(f"providers: [{A}]\n{P}\n")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = blocker / "config.yaml"
    assert main(["import-config", str(source), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert (
        f"coderouterd: cannot write {out}: {blocker} is not a directory; "
        "choose another --out (nothing was written)"
    ) in err
    assert blocker.read_text() == "x"
