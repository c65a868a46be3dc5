"""`coderouterd import-config` at the edges of what a providers.yaml holds:
what it cannot read or convert is a listed problem (exit 2), never a
traceback, and what it converts loads and means what the source meant."""

from __future__ import annotations

from pathlib import Path

import pytest

from coderouterd.cli import main
from coderouterd.cli_import import render
from coderouterd.config import load_config_text
from coderouterd.config.legacy import convert, grouped

A = {"name": "a", "base_url": "http://127.0.0.1:1", "model": "m"}


def _import(tmp_path: Path, source: bytes) -> tuple[int, Path]:
    path = tmp_path / "providers.yaml"
    path.write_bytes(source)
    out = tmp_path / "out" / "config.yaml"
    return main(["import-config", str(path), "--out", str(out)]), out


def _converted(legacy: dict[str, object]) -> str:
    data, notes = convert(legacy)
    return render(data, Path("providers.yaml"), grouped(notes))


def test_a_provider_without_a_name_is_listed_as_a_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # restart_timeout_s on the profile makes the conversion look providers up by name.
    source = (
        b"providers:\n  - {base_url: 'http://127.0.0.1:1', model: m}\n"
        b"profiles:\n  - {name: default, providers: [a], restart_timeout_s: 30}\n"
    )
    code, out = _import(tmp_path, source)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "providers[0].name: missing required key" in err
    assert "Traceback" not in err
    assert not out.exists()


def test_a_providers_yaml_that_is_not_utf8_is_a_problem_at_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = "providers: []\n# café (Latin-1)\nprofiles: []\n".encode("latin-1")
    code, out = _import(tmp_path, source)
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"{tmp_path / 'providers.yaml'}:2: the file is not valid UTF-8" in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("profile", "threshold"),
    [({"tool_loop_threshold": 8}, 5), ({"tool_loop_threshold": 8, "tool_loop_window": 6}, 6)],
    ids=["default_window", "written_window"],
)
def test_a_loop_threshold_above_the_window_becomes_the_window(
    profile: dict[str, object], threshold: int
) -> None:
    text = _converted(
        {"providers": [A], "profiles": [{"name": "p", "providers": ["a"], **profile}]}
    )
    config = load_config_text(text, file="converted.yaml")
    assert config.profiles[0].tool_loop_threshold == threshold
    window = profile.get("tool_loop_window", 5)
    assert (
        f"#   profiles[0].tool_loop_threshold: 8 is above tool_loop_window ({window}), "
        "so no loop was ever seen: set to the window"
    ) in text


@pytest.mark.parametrize(
    "prompt",
    [
        "Be terse.\u2028Really.\nUse tools.\n",
        "Be terse.\x85Really.\nUse tools.",
        "Be terse.\u2029Really.\nUse tools.\n",
        "Be terse.\r\nUse tools.\r\n",
        "One line with a NEL\x85in it",
        "Bell\x07\nand nul\x00\n",
    ],
    ids=["line_separator", "nel", "paragraph_separator", "crlf", "nel_one_line", "control"],
)
def test_a_prompt_with_another_line_break_converts_and_reads_back_unchanged(prompt: str) -> None:
    """A `|` block writes these characters raw and reads each break back as \\n
    (or finds a syntax error); they are written double-quoted instead."""
    profile = {"name": "p", "providers": ["a"], "append_system_prompt": prompt}
    text = _converted({"providers": [A], "profiles": [profile]})
    config = load_config_text(text, file="converted.yaml")
    assert config.profiles[0].append_system_prompt == prompt


def test_a_prompt_of_plain_lines_is_a_literal_block() -> None:
    profile = {"name": "p", "providers": ["a"], "append_system_prompt": "Be terse.\nUse tools.\n"}
    text = _converted({"providers": [A], "profiles": [profile]})
    assert "  append_system_prompt: |\n    Be terse.\n    Use tools.\n" in text
    config = load_config_text(text, file="converted.yaml")
    assert config.profiles[0].append_system_prompt == "Be terse.\nUse tools.\n"


@pytest.mark.parametrize("separator", ["\n", "\r", "\x85", "\u2028"])
def test_a_key_with_a_line_break_stays_inside_its_comment(separator: str) -> None:
    """The notes heading the file name the source's keys: one left out must not
    become a line of config."""
    provider = {**A, f"x{separator}allow_paid: true{separator}#": 1}
    text = _converted({"providers": [provider], "profiles": [{"name": "p", "providers": ["a"]}]})
    config = load_config_text(text, file="converted.yaml")
    assert config.allow_paid is False
    escaped = separator.encode("unicode_escape").decode()
    assert f"#   providers[0].x{escaped}allow_paid: true{escaped}#: left out" in text
