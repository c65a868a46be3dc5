"""capabilities_file is found next to the config file, wherever the daemon runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from coderouterd.config import load_config
from coderouterd.translate.capabilities import load_registry

CONFIG = """\
capabilities_file: {path}
providers:
  - {{name: local, kind: openai_compat, base_url: "http://127.0.0.1:1/v1", model: house-model}}
profiles:
  - {{name: default, providers: [local]}}
"""
RULE = '- {kind: openai_compat, model: "house-*", max_output_tokens: 77}\n'


def write(directory: Path, caps_path: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "coderouterd.yaml"
    config.write_text(CONFIG.format(path=caps_path))
    return config


def test_a_relative_capabilities_file_is_read_next_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write(tmp_path / "etc", "rules/caps.yaml")
    (tmp_path / "etc" / "rules").mkdir()
    (tmp_path / "etc" / "rules" / "caps.yaml").write_text(RULE)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    loaded = load_config(config)
    assert loaded.config.capabilities_file == str(tmp_path / "etc" / "rules" / "caps.yaml")
    registry = load_registry(loaded.config.capabilities_file)
    assert registry.lookup("openai_compat", "house-model").max_output_tokens == 77


def test_a_config_named_by_a_relative_path_still_resolves_its_rules_absolutely(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "etc", "caps.yaml")
    monkeypatch.chdir(tmp_path)
    loaded = load_config("etc/coderouterd.yaml")
    assert loaded.config.capabilities_file == str(tmp_path / "etc" / "caps.yaml")


def test_absolute_and_home_relative_capabilities_files_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    absolute = tmp_path / "abs.yaml"
    assert load_config(write(tmp_path / "a", str(absolute))).config.capabilities_file == str(
        absolute
    )
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    loaded = load_config(write(tmp_path / "b", "~/caps.yaml"))
    assert loaded.config.capabilities_file == str(tmp_path / "home" / "caps.yaml")


def test_no_capabilities_file_stays_none(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG.format(path="null"))
    assert load_config(config).config.capabilities_file is None
